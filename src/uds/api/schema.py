"""The strawberry schema: Query, Mutation and the limits every document must pass."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info

from uds.api import audit, principal, tenants
from uds.api.context import Context
from uds.api.guard import NoPolicy, Policy
from uds.api.pagination import Connection
from uds.settings import Settings


@strawberry.type
class Query:
    me: principal.Principal = strawberry.field(
        resolver=principal.me, description="Who I am.", extensions=[Policy("principal.read")]
    )
    audit_log: Connection[audit.AuditEntry] = strawberry.field(
        resolver=audit.audit_log,
        description="The X-Tenant-ID tenant's audit log, newest first.",
        extensions=[Policy("audit.read")],
    )

    @strawberry.field(description="The X-Tenant-ID tenant.", extensions=[Policy("tenant.read")])
    async def tenant(self, info: Info[Context, None]) -> tenants.Tenant | None:
        ctx = info.context
        if ctx.tenant is None:
            ctx.asked.add("tenant.read")  # no tenant, nothing to read
            return None
        await ctx.authorize("tenant.read")
        return tenants.Tenant.from_record(ctx.tenant)

    @strawberry.field(
        description="Platform administration (platform admins only).",
        extensions=[NoPolicy("namespace; each admin field checks its own action")],
    )
    def admin(self) -> tenants.AdminQuery:
        return tenants.AdminQuery()


@strawberry.type
class Mutation:
    set_member: tenants.MemberResult = strawberry.mutation(
        resolver=tenants.set_member, extensions=[Policy("member.write")]
    )
    remove_member: tenants.RemoveMemberResult = strawberry.mutation(
        resolver=tenants.remove_member, extensions=[Policy("member.write")]
    )

    @strawberry.field(
        description="Platform administration (platform admins only).",
        extensions=[NoPolicy("namespace; each admin field checks its own action")],
    )
    def admin(self) -> tenants.AdminMutation:
        return tenants.AdminMutation()


class UdsSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: object = None) -> None:
        """Errors are logged by the view, which alone knows which are internal."""


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or Settings()
    # Factories: strawberry builds fresh extension instances per request; the parser and
    # validation caches live at module level, shared by all requests.
    extensions: list[Any] = [
        lambda: MaxTokensLimiter(max_token_count=settings.max_query_tokens),
        lambda: ParserCache(maxsize=1024),
        lambda: QueryDepthLimiter(max_depth=settings.max_query_depth),
        lambda: MaxAliasesLimiter(max_alias_count=settings.max_aliases),
        lambda: ValidationCache(maxsize=1024),
    ]
    if not settings.dev:
        extensions.append(DisableIntrospection)
    return UdsSchema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True),
    )


def schema_sdl() -> str:
    return build_schema().as_str() + "\n"
