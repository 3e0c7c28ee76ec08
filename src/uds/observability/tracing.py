"""OpenTelemetry traces: off (and free) unless an OTLP endpoint is configured.

    setup_tracing(settings, service_name="uds-api")   # a process entry point, once
    with span("policy", action="job.read"): ...        # anywhere; a shared no-op when off

On: `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set. The SDK then
exports with OTLP/HTTP in batches; the standard `OTEL_*` variables (service name,
headers, resource attributes) apply. Off: no tracer provider is made, no library is
instrumented, the ASGI tracing middleware and the root-field wrappers are not installed,
and `span()` returns one shared no-op context manager.

What a trace holds (docs/observability.md):

- request: the ASGI server span (opentelemetry-instrumentation-asgi, renamed to the
  GraphQL operation), `auth`, `tenant`, `policy`, one `resolve Type.field` span per root
  field (wrapped once per schema here, never a per-field hook), SQL (asyncpg
  instrumentation: UDS's database and data sources alike), Redis commands, and
  `job.enqueue`;
- job: `job <kind>` (a consumer span whose parent is the request that started the job:
  the context travels in the arq payload, `inject()`/`extract()`), `job.step` per step,
  and the SQL of its source queries.

Spans start a trace only at a request or a job (`EntryPointSampler`): the Redis polling
and heartbeats of workers and background listeners create nothing on their own.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.propagate import get_global_textmap
from opentelemetry.trace import SpanKind

if TYPE_CHECKING:
    from graphql import GraphQLSchema
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from uds.settings import Settings

TRACER_NAME = "uds"
_NOOP = contextlib.nullcontext()

_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None
_instrumentors: list[Any] = []


def enabled() -> bool:
    return _tracer is not None


def setup_tracing(
    settings: Settings | None = None, *, service_name: str = "uds-api", exporter: SpanExporter | None = None
) -> bool:
    """Turn tracing on for this process if an OTLP endpoint is set (or an exporter is given,
    as tests do, exported synchronously); True if it is on. Calling it again replaces the
    earlier set-up."""
    endpoint = settings.otlp_endpoint if settings is not None else None
    if exporter is None and not endpoint:
        return False
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    shutdown_tracing()
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, when set, name the service instead.
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    provider = TracerProvider(
        resource=Resource.create({} if named else {SERVICE_NAME: service_name}),
        sampler=_entry_point_sampler(),
    )
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The exporter reads OTEL_EXPORTER_OTLP_* itself (endpoint, headers, timeout).
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    _instrument_libraries(provider)
    global _provider, _tracer
    _provider, _tracer = provider, provider.get_tracer(TRACER_NAME)
    return True


def shutdown_tracing() -> None:
    """Flush and turn tracing off (libraries uninstrumented)."""
    global _provider, _tracer
    for instrumentor in _instrumentors:
        with contextlib.suppress(Exception):
            instrumentor.uninstrument()
    _instrumentors.clear()
    if _provider is not None:
        _provider.shutdown()
    _provider = _tracer = None


def _instrument_libraries(provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    for instrumentor in (AsyncPGInstrumentor(), RedisInstrumentor()):
        instrumentor.instrument(tracer_provider=provider)
        _instrumentors.append(instrumentor)


def _entry_point_sampler() -> Any:
    from opentelemetry.sdk.trace.sampling import (
        ALWAYS_ON,
        Decision,
        ParentBased,
        Sampler,
        SamplingResult,
    )

    class EntryPointSampler(Sampler):
        """A trace starts at a request (SERVER) or a job (CONSUMER), nowhere else."""

        def should_sample(  # type: ignore[override]
            self, parent_context: Any, trace_id: int, name: str, kind: SpanKind | None = None, **kw: Any
        ) -> SamplingResult:
            if kind in (SpanKind.SERVER, SpanKind.CONSUMER):
                return ALWAYS_ON.should_sample(parent_context, trace_id, name, kind, **kw)
            return SamplingResult(Decision.DROP)

        def get_description(self) -> str:
            return "EntryPointSampler"

    return ParentBased(root=EntryPointSampler())


def span(name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A child span of the current one; a shared no-op when tracing is off."""
    if _tracer is None:
        return _NOOP
    return _tracer.start_as_current_span(name, attributes=_plain(attributes) or None)


@contextlib.contextmanager
def job_span(carrier: Mapping[str, str] | None, **attributes: Any) -> Iterator[Any]:
    """The span of one job run, continuing the trace of the request that started it
    (named `job <kind>` by `rename_span` once the kind is read)."""
    if _tracer is None:
        yield None
        return
    parent = get_global_textmap().extract(dict(carrier or {}))
    with _tracer.start_as_current_span(
        "job", context=parent, kind=SpanKind.CONSUMER, attributes=_plain(attributes)
    ) as current:
        yield current


def rename_span(name: str, **attributes: Any) -> None:
    current = trace.get_current_span()
    if current.is_recording():
        current.update_name(name)
        current.set_attributes(_plain(attributes))


def inject() -> dict[str, str] | None:
    """The current trace context as W3C headers (for a job payload); None when off."""
    if _tracer is None:
        return None
    carrier: dict[str, str] = {}
    get_global_textmap().inject(carrier)
    return carrier or None


def name_request_span(name: str | None, operation_type: str) -> None:
    """Name the request's server span after its GraphQL operation (`query Shop`)."""
    current = trace.get_current_span()
    if current.is_recording():
        current.update_name(f"{operation_type} {name}" if name else operation_type)
        current.set_attribute("graphql.operation.type", operation_type)
        if name:
            current.set_attribute("graphql.operation.name", name)


def set_attributes(**attributes: Any) -> None:
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(_plain(attributes))


def asgi_middleware(app: Any) -> Any:
    """The standard ASGI server-span middleware around `app` (only when tracing is on)."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(app, tracer_provider=_provider, exclude_spans=["receive", "send"])


def trace_root_fields(schema: GraphQLSchema) -> None:
    """Wrap the resolvers of this schema's root fields in a span each, and those of the
    policy-checked fields one level down (the `admin` namespace's operations).

    Done on the built graphql-core schema, so it touches no strawberry field shared with
    other schemas, and only when tracing is on: off, the resolvers stay as they are.
    """
    if _tracer is None:
        return
    from graphql import GraphQLObjectType, get_named_type

    for root in (schema.query_type, schema.mutation_type):
        if root is None:
            continue
        for name, field in root.fields.items():
            _wrap(root.name, name, field)
            target = get_named_type(field.type)
            if isinstance(target, GraphQLObjectType) and target is not root:
                for sub_name, sub_field in target.fields.items():
                    if _checks_policy(sub_field):
                        _wrap(target.name, sub_name, sub_field)


def _checks_policy(field: Any) -> bool:
    """A field carrying uds.api.guard.Policy: an operation of its own, not a leaf."""
    from uds.api.guard import Policy

    definition = field.extensions.get("strawberry-definition") if field.extensions else None
    return any(isinstance(e, Policy) for e in getattr(definition, "extensions", ()) or ())


def _wrap(type_name: str, field_name: str, field: Any) -> None:
    resolve = field.resolve
    if resolve is None or getattr(resolve, "_uds_traced", False):
        return
    span_name = f"resolve {type_name}.{field_name}"

    async def traced(source: Any, info: Any, **kwargs: Any) -> Any:
        assert _tracer is not None
        with _tracer.start_as_current_span(span_name):
            result = resolve(source, info, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

    traced._uds_traced = True  # type: ignore[attr-defined]
    field.resolve = traced


def _plain(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, str | bool | int | float) else str(v)
        for k, v in attributes.items()
        if v is not None
    }
