"""Structured logs: the request id (and tenant, subject, operation, job) on every line, request
ids taken or made, INTERNAL errors quoting it, and no secret in the logs of a full flow."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from conftest import Server, make_tenant
from jobs.kit import running_worker
from observability.conftest import Source
from uds.observability.logging import configure_logging
from uds.settings import Settings

READ = "query ObsLog { me { subject } auditLog(first: 2) { edges { node { id action } } } }"
# A mutation: its SQL goes through SQLAlchemy's engine, which logs every statement.
WRITE = 'mutation ObsLogWrite { setMember(subject: "new@x", role: VIEWER) { __typename } }'
REGISTER = """
mutation($input: DataSourceInput!) { registerDataSource(input: $input) { __typename ... on DataSource { id } } }"""
TEST_SOURCE = (
    "mutation($id: ID!) { testDataSource(id: $id) { __typename ... on DataSourceTest { ok message } } }"
)
START = "mutation($id: ID!) { startDiscovery(dataSourceId: $id) { __typename ... on Job { id } } }"
JOB = "query($id: ID!) { job(id: $id) { status error } }"
CREATE_CLIENT = """mutation($s: String!) { admin { createServiceClient(slug: $s, name: "etl", role: EDITOR) {
  __typename ... on ServiceClient { clientId clientSecret } } } }"""
GENERATED_ID = re.compile(r"[0-9a-f]{24}")


@dataclass
class Captured:
    stream: io.StringIO

    def clear(self) -> None:
        self.stream.seek(0)
        self.stream.truncate()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]


@contextlib.contextmanager
def captured_logs(mode: str = "prod", root_level: int = logging.INFO, **levels: int) -> Iterator[Captured]:
    """The process's log lines as UDS formats them (JSON in prod), with the root logger at
    `root_level` and loggers at `levels` (logger name with dots as __) for the duration."""
    root = logging.getLogger()
    names = [n.replace("__", ".") for n in levels]
    saved = {name: logging.getLogger(name).level for name in ("", *names)}
    stream = io.StringIO()
    handler = configure_logging(Settings(mode=mode), stream=stream)  # type: ignore[arg-type]
    root.setLevel(root_level)
    for name, level in zip(names, levels.values(), strict=True):
        logging.getLogger(name).setLevel(level)
    try:
        yield Captured(stream)
    finally:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name or None).setLevel(level)


async def test_every_line_of_a_request_carries_its_request_id(obs_server: Server) -> None:
    slug = await make_tenant(obs_server, members={"ann@x": "ADMIN"})
    token = obs_server.token("ann@x")
    await obs_server.gql(READ, token=token, tenant=slug)  # token and tenant now cached
    for query, operation, request_id in (
        (READ, "ObsLog", "req-lines-1"),
        (WRITE, "ObsLogWrite", "req-lines-2"),
    ):
        levels = {"sqlalchemy__engine": logging.INFO, "uvicorn__access": logging.INFO, "uds": logging.DEBUG}
        with captured_logs(**levels) as logs:
            logs.clear()
            response = await obs_server.http.post(
                f"{obs_server.url}/graphql",
                json={"query": query},
                headers={"authorization": f"Bearer {token}", "x-tenant-id": slug, "x-request-id": request_id},
            )
            assert response.status_code == 200 and "errors" not in response.json(), response.json()
            lines = logs.lines()
        assert response.headers["x-request-id"] == request_id
        request_lines = [
            line for line in lines if line["logger"].startswith(("sqlalchemy", "uvicorn", "uds"))
        ]
        assert any(line["logger"] == "uvicorn.access" for line in request_lines)
        if query is WRITE:  # BEGIN, the upsert, the audit entry, COMMIT, and the access line
            assert sum(line["logger"].startswith("sqlalchemy") for line in request_lines) >= 4, lines
        for line in request_lines:
            assert line["request_id"] == request_id, line
            assert (line["tenant"], line["subject"], line["operation"]) == (slug, "ann@x", operation), line
            assert line["job_id"] is None and line["level"] and line["ts"].endswith("Z")


async def test_request_ids_are_taken_when_well_formed_and_made_otherwise(obs_server: Server) -> None:
    url = f"{obs_server.url}/healthz"
    for good in ("abc-123", "0af7651916cd43dd8448eb211c80319c", "trace:1/2+3=4.5_6", "x" * 128):
        response = await obs_server.http.get(url, headers={"x-request-id": good})
        assert response.headers["x-request-id"] == good
    for bad in ("", "has space", "x" * 129, 'quote"d', "new\\nline", "ünïcode".encode()):
        response = await obs_server.http.get(url, headers={"x-request-id": bad})
        assert GENERATED_ID.fullmatch(response.headers["x-request-id"]), (bad, response.headers)
    made = {(await obs_server.http.get(url)).headers["x-request-id"] for _ in range(5)}
    assert len(made) == 5 and all(GENERATED_ID.fullmatch(m) for m in made)
    refused = await obs_server.http.post(
        f"{obs_server.url}/graphql",
        json={"query": "{ me { subject } }"},
        headers={"authorization": "Bearer x"},
    )
    assert refused.status_code == 401 and GENERATED_ID.fullmatch(refused.headers["x-request-id"])


async def test_internal_errors_quote_the_request_id(
    obs_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from uds.api import principal

    def broken(cls: Any, value: Any) -> Any:
        raise RuntimeError("the principal could not be read (dsn postgresql://app:hunter2-xyz@db/app)")

    monkeypatch.setattr(principal.Principal, "from_value", classmethod(broken))
    with captured_logs() as logs:
        status, body = await obs_server.gql(
            "query ObsBroken { me { subject } }",
            token=obs_server.token("ann@x"),
            headers={"x-request-id": "req-internal-9"},
        )
    error = body["errors"][0]
    assert error["extensions"] == {"code": "INTERNAL", "requestId": "req-internal-9"}
    assert "req-internal-9" in error["message"] and "hunter2" not in json.dumps(body)
    logged = [line for line in logs.lines() if line["level"] == "error"]
    assert len(logged) == 1 and logged[0]["request_id"] == "req-internal-9", logs.text
    assert "RuntimeError" in logged[0]["exc"] and "postgresql://app:[REDACTED]@db" in logged[0]["exc"]
    assert "hunter2" not in logs.text


async def test_readable_lines_in_dev(obs_server: Server) -> None:
    with captured_logs(mode="dev", uvicorn__access=logging.INFO) as logs:
        await obs_server.http.get(f"{obs_server.url}/healthz?token=abc123", headers={"x-request-id": "dev-1"})
        text = logs.text
    line = next(line for line in text.splitlines() if "uvicorn.access" in line)
    assert "[request_id=dev-1]" in line and "GET /healthz?…" in line and "abc123" not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_known_secret_shapes_are_redacted() -> None:
    with captured_logs() as logs:
        log = logging.getLogger("uds.test")
        log.warning("connecting to %s", "postgresql://bob:s3cr3t-one@db:5432/app")
        log.warning(
            "headers %s", {"authorization": "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"}
        )
        log.warning("form client_id=uds_sc_1&client_secret=s3cr3t-two&grant_type=client_credentials")
        log.warning("input %r", {"name": "x", "password": "s3cr3t-three"})
        log.warning("libpq host=db password=s3cr3t-four user=u")
        log.warning("raw token eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ5In0.c2lnbmF0dXJlMg in text")
    assert "s3cr3t" not in logs.text and "eyJ" not in logs.text
    assert logs.text.count("[REDACTED]") >= 6
    assert "uds_sc_1" in logs.text, "identifiers stay readable"


async def test_no_secret_token_or_password_in_the_logs_of_a_full_flow(
    obs_server: Server, obs_settings: Settings, library: Source
) -> None:
    """Everything logged at DEBUG while a data source is registered, tested and
    discovered, a service client is made and used, and tokens go back and forth."""
    server = obs_server
    admin_token = server.token("root@x", admin=True)
    editor_token = server.token("ed@x")
    debug = logging.DEBUG
    with captured_logs(
        root_level=debug,
        uvicorn__access=debug,
        uvicorn__error=debug,
        sqlalchemy__engine=debug,
        arq=debug,
        uds=debug,
    ) as logs:
        slug = await make_tenant(server, members={"ed@x": "EDITOR"})
        status, body = await server.gql(
            REGISTER, {"input": library.register_input()}, token=editor_token, tenant=slug
        )
        source_id = body["data"]["registerDataSource"]["id"]
        status, body = await server.gql(TEST_SOURCE, {"id": source_id}, token=editor_token, tenant=slug)
        assert body["data"]["testDataSource"]["ok"] is True, body
        created = (await server.gql(CREATE_CLIENT, {"s": slug}, token=admin_token))[1]
        client = created["data"]["admin"]["createServiceClient"]
        client_id, client_secret = client["clientId"], client["clientSecret"]
        issued = await server.http.post(
            f"{server.url}/oauth/token",
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret},
        )
        service_token = issued.json()["access_token"]
        status, body = await server.gql("{ me { subject } }", token=service_token, tenant=slug)
        service_subject = body["data"]["me"]["subject"]
        wrong = await server.http.post(
            f"{server.url}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": "nope-" + client_secret,
            },
        )
        assert wrong.status_code in (400, 401)
        async with running_worker(obs_settings):
            status, body = await server.gql(START, {"id": source_id}, token=service_token, tenant=slug)
            job_id = body["data"]["startDiscovery"]["id"]
            for _ in range(300):
                status, body = await server.gql(JOB, {"id": job_id}, token=service_token, tenant=slug)
                if body["data"]["job"]["status"] in ("SUCCEEDED", "FAILED"):
                    break
                await asyncio.sleep(0.1)
        assert body["data"]["job"]["status"] == "SUCCEEDED", body
        # Secrets where clients should not put them: a GET's variables, a tampered token.
        await server.http.get(
            f"{server.url}/graphql",
            params={
                "query": "query($password: String) { me { subject } }",
                "variables": json.dumps({"password": library.password}),
            },
            headers={"authorization": f"Bearer {editor_token}", "x-tenant-id": slug},
        )
        await server.gql("{ me { subject } }", token=admin_token[:-4] + "AAAA")
        text = logs.text

    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) > 100, "the flow was logged in detail"
    job_lines = [line for line in lines if line["job_id"] == job_id]
    assert job_lines and all(
        line["tenant"] == slug and line["operation"] == "discovery" for line in job_lines
    )
    assert any(line["subject"] == service_subject for line in job_lines), "the job's lines say who started it"
    secrets = {
        "data source password": library.password,
        "client secret": client_secret,
        "admin token": admin_token,
        "editor token": editor_token,
        "service token": service_token,
        "admin token signature": admin_token.rsplit(".", 1)[1],
        "service token signature": service_token.rsplit(".", 1)[1],
        "credential key": (obs_settings.data_dir / "keys" / "secrets.key").read_text().strip(),
    }
    for what, secret in secrets.items():
        assert secret and secret not in text, f"the {what} is in the logs"
