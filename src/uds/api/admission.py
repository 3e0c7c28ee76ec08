"""The gate every GraphQL operation passes after validation and before it executes.

In order, with nothing from the operation run yet:

1. every string in the variables must be storable by PostgreSQL (`uds.api.storable`;
   the document's literals were checked by a validation rule);
2. the operation's cost must be within `max_query_cost` (`uds.api.cost`, cached per
   document and variables shape), else QUERY_TOO_COMPLEX with the cost and the limit;
3. the rate limiter charges the operation's weight to the tenant's and the caller's
   buckets in one Redis call (`uds.ratelimit`), else RATE_LIMITED with Retry-After.

`AdmissionExtension` runs the gate for strawberry's pipeline (queries, mutations and
subscriptions, HTTP and WebSocket). Any other execution path (a persisted-operation fast
lane, say) must call `Gate.admit` itself with the same arguments before it executes.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from graphql import DocumentNode, GraphQLSchema
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension

from uds.api.cost import CostAnalyzer, Plan
from uds.api.storable import check_variables
from uds.errors import QueryTooComplex, RateLimited
from uds.ratelimit import Bucket, RateLimiter, Verdict, subject_key
from uds.settings import Settings
from uds.tenants.plans import effective
from uds.tenants.registry import TenantRecord

if TYPE_CHECKING:
    from uds.api.context import Context

# A WebSocket connection weighs this much in the caller's buckets when it opens.
CONNECT_WEIGHT = 5
# ASGI scope key of an HTTP request's rate-limit verdict (set once it has been charged).
CHARGED = "uds.rate_verdict"


class Gate:
    """Variables, cost and rate limit checks for one schema."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._analyzer: CostAnalyzer | None = None
        self._limits: dict[int, tuple[TenantRecord, dict[str, int]]] = {}
        # A caller's buckets, per cached tenant record (a changed tenant is a new record).
        self._buckets: dict[tuple[int, str], tuple[TenantRecord, list[Bucket], tuple[str, ...]]] = {}

    def analyzer(self, schema: GraphQLSchema) -> CostAnalyzer:
        if self._analyzer is None or self._analyzer.schema is not schema:
            self._analyzer = CostAnalyzer(
                schema, max_page_size=self.settings.max_page_size, list_size=self.settings.cost_list_size
            )
        return self._analyzer

    async def admit(
        self,
        ctx: Context,
        *,
        schema: GraphQLSchema,
        document: DocumentNode,
        key: str | None,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        scope: MutableMapping[str, Any] | None = None,
        batched: bool = False,
    ) -> Plan:
        """Raise BadUserInput, QueryTooComplex or RateLimited, or return the operation's plan.

        `key` identifies the document for the cost cache (its text, or a persisted query's
        hash); None computes the cost without caching it. `scope` is the HTTP request's ASGI
        scope: a request handed from one path to another (the fast lane falling back to
        strawberry's view) is charged once, and keeps its verdict. `batched` (WebSocket
        operations): the charge may wait for others on their way to Redis and go with them
        in one pipeline (uds.ratelimit).
        """
        check_variables(variables)
        analyzer = self.analyzer(schema)
        plan = analyzer.plan(document, key=key, operation_name=operation_name, variables=variables)
        limit = self.settings.max_query_cost
        if plan.cost > limit:
            raise QueryTooComplex(
                f"query cost {plan.cost} exceeds the limit of {limit}: ask for smaller pages"
                " (first) or select fewer nested lists",
                extensions={"cost": plan.cost, "limit": limit},
            )
        if hasattr(ctx, "operation"):
            ctx.operation = plan.operation
        await self.charge(ctx, plan.weight, scope=scope, batched=batched)
        return plan

    async def charge(
        self,
        ctx: Context,
        weight: int,
        *,
        scope: MutableMapping[str, Any] | None = None,
        batched: bool = False,
    ) -> None:
        """Charge `weight` request units to the caller's buckets, or raise RateLimited."""
        services = getattr(ctx, "services", None)
        if services is None:
            return  # executed outside a server (schema tests): nothing to charge
        limiter: RateLimiter = services.limiter
        if not limiter.enabled:
            return
        verdict = scope.get(CHARGED) if scope is not None else None
        if verdict is None:
            buckets, keys = self.buckets_and_keys(ctx)
            verdict = await limiter.hit(buckets, weight, keys, batched=batched)
            if scope is not None and verdict is not None:
                scope[CHARGED] = verdict
        if verdict is None:
            return  # Redis unavailable: served (fail open), counted by the limiter
        response = ctx.response
        if isinstance(response, Response):  # else the caller sends the verdict's headers
            for name, value in verdict.headers():
                response.headers[name] = value
        if not verdict.allowed:
            if isinstance(response, Response):
                response.status_code = RateLimited.http_status
            raise _refusal(verdict)

    def buckets_and_keys(self, ctx: Context) -> tuple[list[Bucket], tuple[str, ...] | None]:
        """The caller's buckets, and their keys when they are remembered (tenant members)."""
        principal, tenant = ctx.principal, ctx.tenant
        if tenant is not None and principal is not None:
            key = (id(tenant), principal.subject)
            hit = self._buckets.get(key)
            if hit is not None and hit[0] is tenant:
                return hit[1], hit[2]
            if len(self._buckets) > 10_000:
                self._buckets.clear()
            buckets = self._make_buckets(ctx)
            keys = tuple([b.key for b in buckets])
            self._buckets[key] = (tenant, buckets, keys)
            return buckets, keys
        return self._make_buckets(ctx), None

    def _make_buckets(self, ctx: Context) -> list[Bucket]:
        limiter: RateLimiter = ctx.services.limiter
        principal, tenant = ctx.principal, ctx.tenant
        if tenant is not None:
            limits = self.limits(tenant)
            tenant_key = limiter.key("t", str(tenant.id))
            buckets = [Bucket(tenant_key, limits["requests_per_second"], limits["request_burst"])]
            if principal is not None:
                buckets.append(
                    Bucket(
                        limiter.key("m", str(tenant.id), subject_key(principal.subject)),
                        limits["member_requests_per_second"],
                        limits["member_request_burst"],
                    )
                )
            return buckets
        rate, burst = self.settings.platform_requests_per_second, self.settings.platform_request_burst
        if principal is not None:
            return [Bucket(limiter.key("p", subject_key(principal.subject)), rate, burst)]
        request = ctx.request
        client = request.client if request is not None else None
        return [Bucket(limiter.key("a", client.host if client else "-"), rate, burst)]

    def limits(self, tenant: TenantRecord) -> dict[str, int]:
        """The tenant's effective limits, computed once per cached tenant record."""
        hit = self._limits.get(id(tenant))
        if hit is not None and hit[0] is tenant:
            return hit[1]
        if len(self._limits) > 10_000:
            self._limits.clear()
        limits = effective(tenant.plan, tenant.limits)[1]
        self._limits[id(tenant)] = (tenant, limits)
        return limits


def _refusal(verdict: Verdict) -> RateLimited:
    seconds = max(1, math.ceil(verdict.retry_after))
    return RateLimited(
        f"rate limit exceeded: retry in {seconds} s",
        extensions={"retryAfter": seconds, "limit": verdict.limit},
    )


class AdmissionExtension(SchemaExtension):
    """Runs `Gate.admit` for every operation strawberry executes."""

    def __init__(self, *, gate: Gate) -> None:
        self.gate = gate

    async def on_execute(self) -> AsyncIterator[None]:  # type: ignore[override]
        ec = self.execution_context
        assert ec.graphql_document is not None
        request = getattr(ec.context, "request", None)
        await self.gate.admit(
            ec.context,
            schema=ec.schema._schema,
            document=ec.graphql_document,
            key=ec.query,
            operation_name=ec.operation_name,
            variables=ec.variables,
            scope=request.scope if isinstance(request, Request) else None,
            batched=isinstance(request, WebSocket),
        )
        yield
