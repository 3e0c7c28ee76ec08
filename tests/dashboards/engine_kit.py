"""Helpers for the engine tests: real databases discovered for real, and checks on widgets.

Two sources of different domains: the demo shop (uds.demo, small) and a SaaS billing
database of our own (schema `billing`: plans, accounts, subscriptions, invoices, usage
events), with PII planted in both (contact names, e-mail addresses, phones, IP
addresses, card numbers) and a relationship that is only inferred (invoices to
subscriptions, usage events to accounts).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
from pglast import ast, parse_sql

from discovery.kit import OPEN, connect_args, create_database, drop_database, execute
from uds.dashboards.catalogfacts import is_pii
from uds.dashboards.draft import DashboardDraft, WidgetDraft
from uds.dashboards.sqlcheck import check_widget_sql
from uds.dashboards.vegalite import validate_spec
from uds.datasources.params import ConnectionParams
from uds.demo import build_demo_database
from uds.discovery.budget import Budget
from uds.discovery.engine import DiscoveryOptions, discover
from uds.discovery.profiles import ProfileOptions
from uds.discovery.snapshot import CatalogSnapshot

DEMO_ROWS = 5_000
OPTIONS = DiscoveryOptions(profile=ProfileOptions(sample_rows=4_000, exact_rows=10_000))
AGGREGATES = frozenset({"count", "sum", "avg", "min", "max"})

SAAS_SQL = """
create schema billing;
create table billing.plans (
  id integer primary key,
  name text not null unique,
  tier text not null,
  monthly_price numeric(10,2) not null
);
create table billing.accounts (
  id bigint primary key,
  company_name text not null,
  contact_name text not null,
  contact_email text,
  phone text,
  country char(2) not null,
  industry text not null,
  signup_at timestamptz not null
);
create table billing.subscriptions (
  id bigint primary key,
  account_id bigint not null references billing.accounts(id),
  plan_id integer not null references billing.plans(id),
  status text not null,
  seats integer not null,
  mrr numeric(12,2) not null,
  started_at timestamptz not null,
  canceled_at timestamptz
);
create table billing.invoices (
  id bigint primary key,
  subscription_id bigint not null,
  number text not null unique,
  amount_due numeric(12,2) not null,
  amount_paid numeric(12,2) not null,
  currency char(3) not null,
  status text not null,
  card_number text,
  issued_at timestamptz not null,
  due_on date not null
);
create table billing.usage_events (
  id bigint primary key,
  account_id bigint not null,
  feature text not null,
  duration_ms integer not null,
  ip_address text,
  occurred_at timestamptz not null
);
select setseed(0.17);
insert into billing.plans values
  (1, 'Starter', 'self-serve', 29), (2, 'Team', 'self-serve', 99), (3, 'Business', 'sales', 399),
  (4, 'Enterprise', 'sales', 1499), (5, 'Nonprofit', 'self-serve', 19);
insert into billing.accounts
select i,
       (array['Acme','Globex','Initech','Umbrella','Hooli','Vandelay','Stark','Wayne','Tyrell','Cyberdyne'])
         [1 + i % 10] || ' ' || (array['Labs','Group','Systems','Works','Partners'])[1 + (i / 10) % 5] || ' ' || i,
       (array['James','Mary','Robert','Linda','Sophie','Lukas','Yuki','Priya'])[1 + floor(random() * 8)::int]
         || ' ' || (array['Smith','Garcia','Muller','Rossi','Tanaka','Patel','Nowak'])[1 + floor(random() * 7)::int],
       case when random() < 0.03 then null else 'contact' || i || '@' ||
         (array['acme.io','globex.com','mail.example.org'])[1 + floor(random() * 3)::int] end,
       case when random() < 0.2 then null else '+1 ' || (200 + floor(random() * 700))::int || ' '
         || lpad(floor(random() * 1000)::int::text, 3, '0') || ' ' || lpad(floor(random() * 10000)::int::text, 4, '0') end,
       (array['US','US','US','GB','DE','FR','NL','JP'])[1 + floor(power(random(), 1.5) * 8)::int],
       (array['software','retail','finance','health','education','media','logistics','energy'])
         [1 + floor(power(random(), 1.3) * 8)::int],
       timestamptz '2021-03-01' + i * interval '2 days' + random() * interval '1 day'
from generate_series(1, 300) as i;
insert into billing.subscriptions
select i, 1 + (i * 7) % 300, p, s, seats, round(price * seats * (0.8 + 0.4 * random())::numeric, 2), start,
       case when s = 'canceled' then start + random() * interval '300 days' end
from (select i, 1 + floor(power(random(), 1.4) * 5)::int as p,
             (array['active','active','active','active','trialing','past_due','canceled','canceled'])
               [1 + floor(random() * 8)::int] as s,
             1 + floor(power(random(), 2) * 40)::int as seats,
             timestamptz '2021-06-01' + i * interval '1 day' + random() * interval '12 hours' as start
      from generate_series(1, 400) as i) g
join billing.plans on plans.id = g.p
cross join lateral (select plans.monthly_price as price) x;
insert into billing.invoices
select i, 1 + (i * 13) % 400, 'INV-' || lpad(i::text, 6, '0'), due,
       case when st = 'paid' then due when st = 'open' then 0 else round(due * random()::numeric, 2) end,
       (array['USD','USD','EUR','GBP'])[1 + floor(random() * 4)::int], st,
       case when random() < 0.3 then '4111 1111 1111 1111' end,
       issued, (issued + interval '30 days')::date
from (select i, round((20 + power(random(), 2) * 3000)::numeric, 2) as due,
             (array['paid','paid','paid','paid','paid','open','void','uncollectible'])
               [1 + floor(random() * 8)::int] as st,
             timestamptz '2022-01-01' + i * interval '5 hours' + random() * interval '2 hours' as issued
      from generate_series(1, 3000) as i) g;
insert into billing.usage_events
select i, 1 + floor(power(random(), 2) * 300)::bigint,
       (array['dashboard','export','api','search','alerts','sso','billing','reports','import','sharing',
              'comments','audit'])[1 + floor(power(random(), 1.5) * 12)::int],
       (50 + power(random(), 3) * 20000)::int,
       case when random() < 0.1 then null else (11 + floor(random() * 180))::int || '.'
         || floor(random() * 256)::int || '.' || floor(random() * 256)::int || '.' || (1 + floor(random() * 254))::int end,
       timestamptz '2023-01-01' + i * interval '90 minutes' + random() * interval '30 minutes'
from generate_series(1, 6000) as i;
analyze;
"""


@dataclass(frozen=True)
class Source:
    params: ConnectionParams
    catalog: CatalogSnapshot
    schemas: frozenset[str]
    pool: asyncpg.Pool


@contextlib.asynccontextmanager
async def discovered(params: ConnectionParams, schemas: Sequence[str]) -> AsyncIterator[Source]:
    catalog = await discover(
        params, budget=Budget(rows=10_000_000), guard=OPEN, options=OPTIONS, include_schemas=tuple(schemas)
    )
    pool = await asyncpg.create_pool(**connect_args(params), min_size=1, max_size=2)
    try:
        yield Source(params, catalog, frozenset(schemas), pool)
    finally:
        await pool.close()


async def demo_source(admin: ConnectionParams) -> AsyncIterator[Source]:
    name = f"uds_dash_demo_{uuid.uuid4().hex[:8]}"
    await build_demo_database(admin, rows=DEMO_ROWS, database=name)
    params = replace(admin.with_database(name), sslmode="disable")
    try:
        async with discovered(params, ["shop"]) as source:
            yield source
    finally:
        await drop_database(admin, name)


async def saas_source(admin: ConnectionParams) -> AsyncIterator[Source]:
    name = f"uds_dash_saas_{uuid.uuid4().hex[:8]}"
    await create_database(admin, name)
    params = replace(admin.with_database(name), sslmode="disable")
    try:
        await execute(params, SAAS_SQL)
        async with discovered(params, ["billing"]) as source:
            yield source
    finally:
        await drop_database(admin, name)


async def fetch(source: Source, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run `sql` read-only on the source; the result column names and rows."""
    async with source.pool.acquire() as conn, conn.transaction(readonly=True):
        statement = await conn.prepare(sql)
        columns = [a.name for a in statement.get_attributes()]
        rows = [tuple(r) for r in await statement.fetch()]
    return columns, rows


def encoding_fields(spec: dict[str, Any]) -> set[str]:
    """Fields the spec reads from its data (not those its transforms make)."""
    made: set[str] = set()
    read: set[str] = set()
    for transform in spec.get("transform", []):
        fold = transform.get("fold")
        if fold:
            read.update(fold)
        out = transform.get("as")
        made.update(out if isinstance(out, list) else [out] if out else [])
        for item in transform.get("window", []):
            made.add(item["as"])
    for channel in spec.get("encoding", {}).values():
        items = channel if isinstance(channel, list) else [channel]
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("field"), str):
                read.add(item["field"])
            if isinstance(item, dict) and isinstance(item.get("sort"), dict) and "field" in item["sort"]:
                read.add(item["sort"]["field"])
    return read - made


async def check_widget(source: Source, widget: WidgetDraft) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Every rule a generated widget keeps; returns its result."""
    checked = check_widget_sql(widget.sql, allowed_schemas=source.schemas)
    validate_spec(widget.spec)
    assert "data" in widget.spec and "values" not in widget.spec["data"], "specs carry no data"
    columns, rows = await fetch(source, widget.sql)
    assert rows, f"{widget.title}: no rows"
    assert await fetch(source, checked) == (columns, rows), "the checked SQL gives other rows"
    assert encoding_fields(widget.spec) <= set(columns), (widget.title, encoding_fields(widget.spec), columns)
    assert re.search(r"\bLIMIT \d+\s*$", widget.sql), widget.sql
    assert "ORDER BY" in widget.sql or widget.kind == "kpi", widget.sql
    assert all(c.count(".") == 2 for c in widget.columns)
    assert widget.columns or widget.sql.startswith("SELECT count(*)"), widget.sql
    return columns, rows


def _tables(select: ast.SelectStmt) -> dict[str, tuple[str, str]]:
    """alias -> (schema, table) for the tables in one SELECT's FROM clause."""
    out: dict[str, tuple[str, str]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, ast.RangeVar) and node.schemaname:
            alias = node.alias.aliasname if node.alias else node.relname
            out[alias] = (node.schemaname, node.relname)
        elif isinstance(node, ast.JoinExpr):
            walk(node.larg)
            walk(node.rarg)

    for item in select.fromClause or ():
        walk(item)
    return out


def grouped_columns(sql: str) -> set[tuple[str, str, str]]:
    """(schema, table, column) of every column a query shows as is: selected or grouped
    outside an aggregate. A PII column may only appear inside count()."""
    found: set[tuple[str, str, str]] = set()

    def visit(node: Any, tables: dict[str, tuple[str, str]], inside_aggregate: bool) -> None:
        if isinstance(node, ast.SelectStmt):
            scope = _tables(node)
            for attr in ("targetList", "groupClause", "distinctClause", "sortClause"):
                visit(getattr(node, attr), scope, False)
            for attr in ("fromClause", "whereClause", "havingClause", "withClause", "larg", "rarg"):
                visit(getattr(node, attr), scope, True)
            return
        if isinstance(node, ast.FuncCall):
            name = node.funcname[-1].sval
            visit(node.args, tables, inside_aggregate or name in AGGREGATES)
            visit(node.agg_filter, tables, True)
            return
        if isinstance(node, ast.ColumnRef) and not inside_aggregate:
            names = [f.sval for f in node.fields if isinstance(f, ast.String)]
            if len(names) == 2 and names[0] in tables:
                found.add((*tables[names[0]], names[1]))
            return
        if isinstance(node, ast.Node):
            for attr in node:
                if attr != "ancestors":
                    visit(getattr(node, attr), tables, inside_aggregate)
        elif isinstance(node, tuple | list):
            for item in node:
                visit(item, tables, inside_aggregate)

    visit(parse_sql(sql)[0].stmt, {}, False)
    return found


EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", re.IGNORECASE)
PHONE = re.compile(r"^\+?[\d ()\-]{9,}$")
CARD = re.compile(r"^\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{1,4}$")


def pii_shown(source: Source, sql: str) -> list[str]:
    """PII columns a query selects or groups by outside an aggregate (as "table.column")."""
    tables = {(t.schema, t.name): t for t in source.catalog.tables}
    out = []
    for schema, table, column in sorted(grouped_columns(sql)):
        snap = tables[(schema, table)]
        col = snap.column(column)
        assert col is not None, (table, column)
        if col.pii or is_pii(snap, col):
            out.append(f"{table}.{column}")
    return out


def assert_no_pii(
    source: Source, dashboard: DashboardDraft, rows_by_key: dict[str, list[tuple[Any, ...]]]
) -> None:
    """No widget groups, labels or lists a PII column, and no result holds a PII-looking value."""
    for widget in dashboard.widgets:
        assert not pii_shown(source, widget.sql), (widget.title, pii_shown(source, widget.sql))
        for row in rows_by_key.get(widget.key, []):
            for value in row:
                if isinstance(value, str):
                    assert not EMAIL.search(value), (widget.title, value)
                    assert not PHONE.match(value), (widget.title, value)
                    assert not CARD.match(value), (widget.title, value)
