"""Every resolver field names its policy action (or says why it needs none)."""

from __future__ import annotations

from typing import Any

import pytest
import strawberry
from graphql import GraphQLObjectType

from uds.api.guard import NoPolicy, Policy, UnguardedField
from uds.api.schema import build_schema


def resolver_fields() -> list[tuple[str, str, Any]]:
    schema = build_schema()
    found = []
    for name, gql_type in schema._schema.type_map.items():
        if name.startswith("__") or not isinstance(gql_type, GraphQLObjectType):
            continue
        definition = (gql_type.extensions or {}).get("strawberry-definition")
        if definition is None:
            continue
        for field in definition.fields:
            if field.base_resolver is not None:
                found.append((name, field.python_name, field))
    return found


def test_schema_has_resolvers_to_check() -> None:
    names = {f"{t}.{f}" for t, f, _ in resolver_fields()}
    assert {"Query.me", "Query.audit_log", "AdminMutation.create_tenant"} <= names


@pytest.mark.parametrize(("type_name", "field_name", "field"), resolver_fields(), ids=lambda v: str(v))
def test_every_resolver_declares_its_policy(type_name: str, field_name: str, field: Any) -> None:
    markers = [e for e in field.extensions if isinstance(e, Policy | NoPolicy)]
    assert markers, (
        f"{type_name}.{field_name} has a resolver but no Policy(...) or NoPolicy(reason) marker: "
        "name the action it checks (see uds/api/guard.py)"
    )


async def test_a_resolver_that_forgets_its_check_fails() -> None:
    @strawberry.type
    class Query:
        @strawberry.field(extensions=[Policy("tenant.read")])
        async def leaky(self) -> str:
            return "secret"

    class Ctx:
        asked: set[str] = set()

    result = await strawberry.Schema(query=Query).execute("{ leaky }", context_value=Ctx())
    assert result.data is None
    assert result.errors and isinstance(result.errors[0].original_error, UnguardedField)
