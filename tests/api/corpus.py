"""The differential corpus: data with awkward values, and the GraphQL documents to compare.

`seed` writes tenants whose rows exercise every way a value can be written (escapes,
unicode, NULLs, float layouts, timestamps with and without fractions, ties in the sort
order, values the normal path reports as errors). `documents` gathers every query in the
tests and the docs; `variants` generates selections of the list fields with aliases,
fragments, variables, @skip/@include, errors, empty lists, nulls and denied fields.
"""

from __future__ import annotations

import ast
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from graphql import GraphQLSchema, OperationType, parse, validate
from graphql.language import OperationDefinitionNode
from sqlalchemy import text

from conftest import Server, make_tenant
from uds.datasources.service import secret_context
from uds.db import transaction
from uds.discovery import service as discovery
from uds.discovery.snapshot import (
    CatalogSnapshot,
    ColumnQuality,
    ColumnSnapshot,
    Figure,
    Quality,
    TableSnapshot,
)
from uds.tenants.slugs import tenant_schema

ROOT = Path(__file__).resolve().parents[2]

AWKWARD = [
    'quote " inside',
    "back\\slash",
    "tab\tand\nnewline\r",
    "control \x01\x02\x1f\x7f",
    "unicode é ü 中文 😀",
    "separators \u2028 \u2029 and bom \ufeff",
    "</script><b>html</b>",
    "",
    "x" * 300,
]
# Progress values (0..1 by constraint) whose JSON layouts differ: plain, tiny, exponent,
# integral, negative zero. Integral floats up to and past 2^53 come from row counts.
FLOATS = [0.0, 1.0, 0.1, 1 / 3, 1e-7, 0.00001, 0.0001234, 0.123456789, 2.5e-5, 0.5, 1e-300, 5e-324, -0.0]


@dataclass
class Seeded:
    rich: str
    empty: str
    odd: str
    admin: str = "ad@x"
    viewer: str = "vi@x"
    job_ids: list[str] = field(default_factory=list)
    source_ids: list[str] = field(default_factory=list)


def _sealed(server: Server, tenant: str, source_id: uuid.UUID) -> dict[str, str]:
    """A real sealed password for a row written by hand, so every key-holding command
    (`uds secrets rotate`) can still open it."""
    cipher = server.services.credentials
    return {"secret": cipher.seal("p", context=secret_context(tenant, source_id)), "kid": cipher.current_kid}


async def seed(server: Server) -> Seeded:
    rich = await make_tenant(server, members={"ad@x": "ADMIN", "vi@x": "VIEWER"})
    empty = await make_tenant(server, members={"ad@x": "ADMIN", "vi@x": "VIEWER"})
    odd = await make_tenant(server, members={"ad@x": "ADMIN", "vi@x": "VIEWER"})
    seeded = Seeded(rich, empty, odd)
    base = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    engine = server.services.engine
    async with engine.begin() as conn:
        schema = tenant_schema(rich)
        for i in range(30):
            word = AWKWARD[i % len(AWKWARD)]
            at = base + timedelta(seconds=i, microseconds=(0 if i % 3 == 0 else i * 1010))
            await conn.execute(
                text(
                    f'insert into "{schema}".audit_log (at, actor, action, target, allowed, detail)'
                    " values (:at, :actor, :action, :target, :allowed, '{}')"
                ),
                {
                    "at": at,
                    "actor": f"actor {word}"[:255],
                    "action": f"act.{i % 4}",
                    "target": None if i % 5 == 0 else word,
                    "allowed": i % 7 != 0,
                },
            )
        statuses = ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]
        for i in range(26):
            job_id = uuid.UUID(int=(i * 7919 + 13) % (1 << 128))
            seeded.job_ids.append(str(job_id))
            created = base + timedelta(minutes=i // 2, microseconds=0 if i % 4 else 123456)  # pairs tie
            await conn.execute(
                text(
                    f'insert into "{schema}".jobs (id, kind, status, progress, phase, message, error, params,'
                    " result, attempts, last_seq, cancel_requested, created_by, created_at, started_at,"
                    " finished_at) values (:id, :kind, :status, :progress, :phase, :message, :error, '{}',"
                    " cast(:result as jsonb), :attempts, 0, :cancel, :by, :created, :started, :finished)"
                ),
                {
                    "id": job_id,
                    "kind": "tenant.stats" if i % 2 else "discovery",
                    "status": statuses[i % 5],
                    "progress": FLOATS[i % len(FLOATS)],
                    "phase": None if i % 3 == 0 else AWKWARD[i % len(AWKWARD)][:80],
                    "message": None if i % 4 == 0 else AWKWARD[(i + 3) % len(AWKWARD)],
                    "error": 'boom "x"' if statuses[i % 5] == "FAILED" else None,
                    "result": json.dumps({"n": i, "ok": True}) if statuses[i % 5] == "SUCCEEDED" else None,
                    "attempts": i % 3,
                    "cancel": i % 6 == 0,
                    "by": f"user{i % 3}@x",
                    "created": created,
                    "started": None if i % 5 == 0 else created + timedelta(seconds=1),
                    "finished": created + timedelta(seconds=2, microseconds=500) if i % 5 >= 2 else None,
                },
            )
        names = ["alpha", "Beta src", "gamma é", "delta-1", 'zeta "q"', "omega"]
        for i, name in enumerate(names):
            source_id = uuid.UUID(int=(i * 104729 + 7) % (1 << 128))
            seeded.source_ids.append(str(source_id))
            await conn.execute(
                text(
                    f'insert into "{schema}".data_sources (id, name, host, port, database, username, sslmode,'
                    " schemas, secret, secret_kid, version, created_by, created_at, updated_at) values (:id,"
                    " :name, :host, :port, 'db', :user, 'prefer', cast(:schemas as jsonb), :secret, :kid,"
                    " :version, 'ad@x', :created, :created)"
                ),
                {
                    "id": source_id,
                    "name": name,
                    "host": f"db{i}.example",
                    "port": 5432 + i,
                    "user": AWKWARD[i][:63],
                    "schemas": ["[]", "null", "[]", '["public"]', '["a", "b é"]', '["x"]'][i],
                    "version": i + 1,
                    **_sealed(server, rich, source_id),
                    "created": base + timedelta(hours=i),
                },
            )
            for r in range(i % 3):  # 0, 1 or 2 runs
                await conn.execute(
                    text(
                        f'insert into "{schema}".discovery_runs (id, data_source_id, job_id, status, started_at,'
                        " finished_at, rows_read, row_budget, server_version, database, warnings, error,"
                        " created_by) values (:id, :source, :job, :status, :started, :finished, :read,"
                        " :budget, :version, 'db', cast(:warnings as jsonb), :error, 'ad@x')"
                    ),
                    {
                        "id": uuid.UUID(int=(i * 31 + r * 17 + 5) % (1 << 128)),
                        "source": source_id,
                        "job": None if r else uuid.UUID(int=i + 99),
                        "status": ["SUCCEEDED", "FAILED"][r % 2],
                        "started": base + timedelta(days=r, microseconds=r * 7),
                        "finished": None if r else base + timedelta(days=r, seconds=5),
                        "read": [0, 12345, 2**40, 10**15, 4 * 10**15][(i + r) % 5],
                        "budget": 10**9,
                        "version": None if i % 2 else "PostgreSQL 16.4",
                        "warnings": ["null", "[]", '["slow table \\"t\\""]'][(i + r) % 3],
                        "error": "failed: \u2028" if r % 2 else None,
                    },
                )
        odd_schema = tenant_schema(odd)
    await _store_catalog(server, rich, uuid.UUID(seeded.source_ids[3]))
    async with engine.begin() as conn:
        # Values the normal path reports as field errors (a NULL in a non-null field), or
        # writes in ways PostgreSQL does not (floats from 2^53 on, lists that are not lists).
        for i, (count, schemas, warnings) in enumerate(
            [
                (2**60, "[]", '["w"]'),
                (7, '{"not": "a list"}', "[]"),
                (8, '["ok", 5]', '"text"'),
                (9, "[]", "[null]"),
            ]
        ):
            source_id = uuid.UUID(int=2000 + i)
            await conn.execute(
                text(
                    f'insert into "{odd_schema}".jobs (id, kind, status, progress, params, attempts, last_seq,'
                    " cancel_requested, created_by, created_at) values (:id, 'odd', 'QUEUED', 0.5, '{}', 0, 0,"
                    " false, 'ad@x', :at)"
                ),
                {"id": uuid.UUID(int=1000 + i), "at": base + timedelta(minutes=i)},
            )
            await conn.execute(
                text(
                    f'insert into "{odd_schema}".data_sources (id, name, host, port, database, username,'
                    " sslmode, schemas, secret, secret_kid, version, created_by) values (:id, :name, 'h', 5432,"
                    " 'db', 'u', 'prefer', cast(:schemas as jsonb), :secret, :kid, 1, 'ad@x')"
                ),
                {"id": source_id, "name": f"odd{i}", "schemas": schemas, **_sealed(server, odd, source_id)},
            )
            await conn.execute(
                text(
                    f'insert into "{odd_schema}".discovery_runs (id, data_source_id, status, rows_read, row_budget,'
                    " warnings, created_by) values (:id, :source, 'SUCCEEDED', :read, 10, cast(:w as jsonb),"
                    " 'ad@x')"
                ),
                {"id": uuid.UUID(int=3000 + i), "source": source_id, "read": count, "w": warnings},
            )
    return seeded


async def _store_catalog(server: Server, slug: str, source_id: uuid.UUID) -> None:
    """A discovery run of awkward tables and columns, stored as discovery stores one."""
    tables = [
        TableSnapshot(
            schema="public",
            name="orders",
            kind="table",
            row_estimate=Figure(1234.0, "stats"),
            size_bytes=8192,
            primary_key=["id"],
            profile_method="sample",
            quality=Quality(0.875, ["few nulls", "unicode é"]),
            columns=[
                ColumnSnapshot("id", 1, "integer", "numeric", False, semantic_type="identifier"),
                ColumnSnapshot(
                    "email",
                    2,
                    "text",
                    "text",
                    True,
                    semantic_type="email",
                    pii=True,
                    quality=ColumnQuality(1.0, 0.5, None, notes=["checked"]),
                ),
                ColumnSnapshot("total", 3, "numeric(10,2)", "numeric", True, default="0", comment='say "hi"'),
            ],
        ),
        TableSnapshot(
            schema="odd schema",
            name='T"able',
            kind="view",
            primary_key=[],
            columns=[ColumnSnapshot("x", 1, "jsonb", "json", True, quality=ColumnQuality(None, None, 1e-7))],
        ),
        TableSnapshot(schema="public", name="empty", kind="table", row_estimate=Figure(2**60, "estimate")),
    ]
    snapshot = CatalogSnapshot(database="db", server_version="16", tables=tables)
    async with transaction(server.services.engine, slug) as tx:
        await discovery.store_run(
            await tx.tenant(), data_source_id=source_id, snapshot=snapshot, created_by="ad@x", row_budget=1000
        )


# --------------------------------------------------------------------------------------
# Every query in the tests and the docs
# --------------------------------------------------------------------------------------


def _python_strings(path: Path) -> Iterator[str]:
    try:
        tree = ast.parse(path.read_text())
    except SyntaxError:  # pragma: no cover
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "{" in node.value:
            yield node.value


def _markdown_blocks(path: Path) -> Iterator[str]:
    for match in re.finditer(r"```graphql\n(.*?)```", path.read_text(), re.S):
        yield match.group(1)


def documents(schema: GraphQLSchema) -> list[tuple[str, str | None]]:
    """(document, operation name) of every valid query found in tests/, docs/ and README."""
    texts: list[str] = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path != Path(__file__).resolve():  # the generated variants are run on their own
            texts.extend(_python_strings(path))
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        texts.extend(_markdown_blocks(path))
    found: dict[tuple[str, str | None], None] = {}
    for source in texts:
        try:
            document = parse(source)
        except Exception:
            continue
        if validate(schema, document):
            continue
        for definition in document.definitions:
            if (
                isinstance(definition, OperationDefinitionNode)
                and definition.operation is OperationType.QUERY
            ):
                name = definition.name.value if definition.name else None
                found[(source, name)] = None
    return list(found)


def variables_for(document: str, operation: str | None, seeded: Seeded) -> dict[str, Any]:
    """Values for a document's variables, chosen by name and type from the seeded data."""
    values: dict[str, Any] = {}
    for definition in parse(document).definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if operation is not None and (definition.name is None or definition.name.value != operation):
            continue
        for var in definition.variable_definitions or ():
            name = var.variable.name.value
            kind = re.sub(r"[!\[\]]", "", _type_text(var.type))
            lower = name.lower()
            if kind == "ID":
                if "source" in lower:
                    values[name] = seeded.source_ids[1]
                elif "run" in lower:
                    values[name] = str(uuid.UUID(int=5))
                else:
                    values[name] = seeded.job_ids[2]
            elif kind == "Int":
                values[name] = 3
            elif kind == "JobStatus":
                values[name] = "SUCCEEDED"
            elif kind == "String":
                values[name] = "tenant.read" if "action" in lower else "x"
            elif kind == "Boolean":
                values[name] = True
    return values


def _type_text(node: Any) -> str:
    inner = getattr(node, "type", None)
    if inner is not None:
        return _type_text(inner) + ("!" if type(node).__name__ == "NonNullTypeNode" else "")
    return node.name.value


# --------------------------------------------------------------------------------------
# Generated variants of the list fields
# --------------------------------------------------------------------------------------

AUDIT_NODE = "id at actor action target allowed"
JOB_NODE = "id kind status progress phase message error attempts cancelRequested createdBy createdAt startedAt finishedAt"
SOURCE_NODE = (
    "id name host port database user sslmode schemas version createdBy createdAt"
    " lastDiscoveryRun { id dataSourceId jobId status startedAt finishedAt rowsRead rowBudget serverVersion"
    " warnings error }"
)
LISTS = {"auditLog": AUDIT_NODE, "jobs": JOB_NODE, "dataSources": SOURCE_NODE}
TYPES = {"auditLog": "AuditEntry", "jobs": "Job", "dataSources": "DataSource"}


def _aliased(selection: str) -> str:
    """Every top-level field of a flat selection under an alias, and __typename."""
    out = []
    depth = 0
    for token in re.findall(r"[A-Za-z_]+|[{}]", selection):
        if token == "{":
            depth += 1
            out.append("{ __typename")
        elif token == "}":
            depth -= 1
            out.append("}")
        elif depth == 0:
            out.append(f"a_{token}: {token}")
        else:
            out.append(f"n_{token}: {token}")
    return " ".join(out)


def variants() -> list[tuple[str, dict[str, Any]]]:
    """(document, variables) pairs exercising the compiled list fields."""
    out: list[tuple[str, dict[str, Any]]] = []
    for name, node in LISTS.items():
        type_name = TYPES[name]
        out += [
            (
                f"{{ {name} {{ edges {{ cursor node {{ {node} }} }} pageInfo {{ hasNextPage endCursor }} }} }}",
                {},
            ),
            (f"{{ {name}(first: 2) {{ nodes {{ {node} }} pageInfo {{ endCursor hasNextPage }} }} }}", {}),
            (
                f"{{ x: {name}(first: 5) {{ __typename e: edges {{ __typename c: cursor n: node {{ {_aliased(node)} }} }}"
                f" p: pageInfo {{ __typename h: hasNextPage }} }} }}",
                {},
            ),
            (
                f"query($n: Int) {{ {name}(first: $n) {{ nodes {{ ...F }} }} }} fragment F on {type_name} {{ {node} }}",
                {"n": 4},
            ),
            (
                f"{{ {name}(first: 3) {{ edges {{ node {{ ... on {type_name} {{ id }} ...G id }} }} }} }}"
                f" fragment G on {type_name} {{ __typename id }}",
                {},
            ),
            (
                f"query($s: Boolean!, $i: Boolean!) {{ {name}(first: 3) {{ edges {{ cursor @skip(if: $s)"
                f" node {{ id @include(if: $i) __typename }} }} pageInfo @include(if: $s) {{ hasNextPage }} }} }}",
                {"s": True, "i": False},
            ),
            (
                f"query($s: Boolean!, $i: Boolean!) {{ {name}(first: 3) {{ edges {{ cursor @skip(if: $s)"
                f" node {{ id @include(if: $i) __typename }} }} pageInfo @include(if: $s) {{ hasNextPage }} }} }}",
                {"s": False, "i": True},
            ),
            (
                f"{{ a: {name}(first: 2) {{ nodes {{ id }} }} b: {name}(first: 3) {{ edges {{ cursor }} }} }}",
                {},
            ),
            (
                f"{{ {name}(first: 2) {{ nodes {{ id id }} edges {{ node {{ id }} node {{ __typename }} }} }} }}",
                {},
            ),
            (f"{{ {name}(first: 0) {{ nodes {{ id }} }} }}", {}),  # an error
            (f"{{ {name}(first: 1000) {{ nodes {{ id }} }} }}", {}),  # an error
            (f'{{ {name}(after: "bm90LWEtY3Vyc29y") {{ nodes {{ id }} }} }}', {}),  # an error
            (f"{{ {name}(first: 50) {{ edges {{ node {{ __typename }} }} }} }}", {}),
        ]
    out += [
        ("{ jobs(status: FAILED) { nodes { id status error } pageInfo { hasNextPage } } }", {}),
        (
            "query($s: JobStatus) { jobs(status: $s, first: 2) { edges { cursor node { id } } } }",
            {"s": "QUEUED"},
        ),
        ("query($s: JobStatus) { jobs(status: $s, first: 2) { edges { cursor node { id } } } }", {"s": None}),
        ("{ jobs(first: 3) { nodes { id result } } }", {}),  # a JSON scalar: the normal path
        ("{ me { subject } auditLog(first: 2) { nodes { id } } jobs(first: 2) { nodes { id } } }", {}),
        (
            "{ dataSources { nodes { name r1: lastDiscoveryRun { id } r2: lastDiscoveryRun { status rowsRead } } } }",
            {},
        ),
        ("{ tenant { slug } dataSources(first: 2) { nodes { name lastDiscoveryRun { __typename } } } }", {}),
    ]
    return out


CATALOG_TABLE = "schema name kind rowEstimate sizeBytes primaryKey profileMethod"
CATALOG_COLUMN = "name position dataType nullable semanticType pii"


def catalog_variants(seeded: Seeded) -> list[tuple[str, dict[str, Any]]]:
    """The catalog's tables and columns: plain (JSON from PostgreSQL) and not (the normal path)."""
    with_run = {"id": seeded.source_ids[3]}
    no_run = {"id": seeded.source_ids[0]}
    head = "query($id: ID!) { catalog(dataSourceId: $id) {"
    out = [
        (
            f"{head} run {{ id status }} tables {{ {CATALOG_TABLE} columns {{ {CATALOG_COLUMN} }} }} }} }}",
            with_run,
        ),
        (
            f"{head} tables {{ name quality {{ score reasons }} columns {{ name quality {{ completeness uniqueness"
            " validity }} }} }} }} }",
            with_run,
        ),
        (
            f"{head} t: tables {{ __typename n: name c: columns {{ __typename n: name p: pii }} }} }} }}",
            with_run,
        ),
        (
            f"{head} tables {{ ...T }} }} }} fragment T on CatalogTable {{ name columns {{ ...C }} }}"
            " fragment C on CatalogColumn { name dataType }",
            with_run,
        ),
        (f"{head} tables {{ name columns {{ name profile {{ method }} }} }} }} }}", with_run),  # normal path
        (f"{head} tables {{ name }} relationships {{ fromTable }} }} }}", with_run),  # normal path
        (f"{head} a: tables {{ name }} b: tables {{ kind }} }} }}", with_run),  # normal path
        (f"{head} tables {{ name }} }} }}", no_run),  # no run yet: null
        (f"{head} tables {{ name }} }} }}", {"id": str(uuid.UUID(int=424242))}),  # not found
    ]
    return out


def paging_walks() -> list[str]:
    """Documents whose `after` is filled with the previous page's endCursor until the end."""
    return [
        f"query($a: String) {{ {name}(first: 7, after: $a) {{ edges {{ cursor node {{ {node} }} }}"
        " pageInfo { hasNextPage endCursor } } }"
        for name, node in LISTS.items()
    ]


def principals(seeded: Seeded, *, odd: bool = True) -> list[tuple[str, str]]:
    """(subject, tenant): an admin and a viewer (denied the audit log) of the rich tenant,
    an admin of the empty one (empty lists) and of the odd one (values that err)."""
    found = [(seeded.admin, seeded.rich), (seeded.viewer, seeded.rich), (seeded.admin, seeded.empty)]
    return [*found, (seeded.admin, seeded.odd)] if odd else found
