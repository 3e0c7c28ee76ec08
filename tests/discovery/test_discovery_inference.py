"""Relationships, semantic types and PII on the demo data: every planted fact found, no
look-alike taken for what it resembles."""

from __future__ import annotations

import asyncpg
import pytest

from discovery.kit import DemoSource
from uds.discovery import semantics
from uds.discovery.profiles import ColumnValues
from uds.discovery.snapshot import CatalogSnapshot

DECLARED = {
    ("orders", "customer_id", "customers", "id"),
    ("order_items", "order_id", "orders", "id"),
    ("products", "category_id", "categories", "id"),
    ("categories", "parent_id", "categories", "id"),
}
PLANTED = {
    ("order_items", "product_id", "products", "id"),
    ("payments", "order_id", "orders", "id"),
    ("events", "customer_id", "customers", "id"),
    ("events", "product_id", "products", "id"),
}


def pairs(snapshot: CatalogSnapshot, *, declared: bool) -> dict[tuple[str, str, str, str], float]:
    return {
        (r.from_table, r.from_columns[0], r.to_table, r.to_columns[0]): r.confidence
        for r in snapshot.relationships
        if r.declared is declared
    }


def test_every_declared_foreign_key_is_found(discovered: CatalogSnapshot) -> None:
    declared = pairs(discovered, declared=True)
    assert set(declared) == DECLARED
    assert all(confidence == 1.0 for confidence in declared.values())


def test_planted_undeclared_keys_are_inferred_with_high_confidence(discovered: CatalogSnapshot) -> None:
    inferred = pairs(discovered, declared=False)
    for pair in PLANTED:
        assert pair in inferred, pair
        assert inferred[pair] >= 0.8, (pair, inferred[pair])
    rel = next(
        r for r in discovered.relationships if r.from_table == "events" and r.from_columns == ["customer_id"]
    )
    assert rel.containment is not None and rel.containment < 1.0  # 0.15 % orphans were planted
    assert any("sampled distinct values found" in reason for reason in rel.reasons)


def test_no_relationship_between_unrelated_columns_of_the_same_type(discovered: CatalogSnapshot) -> None:
    inferred = pairs(discovered, declared=False)
    assert set(inferred) == PLANTED, set(inferred) - PLANTED
    # quantity's small integers are all valid product ids, but nothing names products.
    assert not [r for r in discovered.relationships if "quantity" in r.from_columns]


async def test_orphans_lower_the_confidence_and_show_in_quality(
    demo: DemoSource, discovered: CatalogSnapshot
) -> None:
    inferred = pairs(discovered, declared=False)
    assert (
        inferred[("events", "customer_id", "customers", "id")]
        < inferred[("payments", "order_id", "orders", "id")]
    )
    events = discovered.table("shop", "events")
    assert events is not None and events.quality is not None
    assert any("no match in shop.customers(id)" in reason for reason in events.quality.reasons)


SEMANTIC = {
    ("customers", "email"): ("email", True),
    ("customers", "first_name"): ("person_name", True),
    ("customers", "last_name"): ("person_name", True),
    ("customers", "phone"): ("phone", True),
    ("customers", "country"): ("country", False),
    ("customers", "last_login_ip"): ("ip_address", True),
    ("customers", "created_at"): ("created_at", False),
    ("customers", "updated_at"): ("updated_at", False),
    ("customers", "loyalty_tier"): ("category", False),
    ("payments", "card_number"): ("card_number", True),
    ("payments", "amount"): ("money", False),
    ("payments", "method"): ("category", False),
    ("orders", "total_amount"): ("money", False),
    ("orders", "currency"): ("currency", False),
    ("orders", "status"): ("category", False),
    ("orders", "id"): ("identifier", False),
    ("events", "url"): ("url", False),
    ("events", "ip_address"): ("ip_address", True),
    ("events", "occurred_at"): ("created_at", False),
    ("events", "session_id"): ("identifier", False),
    ("events", "event_type"): ("category", False),
    ("categories", "name"): ("label", False),
    ("products", "name"): ("label", False),
    ("order_items", "quantity"): ("quantity", False),
    ("payments", "paid_at"): ("event_time", False),
    ("customers", "city"): ("city", False),
    ("products", "price"): ("money", False),
    ("products", "sku"): ("identifier", False),
}
# Look-alikes: (table, column) -> semantic types it must not get.
LOOK_ALIKES = {
    ("customers", "zip_code"): {"phone", "card_number", "identifier"},
    ("payments", "reference"): {"card_number", "phone"},
    ("customers", "city"): {"person_name"},
    ("products", "name"): {"person_name"},
    ("categories", "name"): {"person_name"},
    ("order_items", "quantity"): {"money", "identifier", "phone"},
    ("products", "sku"): {"phone", "postal_code"},
    ("orders", "coupon_code"): {"person_name", "currency"},
}


@pytest.mark.parametrize(("where", "expected"), sorted(SEMANTIC.items()), ids=lambda v: str(v))
def test_planted_semantic_types_and_pii(
    discovered: CatalogSnapshot, where: tuple[str, str], expected: tuple[str, bool]
) -> None:
    table = discovered.table("shop", where[0])
    assert table is not None
    column = table.column(where[1])
    assert column is not None
    assert (column.semantic_type, column.pii) == expected, column.semantic_reasons


@pytest.mark.parametrize(("where", "forbidden"), sorted(LOOK_ALIKES.items()), ids=lambda v: str(v))
def test_look_alikes_get_neither_the_type_nor_the_pii_flag(
    discovered: CatalogSnapshot, where: tuple[str, str], forbidden: set[str]
) -> None:
    table = discovered.table("shop", where[0])
    assert table is not None
    column = table.column(where[1])
    assert column is not None
    assert column.semantic_type not in forbidden, column.semantic_reasons
    assert not column.pii


def test_only_planted_columns_are_pii(discovered: CatalogSnapshot) -> None:
    pii = {(t.name, c.name) for t in discovered.tables if t.schema == "shop" for c in t.columns if c.pii}
    assert pii == {k for k, (_, flagged) in SEMANTIC.items() if flagged}


async def test_pii_values_never_appear_raw_in_the_catalog(
    demo: DemoSource, discovered: CatalogSnapshot
) -> None:
    conn = await asyncpg.connect(
        host=demo.params.host, port=demo.params.port, user=demo.params.user, database=demo.params.database
    )
    try:
        raw = {
            r[0]
            for r in await conn.fetch(
                "select email from shop.customers where email like '%@%' union all "
                "select phone from shop.customers where phone is not null union all "
                "select card_number from shop.payments where card_number is not null"
            )
        }
    finally:
        await conn.close()
    text = repr(discovered)
    leaked = [value for value in raw if value in text]
    assert not leaked, leaked[:3]
    email = discovered.table("shop", "customers").column("email")  # type: ignore[union-attr]
    assert email is not None and email.profile is not None and email.profile.min is not None
    assert "***@" in email.profile.min.value


def test_validity_of_typed_values(discovered: CatalogSnapshot) -> None:
    customers = discovered.table("shop", "customers")
    assert customers is not None and customers.quality is not None
    email = customers.column("email")
    assert email is not None and email.quality is not None and email.quality.validity is not None
    # 0.5 % of rows hold 'n/a' (2 % are null, which is completeness, not validity).
    assert 0.98 < email.quality.validity < 1.0
    assert email.quality.completeness == pytest.approx(0.98, abs=0.01)
    assert any("not a valid email" in r for r in customers.quality.reasons)
    assert any("should be unique" in r for r in customers.quality.reasons)  # planted duplicate e-mails


def test_detectors_on_their_own() -> None:
    def values(*items: str) -> ColumnValues:
        return ColumnValues(top=[(v, 1) for v in items], distinct=len(items), non_null=len(items))

    assert semantics.luhn_ok("4111111111111111") and not semantics.luhn_ok("4111111111111112")
    assert semantics.is_card("4111 1111 1111 1111") and not semantics.is_card("0213-94307")
    assert semantics.is_marked_phone("+1 415 555 0100") and semantics.is_marked_phone("(415) 555-0100")
    assert not semantics.is_marked_phone("02139-4307") and not semantics.is_marked_phone("4111111111111111")
    assert semantics.share(values("a@b.io", "x@y.com", "nope"), semantics.is_email) == pytest.approx(2 / 3)
    assert semantics.mask("card_number", "4111 1111 1111 1234").endswith("1234")
    assert "4111" not in semantics.mask("card_number", "4111 1111 1111 1234")
    assert semantics.mask("email", "jane.doe@example.com") == "j***@example.com"


def test_the_fast_address_check_agrees_with_ipaddress() -> None:
    import ipaddress
    import random

    def reference(value: str) -> bool:
        try:
            ipaddress.ip_interface(value.strip())
        except ValueError:
            return False
        return True

    cases = [
        "1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3.04", " 10.0.0.1 ",
        "1.2.3.4/24", "1.2.3.4/32", "1.2.3.4/33", "1.2.3.4/01", "1.2.3.4/", "1.2.3.4/255.255.255.0",
        "1\u0663.1.1.1", "::1", "2001:db8::1/64", "fe80::1%eth0", "1.2.3", "1.2.3.4.5", "abc", "", "12345",
    ]  # fmt: skip
    rng = random.Random(7)
    for _ in range(5_000):
        value = ".".join(
            str(rng.choice([rng.randrange(300), rng.randrange(10)])) for _ in range(rng.choice([3, 4, 4, 5]))
        )
        if rng.random() < 0.2:
            value += f"/{rng.randrange(40)}"
        cases.append(value)
    assert [c for c in cases if semantics.is_ip(c) != reference(c)] == []
