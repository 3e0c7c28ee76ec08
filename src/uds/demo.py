"""The demo shop database: realistic enough that discovery has something to find.

`uds demo [--rows N]` builds it and registers it as a data source of the `demo` tenant;
`uds up` builds a modest one on first start and reuses it afterwards. Everything is made
by `generate_series` inside PostgreSQL, so a million rows take seconds, not minutes.

What is planted, so tests and newcomers can check what discovery reports (schema `shop`):

- `events` is the big table (N rows); `orders` has N/5, `order_items` about N/2,
  `payments` about N/5, `customers` N/50 (at least 500), `products` N/500 (200 to 5000).
- Declared foreign keys: orders.customer_id, order_items.order_id, products.category_id,
  categories.parent_id. Undeclared ones (right names, matching values, no constraint):
  order_items.product_id -> products.id, payments.order_id -> orders.id,
  events.customer_id -> customers.id, events.product_id -> products.id.
- Semantics: customers.email (2 % null, 0.5 % invalid, 0.3 % duplicates), first_name,
  last_name, phone, country, last_login_ip; payments.card_number (Luhn-valid; null unless
  paid by card); events.url, events.ip_address; prices and amounts (money), currency codes;
  created_at / updated_at pairs; low-cardinality status, method, event_type, loyalty_tier.
- Look-alikes that must not be taken for what they resemble: customers.zip_code (digits,
  some ZIP+4 with a dash: not a phone), payments.reference (16 digits failing Luhn: not a
  card), customers.city and products.name (capitalised words: not person names),
  order_items.quantity (small integers that happen to be valid product ids).
- Skew: customers with low ids order far more (customer_id = ncust * u^2), statuses and
  event types are uneven, amounts are log-uniform, coupon_code is 90 % null.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from sqlalchemy import select

from uds.datasources.params import ConnectionParams, params_from_url
from uds.settings import Settings

DEMO_DATABASE = "uds_demo"
DEMO_SOURCE_NAME = "demo-shop"
DEFAULT_ROWS = 1_000_000
UP_ROWS = 50_000
# Written last, as the comment of schema shop: it means the build finished.
MARKER = "UDS demo shop (complete)"

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DemoScale:
    events: int
    orders: int
    customers: int
    products: int

    @classmethod
    def for_rows(cls, rows: int) -> DemoScale:
        rows = max(rows, 1_000)
        return cls(
            events=rows,
            orders=max(rows // 5, 200),
            customers=max(rows // 50, 500),
            products=min(max(rows // 500, 200), 5_000),
        )


SCHEMA_SQL = """
drop schema if exists shop cascade;
create schema shop;

create table shop.categories (
  id integer primary key,
  name text not null unique,
  parent_id integer references shop.categories(id)
);

create table shop.products (
  id integer primary key,
  sku text not null unique,
  name text not null,
  category_id integer not null references shop.categories(id),
  price numeric(10,2) not null,
  currency char(3) not null,
  active boolean not null default true,
  created_at timestamptz not null,
  updated_at timestamptz not null
);

create table shop.customers (
  id bigint primary key,
  email text,
  first_name text not null,
  last_name text not null,
  phone text,
  country char(2) not null,
  city text not null,
  zip_code text,
  loyalty_tier text not null,
  last_login_ip text,
  marketing_opt_in boolean not null,
  created_at timestamptz not null,
  updated_at timestamptz not null
);

create table shop.orders (
  id bigint primary key,
  customer_id bigint not null references shop.customers(id),
  status text not null,
  currency char(3) not null,
  total_amount numeric(12,2) not null,
  coupon_code text,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  shipped_at timestamptz
);
create index orders_customer_id_idx on shop.orders (customer_id);
create index orders_created_at_idx on shop.orders (created_at);

create table shop.order_items (
  id bigint primary key,
  order_id bigint not null references shop.orders(id),
  product_id integer not null,
  quantity integer not null,
  unit_price numeric(10,2) not null
);

create table shop.payments (
  id bigint primary key,
  order_id bigint not null,
  method text not null,
  amount numeric(12,2) not null,
  card_number text,
  reference text not null,
  status text not null,
  paid_at timestamptz not null
);

create table shop.events (
  id bigint primary key,
  customer_id bigint,
  session_id uuid not null,
  event_type text not null,
  product_id integer,
  url text not null,
  ip_address text,
  user_agent text not null,
  occurred_at timestamptz not null
);

create view shop.customer_order_totals as
  select c.id as customer_id, c.country, count(o.id) as orders, sum(o.total_amount) as revenue
  from shop.customers c left join shop.orders o on o.customer_id = c.id
  group by c.id, c.country;

-- Luhn check digit for a string of digits (session-local helper, not part of the demo).
create function pg_temp.luhn_digit(digits text) returns int language sql immutable as $$
  select (10 - (sum(case when (length(digits) - i) % 2 = 0
                         then (d * 2) / 10 + (d * 2) % 10 else d end) % 10)::int) % 10
  from (select i, substr(digits, i, 1)::int as d from generate_series(1, length(digits)) as i) x
$$;
"""

FIRST_NAMES = (
    "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa Anthony "
    "Betty Mark Margaret Donald Sandra Paul Ashley Steven Emily Andrew Donna Kenneth Michelle "
    "Joshua Carol Kevin Amanda Brian Melissa George Deborah Sophie Lukas Emma Noah Olivia Liam "
    "Mia Lucas Amelia Hugo Chloe Mateo Lea Jan Anna Piotr Marta Yuki Haruto Aarav Priya"
).split()
LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Martin Lee Thompson White Harris Clark Lewis "
    "Robinson Walker Young Allen King Wright Scott Green Baker Adams Nelson Hill Campbell "
    "Mitchell Roberts Carter Phillips Evans Turner Muller Schmidt Schneider Fischer Dubois "
    "Moreau Laurent Rossi Russo Kowalski Nowak Novak Svensson Jansen Tanaka Sato Patel Sharma"
).split()
CITIES = (
    "Springfield Austin Portland Denver Boston Seattle Chicago Phoenix London Manchester "
    "Berlin Munich Hamburg Paris Lyon Toronto Vancouver Amsterdam Madrid Barcelona Rome Milan "
    "Stockholm Warsaw Krakow Tokyo Osaka Sydney Melbourne Dublin Jackson Florence Lincoln"
).split()
PRODUCT_WORDS = "Ergonomic Rustic Sleek Smart Compact Deluxe Classic Vintage Modern Eco".split()
PRODUCT_MATERIALS = "Steel Wooden Cotton Granite Plastic Leather Bamboo Glass Copper Wool".split()
PRODUCT_KINDS = "Lamp Chair Mug Backpack Keyboard Jacket Table Bottle Headphones Notebook".split()


def _array(values: tuple[str, ...] | list[str]) -> str:
    return "array[" + ",".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def data_statements(scale: DemoScale) -> list[tuple[str, str]]:
    """(label, SQL) pairs that fill the schema; run in order after SCHEMA_SQL."""
    s = scale
    first, last, cities = _array(FIRST_NAMES), _array(LAST_NAMES), _array(CITIES)
    words, materials, kinds = _array(PRODUCT_WORDS), _array(PRODUCT_MATERIALS), _array(PRODUCT_KINDS)
    methods = _array(["card", "card", "card", "paypal", "bank_transfer", "gift_card"])

    # A value picked from an array with a skew towards its first elements.
    def pick(arr: str, power: float = 1.0) -> str:
        return f"({arr})[1 + floor(power(random(), {power}) * cardinality({arr}))::int]"

    return [
        (
            "categories",
            f"""insert into shop.categories (id, name, parent_id)
            select i, {
                pick(
                    _array(
                        [
                            "Home",
                            "Garden",
                            "Office",
                            "Kitchen",
                            "Outdoor",
                            "Sports",
                            "Toys",
                            "Books",
                            "Fashion",
                            "Tech",
                        ]
                    )
                )
            } || ' ' || i,
                   case when i > 10 then 1 + (i % 10) end
            from generate_series(1, 40) as i""",
        ),
        (
            "products",
            f"""insert into shop.products
            select i, 'SKU-' || lpad(i::text, 6, '0'),
                   {pick(words)} || ' ' || {pick(materials)} || ' ' || {pick(kinds)},
                   1 + floor(power(random(), 1.5) * 40)::int,
                   round((2 + power(random(), 2) * 498)::numeric, 2),
                   (array['USD','USD','USD','EUR','EUR','GBP'])[1 + floor(random() * 6)::int],
                   random() > 0.05,
                   ts, ts + random() * interval '300 days'
            from (select i, timestamptz '2020-01-01' + i * interval '3 hours' as ts
                  from generate_series(1, {s.products}) as i) g""",
        ),
        (
            "customers",
            f"""insert into shop.customers
            select i,
                   case when r1 < 0.02 then null
                        when r1 < 0.025 then 'n/a'
                        else lower(fn) || '.' || lower(ln) || i || '@' || dom end,
                   fn, ln,
                   case when r2 < 0.1 then null
                        when r2 < 0.5 then '+1 ' || (200 + floor(random() * 700))::int || ' '
                             || lpad(floor(random() * 1000)::int::text, 3, '0') || ' '
                             || lpad(floor(random() * 10000)::int::text, 4, '0')
                        when r2 < 0.7 then '(' || (200 + floor(random() * 700))::int || ') '
                             || lpad(floor(random() * 1000)::int::text, 3, '0') || '-'
                             || lpad(floor(random() * 10000)::int::text, 4, '0')
                        when r2 < 0.85 then '+44 20 ' || lpad(floor(random() * 10000)::int::text, 4, '0')
                             || ' ' || lpad(floor(random() * 10000)::int::text, 4, '0')
                        else '+49 30 ' || lpad(floor(random() * 100000000)::int::text, 8, '0') end,
                   {
                pick(
                    _array(
                        [
                            "US",
                            "US",
                            "GB",
                            "DE",
                            "FR",
                            "CA",
                            "NL",
                            "ES",
                            "IT",
                            "SE",
                            "PL",
                            "JP",
                            "AU",
                            "IE",
                            "BR",
                            "IN",
                        ]
                    ),
                    1.6,
                )
            },
                   {pick(cities, 1.3)},
                   case when r3 < 0.03 then null
                        when r3 < 0.3 then lpad(floor(random() * 100000)::int::text, 5, '0') || '-'
                             || lpad(floor(random() * 10000)::int::text, 4, '0')
                        else lpad(floor(random() * 100000)::int::text, 5, '0') end,
                   {pick(_array(["bronze", "silver", "gold", "platinum"]), 2)},
                   case when random() < 0.05 then null
                        else (11 + floor(random() * 180))::int || '.' || floor(random() * 256)::int || '.'
                             || floor(random() * 256)::int || '.' || (1 + floor(random() * 254))::int end,
                   random() < 0.4,
                   ts, ts + power(random(), 3) * interval '700 days'
            from (select i, random() as r1, random() as r2, random() as r3,
                         {pick(first, 1.4)} as fn, {pick(last, 1.4)} as ln,
                         (array['gmail.com','yahoo.com','outlook.com','proton.me','example.com',
                                'icloud.com'])[1 + floor(random() * 6)::int] as dom,
                         timestamptz '2021-01-01' + i * (interval '1000 days' / {s.customers}) as ts
                  from generate_series(1, {s.customers}) as i) g""",
        ),
        (
            "duplicate e-mails",
            """update shop.customers c set email = p.email
            from shop.customers p
            where p.id = c.id - 1 and c.id % 300 = 0 and p.email like '%@%'""",
        ),
        (
            "orders",
            f"""insert into shop.orders
            select i, 1 + floor(power(random(), 2) * {s.customers})::bigint,
                   (array['delivered','delivered','delivered','delivered','shipped','shipped','paid',
                          'placed','cancelled','refunded'])[1 + floor(random() * 10)::int],
                   (array['USD','USD','USD','EUR','EUR','GBP'])[1 + floor(random() * 6)::int],
                   round((exp(random() * 4) * 5)::numeric, 2),
                   case when random() < 0.1
                        then (array['SAVE10','WELCOME','SPRING24','VIP20','FREESHIP'])
                             [1 + floor(random() * 5)::int]
                   end,
                   ts, ts + random() * interval '20 days',
                   case when random() < 0.7 then ts + random() * interval '5 days' end
            from (select i, timestamptz '2022-01-01' + i * (interval '900 days' / {s.orders})
                            + random() * interval '1 hour' as ts
                  from generate_series(1, {s.orders}) as i) g""",
        ),
        (
            "order_items",
            f"""insert into shop.order_items
            select row_number() over (), o.id, 1 + floor(power(random(), 1.7) * {s.products})::int,
                   1 + floor(power(random(), 3) * 9)::int,
                   round((2 + power(random(), 2) * 498)::numeric, 2)
            from shop.orders o, generate_series(1, 1 + (o.id * 7919 % 4)::int) as k""",
        ),
        (
            "payments",
            f"""insert into shop.payments
            select row_number() over (), o.id, m,
                   o.total_amount,
                   case when m = 'card' then
                        case when random() < 0.1 then regexp_replace(c, '(\\d{{4}})(?=\\d)', '\\1 ', 'g')
                             else c end
                   end,
                   ref || ((pg_temp.luhn_digit(ref) + 1 + floor(random() * 9)::int) % 10)::text,
                   case when o.status = 'refunded' then 'refunded' else 'captured' end,
                   o.created_at + random() * interval '2 hours'
            from (select o.*, {pick(methods)} as m,
                         base || pg_temp.luhn_digit(base)::text as c,
                         lpad(floor(random() * 1e9)::bigint::text, 9, '0')
                           || lpad(floor(random() * 1e6)::bigint::text, 6, '0') as ref
                  from (select o.*, '4' || lpad(floor(random() * 1e8)::bigint::text, 8, '0')
                                       || lpad(floor(random() * 1e6)::bigint::text, 6, '0') as base
                        from shop.orders o) o
                  where o.status <> 'placed') o""",
        ),
        (
            "events",
            f"""insert into shop.events
            select i,
                   case when r < 0.15 then null
                        when r < 0.1515 then {s.customers} + 1 + floor(random() * 1000)::bigint
                        else 1 + floor(power(random(), 2) * {s.customers})::bigint end,
                   md5('session' || (i / 6))::uuid,
                   et,
                   case when et in ('product_view', 'add_to_cart')
                        then 1 + floor(power(random(), 1.7) * {s.products})::int end,
                   'https://shop.example.com/'
                     || case et when 'product_view' then 'p/' || floor(random() * {s.products})::int
                                when 'search' then 'search?q=' || {pick(kinds)}
                                else et end,
                   case when random() < 0.02 then null
                        when random() < 0.05 then '2001:db8:' || to_hex(floor(random() * 65535)::int) || '::1'
                        else (11 + floor(random() * 180))::int || '.' || floor(random() * 256)::int || '.'
                             || floor(random() * 256)::int || '.' || (1 + floor(random() * 254))::int end,
                   (array['Mozilla/5.0 (Windows NT 10.0)','Mozilla/5.0 (Macintosh)','Mozilla/5.0 (iPhone)',
                          'Mozilla/5.0 (Linux; Android 14)','Mozilla/5.0 (X11; Linux)'])
                     [1 + floor(random() * 5)::int],
                   timestamptz '2023-01-01' + i * (interval '500 days' / {s.events})
                     + random() * interval '10 minutes'
            from (select i, random() as r,
                         (array['page_view','page_view','page_view','product_view','product_view','search',
                                'add_to_cart','login','checkout'])
                           [1 + floor(power(random(), 1.2) * 9)::int] as et
                  from generate_series(1, {s.events}) as i) g""",
        ),
    ]


async def build_demo_database(
    admin: ConnectionParams,
    *,
    rows: int = DEFAULT_ROWS,
    database: str = DEMO_DATABASE,
    progress: Progress | None = None,
    seed: float = 0.42,
) -> DemoScale:
    """(Re)create `database` on the server of `admin` and fill it; returns the scale built.

    `admin` must be allowed to create databases. An existing database of that name is
    dropped first.
    """
    say = progress or (lambda _m: None)
    scale = DemoScale.for_rows(rows)
    conn = await asyncpg.connect(**_demo_kwargs(admin))
    try:
        await conn.execute(f'drop database if exists "{database}" with (force)')
        await conn.execute(f'create database "{database}"')
    finally:
        await conn.close()
    conn = await asyncpg.connect(**_demo_kwargs(admin.with_database(database)))
    try:
        await conn.execute("set synchronous_commit = off; set maintenance_work_mem = '256MB'")
        await conn.execute(SCHEMA_SQL)
        await conn.execute("select setseed($1)", seed)
        for label, sql in data_statements(scale):
            started = time.monotonic()
            await conn.execute(sql)
            say(f"demo: {label} done in {time.monotonic() - started:.1f}s")
        await conn.execute(f"comment on schema shop is '{MARKER}'")
    finally:
        await conn.close()
    return scale


async def demo_is_built(admin: ConnectionParams, *, database: str = DEMO_DATABASE) -> bool:
    """True if `database` exists and its build finished."""
    conn = await asyncpg.connect(**_demo_kwargs(admin))
    try:
        if not await conn.fetchval("select 1 from pg_database where datname = $1", database):
            return False
    finally:
        await conn.close()
    conn = await asyncpg.connect(**_demo_kwargs(admin.with_database(database)))
    try:
        comment = await conn.fetchval(
            "select obj_description(oid, 'pg_namespace') from pg_namespace where nspname = 'shop'"
        )
        return comment == MARKER
    finally:
        await conn.close()


@dataclass(frozen=True, slots=True)
class DemoSource:
    """The demo database as registered: which tenant, which source id, and whether it was built now."""

    tenant: str
    source_id: str
    built: bool
    rows: int | None


async def setup_demo(
    settings: Settings,
    *,
    tenant: str,
    rows: int = DEFAULT_ROWS,
    rebuild: bool = True,
    actor: str = "uds demo",
    progress: Progress | None = None,
) -> DemoSource:
    """Build the demo database on UDS's own server (always if `rebuild`, else only if
    missing) and register it as data source DEMO_SOURCE_NAME of `tenant`, which must exist.

    An existing registration is pointed at the current server (the embedded server's
    socket directory can move between starts).
    """
    from uds.datasources import service as sources
    from uds.datasources.credentials import load_cipher
    from uds.datasources.guard import NetworkGuard
    from uds.datasources.models import DataSource
    from uds.db import make_engine, transaction

    if not settings.database_url:
        raise RuntimeError("database_url is not set")
    say = progress or (lambda _m: None)
    admin = params_from_url(settings.database_url)
    built = False
    if rebuild or not await demo_is_built(admin):
        say(f"building the demo database {DEMO_DATABASE} ({rows:,} events)...")
        started = time.monotonic()
        await build_demo_database(admin, rows=rows, progress=say)
        say(f"demo database built in {time.monotonic() - started:.1f}s")
        built = True
    params = admin.with_database(DEMO_DATABASE)
    cipher = load_cipher(settings)
    engine = make_engine(settings, pool_size=1)
    try:
        async with transaction(engine, tenant) as tx:
            session = await tx.tenant()
            row = await session.scalar(select(DataSource).where(DataSource.name == DEMO_SOURCE_NAME))
            if row is None:
                row = await sources.register_source(
                    session,
                    tenant=tenant,
                    name=DEMO_SOURCE_NAME,
                    params=params,
                    cipher=cipher,
                    guard=NetworkGuard.from_settings(settings),
                    created_by=actor,
                )
                say(f"registered data source {DEMO_SOURCE_NAME} ({row.id}) in tenant {tenant}")
            elif (row.host, row.port, row.database, row.username) != (
                params.host,
                params.port,
                params.database,
                params.user,
            ):
                row.host, row.port, row.database, row.username = (
                    params.host,
                    params.port,
                    params.database,
                    params.user,
                )
                row.sslmode = params.sslmode
                row.secret = cipher.seal(params.password, context=sources.secret_context(tenant, row.id))
                row.secret_kid = cipher.current_kid
                row.version += 1
            source_id = str(row.id)
    finally:
        await engine.dispose()
    return DemoSource(tenant=tenant, source_id=source_id, built=built, rows=rows if built else None)


def _demo_kwargs(params: ConnectionParams) -> dict[str, object]:
    return params.asyncpg_kwargs(application_name="uds-demo")
