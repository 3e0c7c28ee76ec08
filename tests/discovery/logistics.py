"""A second, independent source for discovery tests: a logistics operator's database.

Built from SQL below (deterministic: no random(), values from hashes of the row number),
with the traps a real operations system has: references named every which way (owner,
parent, manager, customer_ref, fk_customer, custno, "CustomerID", quoted mixed-case
tables), a reference found by values only (shipments.origin, pick_tasks.picker), a
composite reference, a partitioned table, an inherited table, a materialized view,
enums, arrays and jsonb, integer columns whose values fall inside other tables' keys
(years, counts, priorities 1..5 against a five-row lookup), and a bloated table (every
row updated, not vacuumed). Autovacuum is off on every table, so nothing changes under
the tests.

`PLANTED` is the truth for inference: every undeclared reference the data holds.
"""

from __future__ import annotations

SCHEMA = "logi"

SQL = """
create schema logi;
create type logi.shipment_status as enum ('booked', 'in_transit', 'delivered', 'returned');
create type logi.vehicle_status as enum ('active', 'maintenance', 'retired');

create table logi.regions (id int primary key, name text not null);
insert into logi.regions values (1, 'North'), (2, 'East'), (3, 'South'), (4, 'West'), (5, 'Central');

create table logi.zones (zone_id int primary key, name text not null, region_id int, parent int);
insert into logi.zones
select i, 'Zone ' || i, 1 + i % 5, case when i <= 6 then null else i / 2 end from generate_series(1, 60) i;

create table logi.depots (
  depot_code text primary key, name text not null, city text, country char(2), postal_code text,
  latitude double precision, longitude double precision
);
insert into logi.depots values
  ('AMS1', 'Amsterdam Hub', 'Amsterdam', 'NL', '1012 AB', 52.37, 4.89),
  ('RTM2', 'Rotterdam Port', 'Rotterdam', 'NL', '3011 AA', 51.92, 4.48),
  ('BER1', 'Berlin Ost', 'Berlin', 'DE', '10115', 52.52, 13.40),
  ('HAM3', 'Hamburg Nord', 'Hamburg', 'DE', '20095', 53.55, 9.99),
  ('PAR1', 'Paris Sud', 'Paris', 'FR', '75001', 48.85, 2.35),
  ('LYS2', 'Lyon Centre', 'Lyon', 'FR', '69001', 45.76, 4.83),
  ('MAD1', 'Madrid Oeste', 'Madrid', 'ES', '28001', 40.42, -3.70),
  ('BCN4', 'Barcelona Mar', 'Barcelona', 'ES', '08001', 41.39, 2.17),
  ('MIL1', 'Milano Est', 'Milan', 'IT', '20121', 45.46, 9.19),
  ('WAW2', 'Warszawa', 'Warsaw', 'PL', '00-001', 52.23, 21.01),
  ('VIE1', 'Wien Mitte', 'Vienna', 'AT', '1010', 48.21, 16.37),
  ('CPH1', 'Copenhagen', 'Copenhagen', 'DK', '1050', 55.68, 12.57);

create table logi.customers (id int primary key, company_name text not null, country char(2), tier text);
insert into logi.customers
select i, 'Company ' || i, (array['NL','DE','FR','ES','IT'])[1 + i % 5], (array['gold','silver','bronze'])[1 + i % 3]
from generate_series(1, 3000) i;

create table logi.owners (owner_id int primary key, name text not null);
insert into logi.owners select 1000 + 7 * i, 'Lessor ' || i from generate_series(1, 400) i;

create table logi.employees (
  emp_no int primary key, full_name text not null, manager int, depot_code text, hired_on date
);
insert into logi.employees
select 5000 + 13 * i,
       (array['Anna','Ben','Clara','David','Eva','Finn','Greta','Hugo'])[1 + i % 8] || ' ' ||
       (array['Jansen','Müller','Dupont','García','Rossi','Nowak','Berg','Smit'])[1 + (i / 8) % 8],
       case when i <= 10 then null else 5000 + 13 * (1 + i / 10) end,
       (array['AMS1','RTM2','BER1','HAM3','PAR1','LYS2','MAD1','BCN4','MIL1','WAW2','VIE1','CPH1'])[1 + i % 12],
       date '2010-01-01' + (i * 5)
from generate_series(1, 800) i;

create table logi."Drivers" ("DriverID" int primary key, "FullName" text not null, "HomeDepot" text);
insert into logi."Drivers"
select 900000 + 3 * i,
       (array['Lena','Omar','Pia','Rico','Sven','Tess'])[1 + i % 6] || ' ' ||
       (array['Vos','Kaya','Lund','Meyer','Roux'])[1 + (i / 6) % 5],
       (array['AMS1','RTM2','BER1','HAM3','PAR1','LYS2','MAD1','BCN4','MIL1','WAW2','VIE1','CPH1'])[1 + i % 12]
from generate_series(1, 300) i;

create table logi.vehicles (
  vehicle_id int primary key, plate text not null unique, owner int, depot text,
  year int, capacity_kg int, status logi.vehicle_status not null, tags text[], decommissioned_on date
);
insert into logi.vehicles
select i, 'NL-' || lpad(i::text, 4, '0') || '-X', 1000 + 7 * (1 + i % 400),
       (array['AMS1','RTM2','BER1','HAM3','PAR1','LYS2','MAD1','BCN4','MIL1','WAW2','VIE1','CPH1'])[1 + i % 12],
       2005 + i % 20, 500 + (abs(hashint4(i)) % 19500),
       (array['active','active','active','maintenance','retired'])[1 + i % 5]::logi.vehicle_status,
       (array['ev', 'reefer'])[1:1 + i % 2]
from generate_series(1, 500) i;

create table logi.orders (
  order_no int primary key, customer_ref int not null, placed_at timestamptz not null,
  total_amount numeric(12, 2), currency char(3), item_count int, fiscal_year int
);
insert into logi.orders
select 100000 + 3 * i, 1 + abs(hashint4(i)) % 3000,
       timestamptz '2024-01-01 00:00+00' + i * interval '13 minutes',
       round((10 + abs(hashint4(i + 7)) % 90000 / 100.0)::numeric, 2),
       (array['EUR','EUR','USD','GBP'])[1 + i % 4], 1 + i % 40, 2019 + i % 7
from generate_series(1, 20000) i;

create table logi.order_lines (
  order_no int, line_no int, sku text not null, quantity int not null, unit_price numeric(10, 2),
  primary key (order_no, line_no)
);
insert into logi.order_lines
select 100000 + 3 * o, l, 'SKU-' || (abs(hashint4(o * 4 + l)) % 900), 1 + (o + l) % 12,
       round((1 + abs(hashint4(o - l)) % 5000 / 100.0)::numeric, 2)
from generate_series(1, 20000) o, generate_series(1, 2) l;

create table logi.pick_tasks (
  task_id int primary key, order_no int not null, line_no int not null, picker int,
  picked_at timestamptz, duration_s int
);
insert into logi.pick_tasks
select i, 100000 + 3 * (1 + (i - 1) / 2), 1 + (i - 1) % 2, 5000 + 13 * (1 + abs(hashint4(i)) % 120),
       timestamptz '2024-01-02 00:00+00' + i * interval '11 minutes', 20 + abs(hashint4(i * 3)) % 600
from generate_series(1, 30000) i;

create table logi.invoices (
  invoice_id uuid primary key, order_no int not null references logi.orders (order_no),
  fk_customer int not null, amount_due numeric(12, 2), paid boolean not null,
  discount_pct numeric(5, 2), due_date date, paid_at timestamptz
);
insert into logi.invoices
select md5('inv' || i)::uuid, 100000 + 3 * i, 1 + abs(hashint4(i)) % 3000,
       round((20 + abs(hashint4(i + 1)) % 50000 / 10.0)::numeric, 2), i % 4 <> 0,
       (array[0, 5, 10, 12.5])[1 + i % 4], date '2024-02-01' + i % 300,
       case when i % 4 <> 0 then timestamptz '2024-02-10 00:00+00' + i * interval '1 hour' end
from generate_series(1, 6000) i;

create table logi.contacts (contact_id int primary key, custno int not null, email text, phone text);
insert into logi.contacts
select i, 1 + (i * 7) % 3000, 'ops' || i || '@client' || (i % 50) || '.example.com',
       '+31 20 ' || lpad((abs(hashint4(i)) % 10000000)::text, 7, '0')
from generate_series(1, 3000) i;

create table logi.shipments (
  shipment_id bigint not null, shipped_at timestamptz not null, "CustomerID" int not null,
  origin text not null, destination_city text, priority smallint not null, pieces int not null,
  weight_kg numeric(10, 2), declared_value numeric(12, 2), status logi.shipment_status not null,
  meta jsonb, delivered_at timestamptz, created_at timestamptz not null,
  primary key (shipment_id, shipped_at)
) partition by range (shipped_at);
create table logi.shipments_2024 partition of logi.shipments
  for values from ('2024-01-01 00:00+00') to ('2025-01-01 00:00+00');
create table logi.shipments_2025 partition of logi.shipments
  for values from ('2025-01-01 00:00+00') to ('2026-01-01 00:00+00');
insert into logi.shipments
select i, timestamptz '2024-01-01 00:00+00' + i * interval '17 minutes', 1 + abs(hashint4(i * 5)) % 3000,
       (array['AMS1','RTM2','BER1','HAM3','PAR1','LYS2','MAD1','BCN4','MIL1','WAW2','VIE1','CPH1'])[1 + i % 12],
       (array['Utrecht','Leipzig','Lille','Porto','Turin','Gdansk','Graz','Aarhus'])[1 + i % 8],
       1 + i % 5, 1 + abs(hashint4(i)) % 40, round((0.5 + abs(hashint4(i + 3)) % 20000 / 10.0)::numeric, 2),
       round((5 + abs(hashint4(i + 9)) % 500000 / 100.0)::numeric, 2),
       (array['booked','in_transit','delivered','delivered','returned'])[1 + i % 5]::logi.shipment_status,
       jsonb_build_object('hazmat', i % 17 = 0, 'temp', i % 3),
       case when i % 5 in (2, 3) then timestamptz '2024-01-03 00:00+00' + i * interval '17 minutes' end,
       timestamptz '2023-12-30 00:00+00' + i * interval '17 minutes'
from generate_series(1, 30000) i;

create table logi.tracking_events (
  event_id bigint primary key, vehicle text not null, scanned_at timestamptz not null,
  latitude double precision, longitude double precision, city text, postal_code text
);
insert into logi.tracking_events
select i, 'NL-' || lpad((1 + i % 500)::text, 4, '0') || '-X',
       timestamptz '2024-03-01 00:00+00' + i * interval '3 minutes',
       45 + (abs(hashint4(i)) % 1000) / 100.0, 2 + (abs(hashint4(i + 1)) % 1500) / 100.0,
       (array['Amsterdam','Berlin','Paris','Madrid','Milan','Vienna'])[1 + i % 6],
       (array['1012 AB','10115','75001','28001','20121','1010'])[1 + i % 6]
from generate_series(1, 40000) i;

create table logi.vehicle_log (log_id int, vehicle text not null, "DriverID" int, logged_at timestamptz, km int);
insert into logi.vehicle_log
select i, 'NL-' || lpad((1 + i % 500)::text, 4, '0') || '-X', 900000 + 3 * (1 + i % 300),
       timestamptz '2024-05-01 00:00+00' + i * interval '1 hour', 10 + i % 700
from generate_series(1, 2000) i;
create table logi.vehicle_log_archive (archived_by text) inherits (logi.vehicle_log);
insert into logi.vehicle_log_archive
select i, 'NL-' || lpad((1 + i % 500)::text, 4, '0') || '-X', 900000 + 3 * (1 + i % 300),
       timestamptz '2023-01-01 00:00+00' + i * interval '1 hour', 10 + i % 700, 'system'
from generate_series(1, 3000) i;

create materialized view logi.daily_volume as
select shipped_at::date as day, count(*) as shipment_count, sum(weight_kg) as weight_kg
from logi.shipments group by 1;
create unique index on logi.daily_volume (day);
"""

# Bloat, after the tables are analyzed: every row of tracking_events updated.
BLOAT = "update logi.tracking_events set city = city"

# (from table, from columns, to table, to columns): every undeclared reference planted.
PLANTED: set[tuple[str, tuple[str, ...], str, tuple[str, ...]]] = {
    ("zones", ("region_id",), "regions", ("id",)),
    ("zones", ("parent",), "zones", ("zone_id",)),
    ("employees", ("manager",), "employees", ("emp_no",)),
    ("employees", ("depot_code",), "depots", ("depot_code",)),
    ("Drivers", ("HomeDepot",), "depots", ("depot_code",)),
    ("vehicles", ("owner",), "owners", ("owner_id",)),
    ("vehicles", ("depot",), "depots", ("depot_code",)),
    ("orders", ("customer_ref",), "customers", ("id",)),
    ("order_lines", ("order_no",), "orders", ("order_no",)),
    ("pick_tasks", ("order_no", "line_no"), "order_lines", ("order_no", "line_no")),
    ("pick_tasks", ("order_no",), "orders", ("order_no",)),
    ("pick_tasks", ("picker",), "employees", ("emp_no",)),
    ("invoices", ("fk_customer",), "customers", ("id",)),
    ("contacts", ("custno",), "customers", ("id",)),
    ("shipments", ("CustomerID",), "customers", ("id",)),
    ("shipments", ("origin",), "depots", ("depot_code",)),
    ("tracking_events", ("vehicle",), "vehicles", ("plate",)),
    ("vehicle_log", ("vehicle",), "vehicles", ("plate",)),
    ("vehicle_log", ("DriverID",), "Drivers", ("DriverID",)),
    ("vehicle_log_archive", ("vehicle",), "vehicles", ("plate",)),
    ("vehicle_log_archive", ("DriverID",), "Drivers", ("DriverID",)),
}
DECLARED = {("invoices", ("order_no",), "orders", ("order_no",))}

# Integer columns whose values fall inside some key's range by accident.
TRAPS = {
    ("shipments", "priority"),  # 1..5, like regions.id
    ("shipments", "pieces"),  # 1..40
    ("orders", "item_count"),
    ("orders", "fiscal_year"),  # 2019..2025, inside customers.id 1..3000
    ("vehicles", "year"),
    ("vehicles", "capacity_kg"),
    ("order_lines", "line_no"),
    ("order_lines", "quantity"),
    ("pick_tasks", "duration_s"),
    ("vehicle_log", "km"),
    ("contacts", "contact_id"),
    ("vehicles", "vehicle_id"),
}

# (table, column): semantic type planted.
SEMANTICS = {
    ("shipments", "pieces"): "quantity",
    ("order_lines", "quantity"): "quantity",
    ("shipments", "declared_value"): "money",
    ("orders", "total_amount"): "money",
    ("invoices", "amount_due"): "money",
    ("invoices", "discount_pct"): "percentage",
    ("pick_tasks", "duration_s"): "duration",
    ("shipments", "weight_kg"): "measure",
    ("shipments", "delivered_at"): "event_time",
    ("invoices", "paid_at"): "event_time",
    ("pick_tasks", "picked_at"): "event_time",
    ("shipments", "created_at"): "created_at",
    ("depots", "name"): "label",
    ("regions", "name"): "label",
    ("zones", "name"): "label",
    ("customers", "company_name"): "label",
    ("shipments", "status"): "category",
    ("customers", "tier"): "category",
    ("invoices", "paid"): "boolean_flag",
    ("depots", "city"): "city",
    ("shipments", "destination_city"): "city",
    ("depots", "country"): "country",
    ("depots", "postal_code"): "postal_code",
    ("tracking_events", "latitude"): "latitude",
    ("tracking_events", "longitude"): "longitude",
    ("contacts", "email"): "email",
    ("contacts", "phone"): "phone",
    ("Drivers", "FullName"): "person_name",
    ("employees", "full_name"): "person_name",
    ("vehicles", "plate"): "identifier",
    ("invoices", "invoice_id"): "identifier",
}


def settle_sql(tables: list[str]) -> list[str]:
    """Autovacuum off everywhere, statistics on most tables (not on the bloated one's
    current state: it is updated after ANALYZE)."""
    return [f"alter table {t} set (autovacuum_enabled = false)" for t in tables]
