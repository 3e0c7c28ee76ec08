"""`POST /oauth/token`: the OAuth2 client-credentials grant, on authlib's server components.

authlib's AuthorizationServer is synchronous; its only I/O hook is `query_client`. The
endpoint therefore looks the client up asynchronously first, then runs authlib's grant
(client authentication, grant validation, token response) on that preloaded client.
Tokens are UDS's own ES256 JWTs: kind `service`, bound to the client's tenant.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote

from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Request
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from starlette.requests import Request
from starlette.responses import JSONResponse

from uds.auth.clients import ActiveClient, find_active, secret_matches
from uds.db import transaction
from uds.services import Services

MAX_FORM_BYTES = 4096


class _Client(ClientMixin):  # type: ignore[misc]
    def __init__(self, active: ActiveClient) -> None:
        self.active = active
        self.client_id = active.client_id

    def get_client_id(self) -> str:
        return self.active.client_id

    def check_client_secret(self, client_secret: str) -> bool:
        return secret_matches(client_secret, self.active.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in ("client_secret_basic", "client_secret_post")

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"

    def get_allowed_scope(self, scope: str | None) -> str:
        return ""


class _FormRequest(OAuth2Request):  # type: ignore[misc]
    """An OAuth2Request whose form body was already read and parsed."""

    def __init__(self, method: str, uri: str, headers: Mapping[str, str], form: dict[str, str]) -> None:
        super().__init__(method, uri, headers=headers)
        self._form = form
        self.payload = BasicOAuth2Payload(form)

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class _Server(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.preloaded: _Client | None = None
        self.register_grant(_ClientCredentials)
        self.register_token_generator("client_credentials", self._token)

    def query_client(self, client_id: str) -> _Client | None:
        client = self.preloaded
        return client if client is not None and client.client_id == client_id else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Tokens are self-contained JWTs; nothing to store."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signal system here."""

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, Any]:
        return status, body, headers

    def _token(self, *, client: _Client, **_: Any) -> dict[str, Any]:
        settings = self.services.settings
        ttl = settings.token_ttl_seconds
        token = self.services.signing_key.issue(
            client.active.subject,
            issuer=settings.own_issuer,
            audience=settings.audience,
            ttl=ttl,
            kind="service",
            tenant=client.active.tenant_slug,
        )
        return {"access_token": token, "token_type": "Bearer", "expires_in": ttl}


def _client_id(request: Request, form: dict[str, str]) -> str:
    auth = request.headers.get("authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return unquote(decoded.partition(":")[0])
    return form.get("client_id", "")


async def token_endpoint(request: Request) -> JSONResponse:
    """Exchange a service client's id and secret for a bearer token."""
    services: Services = request.state.services
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return _error(400, "invalid_request", "request body too large")
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return _error(400, "invalid_request", "use application/x-www-form-urlencoded")
    try:
        form = dict(parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body)))
    except (UnicodeDecodeError, ValueError):
        return _error(400, "invalid_request", "malformed form body")
    client_id = _client_id(request, form)
    active = None
    if client_id:
        async with transaction(services.engine) as tx:
            active = await find_active(await tx.core(), client_id=client_id)
    server = _Server(services)
    server.preloaded = _Client(active) if active else None
    oauth_request = _FormRequest(request.method, str(request.url), request.headers, form)
    status, payload, headers = server.create_token_response(oauth_request)
    return JSONResponse(payload, status_code=status, headers=dict(headers))


def _error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"cache-control": "no-store"},
    )
