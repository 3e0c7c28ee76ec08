"""TokenVerifier and SigningKey against real keys, real signatures and a real JWKS server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import stat
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from uds.auth import PLATFORM_ADMIN, Principal, SigningKey, TokenVerifier
from uds.errors import Unauthenticated
from uds.settings import IssuerConfig

OWN = "uds-test"
AUD = "uds"
EXT = "https://idp.example.test"
EXT_ES_ONLY = "https://es-only.example.test"


# ---------- helpers ----------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def part(obj: Any) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def claims(iss: str = OWN, aud: str = AUD, sub: str = "alice", **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"iss": iss, "aud": aud, "sub": sub, "iat": now, "exp": now + 600}
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def forge_unsigned(header: dict[str, Any], payload: dict[str, Any], signature: str = "") -> str:
    return f"{part(header)}.{part(payload)}.{signature}"


def forge_es256(private: ec.EllipticCurvePrivateKey, header: dict[str, Any], payload: dict) -> str:
    """An ES256 JWS built by hand with cryptography (raw r||s signature)."""
    signing_input = f"{part(header)}.{part(payload)}"
    der = private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def forge_hs256(secret: bytes, header: dict[str, Any], payload: dict[str, Any]) -> str:
    signing_input = f"{part(header)}.{part(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def sign(key: Any, payload: dict[str, Any], *, alg: str, kid: str | None) -> str:
    header: dict[str, Any] = {"alg": alg}
    if kid is not None:
        header["kid"] = kid
    return jwt.encode(header, payload, key, algorithms=[alg])


async def rejected(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as info:
        await verifier.verify(token)
    return info.value.message


# ---------- a real JWKS server ----------


class JwksServer:
    """Serves mutable JWKS documents on 127.0.0.1 and counts requests per path."""

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}
        self.hits: dict[str, int] = {}
        self.status = 200
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer._lock:
                    outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                    doc = outer.documents.get(self.path)
                    status = outer.status
                if doc is None or status != 200:
                    self.send_response(404 if doc is None else status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def publish(self, path: str, *keys: Any) -> None:
        with self._lock:
            self.documents[path] = {"keys": [k.as_dict(private=False) for k in keys]}

    def count(self, path: str) -> int:
        with self._lock:
            return self.hits.get(path, 0)


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
        server.thread.join(5)


@pytest.fixture
def dead_url() -> str:
    """A URL on a port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/jwks.json"


# ---------- keys and verifiers ----------


@pytest.fixture
def own_ec() -> ECKey:
    return ECKey.generate_key("P-256")


@pytest.fixture
def own(own_ec: ECKey) -> SigningKey:
    return SigningKey(own_ec)


@pytest.fixture
def ext_ec() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig"})


@pytest.fixture
def ext_rsa() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})


@pytest.fixture
def ext_paths(
    request: pytest.FixtureRequest, jwks_server: JwksServer, ext_ec: ECKey, ext_rsa: RSAKey
) -> dict[str, str]:
    """Per-test JWKS paths so hit counts and key sets don't leak between tests."""
    name = request.node.name.replace("[", "_").replace("]", "")
    paths = {EXT: f"/{name}/ext.json", EXT_ES_ONLY: f"/{name}/es-only.json"}
    jwks_server.publish(paths[EXT], ext_ec, ext_rsa)
    jwks_server.publish(paths[EXT_ES_ONLY], ext_ec, ext_rsa)
    return paths


def make_verifier(own: SigningKey, issuers: tuple[IssuerConfig, ...] = (), **kwargs: Any) -> TokenVerifier:
    return TokenVerifier(own_key=own, own_issuer=OWN, audience=AUD, issuers=issuers, **kwargs)


@pytest.fixture
async def verifier(
    own: SigningKey, jwks_server: JwksServer, ext_paths: dict[str, str]
) -> AsyncIterator[TokenVerifier]:
    issuers = (
        IssuerConfig(
            issuer=EXT,
            jwks_url=jwks_server.url(ext_paths[EXT]),
            audience="uds-api",
            algorithms=("ES256", "RS256"),
            roles_claim="groups",
        ),
        IssuerConfig(
            issuer=EXT_ES_ONLY,
            jwks_url=jwks_server.url(ext_paths[EXT_ES_ONLY]),
            audience="uds-api",
            algorithms=("ES256",),
        ),
    )
    v = make_verifier(own, issuers)
    try:
        yield v
    finally:
        await v.aclose()


# ---------- good cases ----------


async def test_own_token_round_trips_roles_kind_tenant(verifier: TokenVerifier, own: SigningKey):
    token = own.issue(
        "svc-etl",
        issuer=OWN,
        audience=AUD,
        roles=[PLATFORM_ADMIN, "auditor"],
        kind="service",
        tenant="acme",
    )
    p = await verifier.verify(token)
    assert p == Principal(
        subject="svc-etl",
        issuer=OWN,
        kind="service",
        platform_roles=frozenset({PLATFORM_ADMIN, "auditor"}),
        expires_at=p.expires_at,
        tenant="acme",
    )
    assert p.is_platform_admin
    assert p.expires_at > time.time()


async def test_own_user_token_defaults(verifier: TokenVerifier, own: SigningKey):
    p = await verifier.verify(own.issue("alice", issuer=OWN, audience=AUD))
    assert (p.subject, p.kind, p.platform_roles, p.tenant) == ("alice", "user", frozenset(), None)
    assert not p.is_platform_admin


def test_issued_token_header_and_claims(own: SigningKey):
    token = own.issue("alice", issuer=OWN, audience=AUD, ttl=60, roles=["r"], now=1000)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    body = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert header == {"alg": "ES256", "kid": own.kid, "typ": "JWT"}
    assert body["iat"] == body["nbf"] == 1000 and body["exp"] == 1060
    assert body["uds_roles"] == ["r"] and "uds_kind" not in body and "tenant" not in body
    assert isinstance(body["jti"], str) and len(body["jti"]) >= 16


def test_jwks_is_public_only(own: SigningKey):
    (jwk,) = own.jwks()["keys"]
    assert "d" not in jwk
    assert jwk["kid"] == own.kid and jwk["use"] == "sig" and jwk["alg"] == "ES256"
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256"


async def test_external_token_verifies(verifier: TokenVerifier, ext_ec: ECKey, ext_rsa: RSAKey):
    payload = claims(iss=EXT, aud="uds-api", sub="bob", groups=["platform-admin"], uds_kind="service")
    p = await verifier.verify(sign(ext_ec, payload, alg="ES256", kid="ec-1"))
    assert (p.subject, p.issuer, p.kind, p.tenant) == ("bob", EXT, "user", None)
    assert p.is_platform_admin  # from roles_claim, not from uds_roles
    p2 = await verifier.verify(sign(ext_rsa, payload, alg="RS256", kid="rsa-1"))
    assert p2.subject == "bob"


async def test_external_issuer_without_roles_claim_gets_no_roles(verifier: TokenVerifier, ext_ec: ECKey):
    payload = claims(iss=EXT_ES_ONLY, aud="uds-api", uds_roles=[PLATFORM_ADMIN], groups=["x"])
    p = await verifier.verify(sign(ext_ec, payload, alg="ES256", kid="ec-1"))
    assert p.platform_roles == frozenset()


async def test_external_key_rotation_is_picked_up(
    verifier: TokenVerifier, jwks_server: JwksServer, ext_paths: dict[str, str], ext_ec: ECKey
):
    path = ext_paths[EXT]
    payload = claims(iss=EXT, aud="uds-api")
    await verifier.verify(sign(ext_ec, payload, alg="ES256", kid="ec-1"))
    assert jwks_server.count(path) == 1
    rotated = ECKey.generate_key("P-256", parameters={"kid": "ec-2"})
    jwks_server.publish(path, rotated)
    p = await verifier.verify(sign(rotated, payload, alg="ES256", kid="ec-2"))
    assert p.subject == "alice"
    assert jwks_server.count(path) == 2


async def test_jwks_fetches_coalesce(
    verifier: TokenVerifier, jwks_server: JwksServer, ext_paths: dict[str, str], ext_ec: ECKey
):
    tokens = [
        sign(ext_ec, claims(iss=EXT, aud="uds-api", sub=f"u{i}"), alg="ES256", kid="ec-1") for i in range(10)
    ]
    results = await asyncio.gather(*(verifier.verify(t) for t in tokens))
    assert [p.subject for p in results] == [f"u{i}" for i in range(10)]
    assert jwks_server.count(ext_paths[EXT]) == 1


async def test_cached_verification_returns_same_principal(own: SigningKey):
    clock = [time.time()]
    v = make_verifier(own, clock=lambda: clock[0])
    token = own.issue("alice", issuer=OWN, audience=AUD, ttl=60, now=clock[0])
    first = await v.verify(token)
    assert await v.verify(token) is first
    clock[0] += 59
    assert await v.verify(token) is first
    # Past exp and past the leeway: the cached entry must not be served.
    clock[0] += 40
    assert await rejected(v, token) == "token expired"
    await v.aclose()


async def test_cache_is_bounded_lru(own: SigningKey):
    v = make_verifier(own, cache_size=2)
    a, b, c = (own.issue(s, issuer=OWN, audience=AUD) for s in "abc")
    pa = await v.verify(a)
    await v.verify(b)
    assert await v.verify(a) is pa  # a is now most recent
    await v.verify(c)  # evicts b
    assert await v.verify(a) is pa
    assert len(v._cache) == 2 and b not in v._cache


# ---------- rejections ----------


@pytest.mark.parametrize("alg", ["none", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["", "c2lnbmF0dXJl"])
async def test_alg_none_rejected(verifier: TokenVerifier, own: SigningKey, alg: str, signature: str):
    for iss, aud in ((OWN, AUD), (EXT, "uds-api")):
        token = forge_unsigned({"alg": alg, "kid": own.kid, "typ": "JWT"}, claims(iss, aud), signature)
        assert await rejected(verifier, token) == "token algorithm not allowed"


async def test_hs256_with_public_key_as_secret_rejected(verifier: TokenVerifier, own: SigningKey):
    pem = own.public_key.as_pem(private=False)
    jwk_json = json.dumps(own.jwks()["keys"][0]).encode()
    for secret in (pem, jwk_json):
        token = forge_hs256(secret, {"alg": "HS256", "kid": own.kid, "typ": "JWT"}, claims())
        assert await rejected(verifier, token) == "token algorithm not allowed"


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_joserfc_refuses_on_its_own(verifier: TokenVerifier, own: SigningKey, alg: str):
    # Defence in depth: even past the header pre-check, the allowlist given to joserfc holds.
    pem = own.public_key.as_pem(private=False)
    header = {"alg": alg, "kid": own.kid}
    token = forge_unsigned(header, claims()) if alg == "none" else forge_hs256(pem, header, claims())
    with pytest.raises(Unauthenticated, match="malformed token"):
        verifier._check(token, own.public_key, ["ES256"], issuer=OWN, audience=AUD, now=time.time())


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
async def test_other_hmac_algs_rejected(verifier: TokenVerifier, own: SigningKey, alg: str):
    token = forge_unsigned({"alg": alg, "kid": own.kid}, claims(), b64(b"x" * 48))
    assert await rejected(verifier, token) == "token algorithm not allowed"


async def test_unknown_kid_refreshes_at_most_once(
    verifier: TokenVerifier, jwks_server: JwksServer, ext_paths: dict[str, str], ext_ec: ECKey
):
    path = ext_paths[EXT]
    payload = claims(iss=EXT, aud="uds-api")
    await verifier.verify(sign(ext_ec, payload, alg="ES256", kid="ec-1"))
    before = jwks_server.count(path)
    stranger = ECKey.generate_key("P-256")
    for kid in ("bogus-1", "bogus-2"):
        token = sign(stranger, payload, alg="ES256", kid=kid)
        assert await rejected(verifier, token) == "unknown signing key"
    assert jwks_server.count(path) - before == 1


async def test_external_token_without_kid_rejected(verifier: TokenVerifier, ext_ec: ECKey):
    token = sign(ext_ec, claims(iss=EXT, aud="uds-api"), alg="ES256", kid=None)
    assert await rejected(verifier, token) == "token has no key id"


async def test_expired_rejected(verifier: TokenVerifier, own: SigningKey):
    token = own.issue("alice", issuer=OWN, audience=AUD, ttl=60, now=time.time() - 3600)
    assert await rejected(verifier, token) == "token expired"


async def test_not_yet_valid_rejected(verifier: TokenVerifier, own_ec: ECKey, own: SigningKey):
    now = int(time.time())
    token = sign(own_ec, claims(nbf=now + 3600, exp=now + 7200), alg="ES256", kid=own.kid)
    assert await rejected(verifier, token) == "token not yet valid"


async def test_wrong_issuer_rejected(verifier: TokenVerifier, own: SigningKey, own_ec: ECKey):
    token = own.issue("alice", issuer="https://evil.example", audience=AUD)
    assert await rejected(verifier, token) == "unknown issuer"
    no_iss = sign(own_ec, claims(iss=None), alg="ES256", kid=own.kid)
    assert await rejected(verifier, no_iss) == "unknown issuer"


async def test_own_key_cannot_sign_for_external_issuer(verifier: TokenVerifier, own_ec: ECKey):
    token = sign(own_ec, claims(iss=EXT, aud="uds-api"), alg="ES256", kid="ec-1")
    assert await rejected(verifier, token) == "invalid token signature"


async def test_wrong_audience_rejected(verifier: TokenVerifier, own: SigningKey, ext_ec: ECKey):
    token = own.issue("alice", issuer=OWN, audience="someone-else")
    assert await rejected(verifier, token) == "invalid token claim: aud"
    # An external token must carry the issuer's audience, not UDS's own.
    ext = sign(ext_ec, claims(iss=EXT, aud=AUD), alg="ES256", kid="ec-1")
    assert await rejected(verifier, ext) == "invalid token claim: aud"


@pytest.mark.parametrize("missing", ["exp", "aud", "sub"])
async def test_missing_required_claim_rejected(
    verifier: TokenVerifier, own_ec: ECKey, own: SigningKey, missing: str
):
    token = sign(own_ec, claims(**{missing: None}), alg="ES256", kid=own.kid)
    assert await rejected(verifier, token) == f"token is missing claim: {missing}"


async def test_absurd_exp_rejected(verifier: TokenVerifier, own_ec: ECKey, own: SigningKey):
    token = sign(own_ec, claims(exp=10**400), alg="ES256", kid=own.kid)
    assert await rejected(verifier, token) == "invalid token claim: exp"
    nan = forge_es256(own_ec.private_key, {"alg": "ES256", "kid": own.kid}, claims(exp=float("nan")))
    assert await rejected(verifier, nan) == "invalid token claim: exp"


async def test_empty_subject_rejected(verifier: TokenVerifier, own_ec: ECKey, own: SigningKey):
    token = sign(own_ec, claims(sub=""), alg="ES256", kid=own.kid)
    assert await rejected(verifier, token) == "invalid token claim: sub"


async def test_service_token_without_tenant_rejected(verifier: TokenVerifier, own_ec: ECKey, own: SigningKey):
    token = sign(own_ec, claims(uds_kind="service"), alg="ES256", kid=own.kid)
    assert await rejected(verifier, token) == "service token has no tenant"


async def test_huge_token_rejected_before_parsing(verifier: TokenVerifier):
    assert await rejected(verifier, "a" * 1_000_000) == "token too large"
    assert await rejected(verifier, "{" * 1_000_000) == "token too large"


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "a.b",
        "...",
        "a.b.c",
        "a.b.c.d",
        os.urandom(64).decode("latin-1"),
        b64(os.urandom(64)),
        f"{b64(b'not json')}.{part({})}.",
        f"{part([1, 2])}.{part({})}.",
        f"{part({'alg': 'ES256'})}.{b64(b'[')}.",
        f"{b64(b'[' * 5000)}.{part({})}.",
        "eyJhbGciOiJFUzI1NiJ9.eyJ+.abc",
    ],
)
async def test_garbage_rejected(verifier: TokenVerifier, garbage: str):
    assert await rejected(verifier, garbage) == "malformed token"


async def test_b64_false_header_rejected(verifier: TokenVerifier, own_ec: ECKey, own: SigningKey):
    header = {"alg": "ES256", "kid": own.kid, "b64": False, "crit": ["b64"]}
    token = forge_es256(own_ec.private_key, header, claims())
    assert await rejected(verifier, token) == "unsupported token header"


async def test_other_es256_key_with_right_kid_rejected(verifier: TokenVerifier, own: SigningKey):
    impostor = ec.generate_private_key(ec.SECP256R1())
    token = forge_es256(impostor, {"alg": "ES256", "kid": own.kid, "typ": "JWT"}, claims())
    assert await rejected(verifier, token) == "invalid token signature"
    ext = forge_es256(impostor, {"alg": "ES256", "kid": "ec-1"}, claims(iss=EXT, aud="uds-api"))
    assert await rejected(verifier, ext) == "invalid token signature"


async def test_hand_forged_es256_with_own_key_verifies(
    verifier: TokenVerifier, own_ec: ECKey, own: SigningKey
):
    # Control for the forgeries above: the hand-built signer produces valid tokens.
    token = forge_es256(own_ec.private_key, {"alg": "ES256", "kid": own.kid}, claims())
    assert (await verifier.verify(token)).subject == "alice"


async def test_alg_outside_issuer_allowlist_rejected(verifier: TokenVerifier, ext_rsa: RSAKey):
    token = sign(ext_rsa, claims(iss=EXT_ES_ONLY, aud="uds-api"), alg="RS256", kid="rsa-1")
    assert await rejected(verifier, token) == "token algorithm not allowed"


async def test_own_issuer_accepts_only_es256(verifier: TokenVerifier, ext_rsa: RSAKey, own: SigningKey):
    token = sign(ext_rsa, claims(), alg="RS256", kid=own.kid)
    assert await rejected(verifier, token) == "token algorithm not allowed"


async def test_own_token_with_foreign_kid_rejected(verifier: TokenVerifier, own_ec: ECKey):
    token = sign(own_ec, claims(), alg="ES256", kid="someone-elses")
    assert await rejected(verifier, token) == "unknown signing key"


async def test_jwks_server_down(own: SigningKey, dead_url: str, ext_ec: ECKey):
    cfg = IssuerConfig(issuer=EXT, jwks_url=dead_url, audience="uds-api")
    v = make_verifier(own, (cfg,))
    token = sign(ext_ec, claims(iss=EXT, aud="uds-api"), alg="ES256", kid="ec-1")
    assert await rejected(v, token) == "cannot fetch signing keys for issuer"
    # Within the back-off the error comes at once, without another connection attempt.
    assert await rejected(v, token) == "cannot fetch signing keys for issuer"
    await v.aclose()


async def test_jwks_server_error_status(own: SigningKey, jwks_server: JwksServer, ext_ec: ECKey):
    cfg = IssuerConfig(issuer=EXT, jwks_url=jwks_server.url("/missing.json"), audience="uds-api")
    async with httpx.AsyncClient() as http:
        v = make_verifier(own, (cfg,), http=http)
        token = sign(ext_ec, claims(iss=EXT, aud="uds-api"), alg="ES256", kid="ec-1")
        assert await rejected(v, token) == "cannot fetch signing keys for issuer"
        await v.aclose()
        assert not http.is_closed  # a caller-supplied client is the caller's to close


# ---------- the key file ----------


def test_load_or_create_is_stable_and_private(tmp_path: Path):
    first = SigningKey.load_or_create(tmp_path)
    second = SigningKey.load_or_create(tmp_path)
    assert first.kid == second.kid
    path = tmp_path / "keys" / "signing.jwk"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["signing.jwk"]  # no temp files left
    assert first.kid == ECKey.import_key(json.loads(path.read_text())).thumbprint()


async def test_key_from_file_verifies_its_tokens(tmp_path: Path):
    key = SigningKey.load_or_create(tmp_path)
    v = make_verifier(SigningKey.load_or_create(tmp_path))
    assert (await v.verify(key.issue("alice", issuer=OWN, audience=AUD))).subject == "alice"


def test_concurrent_first_start_agrees_on_one_key(tmp_path: Path):
    with ThreadPoolExecutor(8) as pool:
        kids = set(pool.map(lambda _: SigningKey.load_or_create(tmp_path).kid, range(16)))
    assert len(kids) == 1
    assert [p.name for p in (tmp_path / "keys").iterdir()] == ["signing.jwk"]
