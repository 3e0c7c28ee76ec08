"""The strawberry schema: Query, Mutation, Subscription and the limits every document must pass."""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info

from uds.api import audit, principal, tenants
from uds.api import catalog as catalog_api
from uds.api import dashboards as dashboard_api
from uds.api import datasources as source_api
from uds.api import images as image_api
from uds.api import jobs as job_api
from uds.api.admission import AdmissionExtension, Gate
from uds.api.context import Context
from uds.api.execution import UdsExecutor
from uds.api.gate import OperationGate, operation_rules
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
    job: job_api.Job | None = strawberry.field(
        resolver=job_api.job, description="A job of the X-Tenant-ID tenant.", extensions=[Policy("job.read")]
    )
    jobs: Connection[job_api.Job] = strawberry.field(
        resolver=job_api.jobs,
        description="The X-Tenant-ID tenant's jobs, newest first.",
        extensions=[Policy("job.read")],
    )
    data_sources: Connection[source_api.DataSource] = strawberry.field(
        resolver=source_api.data_sources,
        description="The tenant's data sources, by name.",
        extensions=[Policy("datasource.read")],
    )
    data_source: source_api.DataSource | None = strawberry.field(
        resolver=source_api.data_source, extensions=[Policy("datasource.read")]
    )
    catalog: catalog_api.Catalog | None = strawberry.field(
        resolver=catalog_api.catalog,
        description="The latest successful discovery of a data source.",
        extensions=[Policy("catalog.read")],
    )
    discovery_runs: Connection[catalog_api.DiscoveryRun] = strawberry.field(
        resolver=catalog_api.discovery_runs,
        description="Discovery runs of a data source, newest first.",
        extensions=[Policy("catalog.read")],
    )
    catalog_diff: catalog_api.CatalogDiff = strawberry.field(
        resolver=catalog_api.catalog_diff,
        description="What changed between two discovery runs.",
        extensions=[Policy("catalog.read")],
    )
    dashboards: Connection[dashboard_api.Dashboard] = strawberry.field(
        resolver=dashboard_api.dashboards,
        description="The tenant's dashboards, newest first.",
        extensions=[Policy("dashboard.read")],
    )
    dashboard: dashboard_api.Dashboard | None = strawberry.field(
        resolver=dashboard_api.dashboard,
        description="A dashboard by id.",
        extensions=[Policy("dashboard.read")],
    )
    widget_data: dashboard_api.WidgetData = strawberry.field(
        resolver=dashboard_api.widget_data,
        description="A widget's rows from its data source (cached; refresh: fetch again).",
        extensions=[Policy("widget.read")],
    )
    widget_image: image_api.Image = strawberry.field(
        resolver=image_api.widget_image,
        description="A widget's picture (PNG or SVG) from its current data, with a signed link to it.",
        extensions=[Policy("widget.read")],
    )
    dashboard_image: image_api.Image = strawberry.field(
        resolver=image_api.dashboard_image,
        description="The dashboard as one PNG on its grid, with a signed link to it.",
        extensions=[Policy("widget.read")],
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
    cancel_job: job_api.CancelJobResult = strawberry.mutation(
        resolver=job_api.cancel_job,
        description="Cancel a job: its creator, or an ADMIN.",
        extensions=[Policy("job.cancel")],
    )
    register_data_source: source_api.RegisterDataSourceResult = strawberry.mutation(
        resolver=source_api.register_data_source, extensions=[Policy("datasource.register")]
    )
    test_data_source: source_api.TestDataSourceResult = strawberry.mutation(
        resolver=source_api.test_data_source, extensions=[Policy("datasource.test")]
    )
    delete_data_source: source_api.DeleteDataSourceResult = strawberry.mutation(
        resolver=source_api.delete_data_source, extensions=[Policy("datasource.delete")]
    )
    start_discovery: job_api.StartJobResult = strawberry.mutation(
        resolver=source_api.start_discovery, extensions=[Policy("discovery.start")]
    )
    generate_dashboard: job_api.StartJobResult = strawberry.mutation(
        resolver=dashboard_api.generate_dashboard,
        description="Generate a dashboard from a data source's catalog and a goal (a `dashboard` job).",
        extensions=[Policy("dashboard.generate")],
    )
    update_dashboard: dashboard_api.UpdateDashboardResult = strawberry.mutation(
        resolver=dashboard_api.update_dashboard, extensions=[Policy("dashboard.update")]
    )
    delete_dashboard: dashboard_api.DeleteDashboardResult = strawberry.mutation(
        resolver=dashboard_api.delete_dashboard, extensions=[Policy("dashboard.delete")]
    )

    @strawberry.field(
        description="Platform administration (platform admins only).",
        extensions=[NoPolicy("namespace; each admin field checks its own action")],
    )
    def admin(self) -> tenants.AdminMutation:
        return tenants.AdminMutation()


@strawberry.type
class Subscription:
    job_events: AsyncGenerator[job_api.JobEvent, None] = strawberry.subscription(
        resolver=job_api.job_events,
        description="A job's events after afterSeq, then live ones; completes after the last one.",
        extensions=[Policy("job.read")],
    )


class UdsSchema(strawberry.Schema):
    # Variables, cost and rate limits (uds.api.admission); every execution path calls it.
    gate: Gate
    # Set by the GraphQL view (uds.api.fastlane): operation plans learned from the normal
    # path, and persisted queries (the safelist is checked for WebSocket operations too).
    plans: Any = None
    persisted: Any = None

    def process_errors(self, errors: list[GraphQLError], execution_context: object = None) -> None:
        """Errors are logged by the view, which alone knows which are internal."""


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or Settings()
    operation_gate = functools.partial(
        OperationGate, max_tokens=settings.max_query_tokens, rules=operation_rules(settings)
    )
    gate = Gate(settings)
    schema = UdsSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[operation_gate, lambda: AdmissionExtension(gate=gate)],
        # Prod: no "did you mean" hints that would map the schema for a caller without
        # introspection (the view strips the ones strawberry leaves, see GraphQLView._format).
        config=StrawberryConfig(auto_camel_case=True, disable_field_suggestions=not settings.dev),
        execution_context_class=UdsExecutor,
    )
    schema.gate = gate
    return schema


def schema_sdl() -> str:
    return build_schema().as_str() + "\n"
