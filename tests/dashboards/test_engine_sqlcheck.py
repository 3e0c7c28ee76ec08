"""check_widget_sql: one read-only SELECT over the allowed schemas, or BAD_USER_INPUT."""

from __future__ import annotations

import pytest
from pglast import parse_sql

from uds.dashboards.sqlcheck import check_widget_sql
from uds.errors import BadUserInput

ALLOWED = {"shop", "Weird;Schema"}


def refused(sql: str, match: str, schemas: set[str] | None = None) -> None:
    with pytest.raises(BadUserInput, match=match) as info:
        check_widget_sql(sql, allowed_schemas=ALLOWED if schemas is None else schemas)
    assert info.value.code == "BAD_USER_INPUT"


ACCEPTED = [
    'SELECT count(*) AS "value" FROM "shop"."orders"',
    "select status, count(*) from shop.orders group by 1 order by 2 desc limit 10",
    # a `;` inside a string, a dollar-quoted string and comments are data, not statements
    "select count(*) from shop.orders where status <> 'a;b' -- ; delete from shop.orders",
    "select $$x; drop table shop.orders$$ as s /* ; drop table shop.orders */ from shop.orders",
    "select $tag$ ; $tag$ from shop.orders",
    # nested subqueries, lateral, set operations, window functions
    "select o.id from shop.orders o where o.customer_id in (select c.id from shop.customers c "
    "where exists (select 1 from shop.payments p where p.order_id = o.id))",
    "select c.id, x.n from shop.customers c, lateral (select count(*) as n from shop.orders o "
    "where o.customer_id = c.id) x limit 5",
    "select 1 from shop.orders union all select 2 from shop.payments except select 3",
    "select id, rank() over (partition by status order by total_amount desc) from shop.orders",
    # WITH queries, recursive ones included, are fine unqualified where they are in scope
    "with base as (select status, count(*) as n from shop.orders group by 1), "
    "top as (select status from base order by n desc limit 3) select * from top",
    "with recursive r(n) as (select 1 union all select n + 1 from r where n < 5) select sum(n) from r",
    # functions in FROM from the allowlist, TABLE, VALUES, TABLESAMPLE
    "select g from generate_series(1, 3) as g",
    "select * from unnest(array[1, 2]) as u(x)",
    "table shop.orders",
    "values (1, 'a'), (2, 'b')",
    "select count(*) from shop.orders tablesample bernoulli (10)",
    # SQL-syntax functions the parser turns into pg_catalog calls
    "select extract(year from created_at), substring(status from 1 for 2), trim(both from status), "
    "position('a' in status), created_at at time zone 'UTC', coalesce(coupon_code, '-'), "
    "nullif(status, ''), greatest(1, 2), current_date, localtimestamp from shop.orders",
    "select pg_catalog.count(*), pg_catalog.date_trunc('month', created_at) from shop.orders group by 2",
    "select cast(total_amount as numeric(12, 2)), total_amount::double precision, "
    "interval '1 day', '2024-01-01'::timestamptz, id::text from shop.orders",
    "select status from shop.orders where status similar to 'a%' and status ilike 'x' order by status using <",
    # unicode escapes are decoded before the check: this is "shop"."orders"
    'select count(*) from U&"sh\\006Fp".U&"\\006Frders"',
    # a schema with a quote and a semicolon in its name, properly quoted
    'select count(*) from "Weird;Schema"."t ""x"""',
    "select count(*) filter (where status = 'paid') over (order by id rows between 1 preceding "
    "and current row) from shop.orders",
    "select status, grouping(status) from shop.orders group by rollup (status)",
    "select case when total_amount > 10 then 'big' else 'small' end, row(1, 2), (array[1, 2])[1] "
    "from shop.orders",
]


@pytest.mark.parametrize("sql", ACCEPTED)
def test_accepted(sql: str) -> None:
    out = check_widget_sql(sql, allowed_schemas=ALLOWED)
    # What comes back is one statement printed from the checked tree, and checks again.
    assert len(parse_sql(out)) == 1
    assert check_widget_sql(out, allowed_schemas=ALLOWED) == out


def test_returns_the_statement_without_comments_or_semicolon() -> None:
    out = check_widget_sql("select 1 -- trailing comment\n;", allowed_schemas=ALLOWED)
    assert out == "SELECT 1"
    out = check_widget_sql('/* c */ select "x" from "shop"."orders";;', allowed_schemas=ALLOWED)
    assert out == "SELECT x FROM shop.orders"


@pytest.mark.parametrize(
    ("sql", "match"),
    [
        ("", "empty"),
        ("   ;  ", "empty"),
        ("-- only a comment", "empty"),
        ("select 1; select 2", "exactly one statement"),
        ("select 1; delete from shop.orders", "exactly one statement"),
        ("select 'x'; drop table shop.orders", "exactly one statement"),
        ("select from where", "does not parse"),
        ("select 'unterminated", "does not parse"),
        ("select 1\x00", "NUL"),
        ("select " + "1 + " * 6000 + "1", "longer than"),
    ],
)
def test_statement_count_and_syntax(sql: str, match: str) -> None:
    refused(sql, match)


@pytest.mark.parametrize(
    ("sql", "match"),
    [
        ("insert into shop.orders (id) values (1)", "must be a SELECT, not INSERT"),
        ("update shop.orders set status = 'x'", "not UPDATE"),
        ("delete from shop.orders", "not DELETE"),
        (
            "merge into shop.orders o using shop.payments p on o.id = p.order_id when matched then delete",
            "not MERGE",
        ),
        ("copy shop.orders to stdout", "not COPY"),
        ("copy (select 1) to program 'id'", "not COPY"),
        ("set statement_timeout = 0", "not SET"),
        ("call shop.proc()", "not CALL"),
        ("do $$ begin perform 1; end $$", "not DO"),
        ("lock table shop.orders", "not LOCK"),
        ("explain analyze delete from shop.orders", "not EXPLAIN"),
        ("explain select 1", "not EXPLAIN"),
        ("create table shop.x as select 1", "not CREATE TABLE AS"),
        ("truncate shop.orders", "not TRUNCATE"),
        ("begin", "not a transaction command"),
        ("show search_path", "not SHOW"),
        ("vacuum shop.orders", "not VACUUM"),
        ("grant select on shop.orders to public", "not GRANT"),
        ("prepare p as select 1", "not PREPARE"),
        ("listen x", "not LISTEN"),
    ],
)
def test_only_select(sql: str, match: str) -> None:
    refused(sql, match)


@pytest.mark.parametrize(
    ("sql", "match"),
    [
        ("with d as (delete from shop.orders returning *) select * from d", "WITH d holds DELETE"),
        (
            "with u as (update shop.orders set status = 'x' returning id) select count(*) from u",
            "WITH u holds UPDATE",
        ),
        ("with i as (insert into shop.orders (id) values (1) returning id) select 1", "WITH i holds INSERT"),
        (
            "select * from (select 1) x, lateral (with d as (delete from shop.orders returning 1) "
            "select * from d) y",
            "WITH d holds DELETE",
        ),
        ("select 1 into shop.copy_of", "SELECT INTO"),
        ("select * into temp t from shop.orders", "SELECT INTO"),
        ("select * from shop.orders for update", "FOR UPDATE/SHARE"),
        ("select * from shop.orders for share skip locked", "FOR UPDATE/SHARE"),
        ("select * from (select * from shop.orders for no key update) x", "FOR UPDATE/SHARE"),
        ("select * from shop.orders where id = $1", "parameters"),
    ],
)
def test_writes_and_locks_hidden_inside_a_select(sql: str, match: str) -> None:
    refused(sql, match)


@pytest.mark.parametrize(
    ("sql", "match"),
    [
        ("select pg_sleep(10)", "function pg_sleep"),
        ("select count(*) from shop.orders where pg_sleep(1) is not null", "function pg_sleep"),
        ("select 1 from shop.orders group by 1 having max(pg_sleep_for('1s')::text) = ''", "pg_sleep_for"),
        ("select set_config('statement_timeout', '0', false)", "function set_config"),
        ("select current_setting('data_directory')", "function current_setting"),
        ("select nextval('shop.orders_id_seq')", "function nextval"),
        ("select setval('shop.s', 1)", "function setval"),
        ("select * from dblink('host=x', 'select 1') as t(a int)", "function dblink"),
        ("select lo_import('/etc/passwd')", "function lo_import"),
        ("select lo_export(1, '/tmp/x')", "function lo_export"),
        ("select pg_read_file('/etc/passwd')", "function pg_read_file"),
        ("select pg_terminate_backend(1)", "function pg_terminate_backend"),
        ("select pg_advisory_lock(1)", "function pg_advisory_lock"),
        ("select query_to_xml('delete from shop.orders', true, true, '')", "function query_to_xml"),
        ("select txid_current()", "function txid_current"),
        ("select pg_notify('c', 'x')", "function pg_notify"),
        ("select shop.my_function()", "schema shop"),
        ("select public.count(*) from shop.orders", "schema public"),
        ('select "COUNT"(*) from shop.orders', "function COUNT"),
        ("select pg_catalog.pg_sleep(1)", "function pg_catalog.pg_sleep"),
        ("select x.y.count(*) from shop.orders", "function x.y.count"),
        ("select * from generate_series(1, 2), pg_ls_dir('.') as f", "function pg_ls_dir"),
        ("select * from rows from (generate_series(1, 2), pg_sleep(1)) as r(a, b)", "pg_sleep"),
        ("select 1 from shop.orders order by pg_sleep(1)", "pg_sleep"),
        ("select count(*) over (partition by pg_sleep(1)) from shop.orders", "pg_sleep"),
        ("select current_user", "CURRENT_USER"),
        ("select session_user", "SESSION_USER"),
        ("select collation for ('x')", "pg_collation_for"),
    ],
)
def test_functions_outside_the_allowlist(sql: str, match: str) -> None:
    refused(sql, match)


@pytest.mark.parametrize(
    ("sql", "match"),
    [
        ("select * from orders", "must be qualified"),
        ("select * from pg_class", "must be qualified"),
        ("select * from pg_catalog.pg_authid", "schema pg_catalog"),
        ("select * from information_schema.tables", "schema information_schema"),
        ("select * from uds.tenants", "schema uds"),
        ('select * from "t_acme".dashboards', "schema t_acme"),
        ("select * from other.orders", "schema other"),
        ("select * from otherdb.shop.orders", "other databases"),
        ("table pg_catalog.pg_shadow", "schema pg_catalog"),
        ("select * from shop.orders o join secret.keys k on true", "schema secret"),
        ("select (select max(x) from secret.keys) from shop.orders", "schema secret"),
        ("select * from shop.orders where id in (select id from secret.keys)", "schema secret"),
        ("select * from shop.orders, lateral (select * from secret.keys) k", "schema secret"),
        ("select 1 union select 2 from secret.keys", "schema secret"),
        # a WITH query's name is only in scope where PostgreSQL would see it
        ("select * from (with keys as (select 1) select * from keys) a, keys", "keys must be qualified"),
        ("with a as (select * from b), b as (select 1) select * from a", "b must be qualified"),
        ('select * from U&"pg_c\\0061talog".pg_authid', "schema pg_catalog"),
        ("select * from shop.orders tablesample myfunc (10)", "TABLESAMPLE myfunc"),
    ],
)
def test_tables_outside_the_allowed_schemas(sql: str, match: str) -> None:
    refused(sql, match)


def test_schemas_only_when_explicitly_allowed() -> None:
    refused("select 1 from shop.orders", "schema shop", schemas=set())
    assert check_widget_sql("select count(*) from pg_catalog.pg_class", allowed_schemas={"pg_catalog"})
    assert check_widget_sql("select count(*) from t_acme.jobs", allowed_schemas="t_acme")


@pytest.mark.parametrize(
    ("sql", "match"),
    [
        ("select ctid from shop.orders", "system column ctid"),
        ("select o.xmin from shop.orders o", "system column xmin"),
        ("select tableoid::regclass from shop.orders", "system column tableoid"),
        ("select 'pg_sleep'::regproc", "type regproc"),
        ("select 'shop.orders'::regclass", "type regclass"),
        ("select x::shop.mytype from shop.orders", "type shop.mytype"),
        ("select 1 operator(shop.+) 2", "operator shop.+"),
        ("select id from shop.orders order by id using operator(shop.<)", "operator shop.<"),
        ("select * from xmltable('/a' passing '<a/>' columns a int)", "XMLTABLE"),
        ("select * from json_table('[]', '$[*]' columns (a int path '$'))", "JSON_TABLE"),
        ("select xmlelement(name a)", "XmlExpr"),
        ("select round(x => 1.5)", "NamedArgExpr"),
        ("select status collate shop.c from shop.orders", "collation shop.c"),
    ],
)
def test_other_tricks(sql: str, match: str) -> None:
    refused(sql, match)
