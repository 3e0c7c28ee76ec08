"""The MCP tools: each one a named GraphQL operation (operations.graphql) plus what a model
needs to use it well: a title, a description written for a model, an input schema derived
from the operation's variables, an output schema, and annotations derived from the
operation (a query is read-only and idempotent; a mutation says whether it destroys, from
the explicit table below).

Tool arguments are the operation's variables in snake_case (`dataSourceId` ->
`data_source_id`); `flatten` spreads an input object's fields into top-level arguments,
`internal` names variables the bridge sets itself (the API's paging), and `extra` adds
arguments the bridge itself uses (paging, waiting), never a tenant: the tenant comes from
the caller's credentials only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    Undefined,
    parse,
    type_from_ast,
)
from mcp_types import ToolAnnotations

from uds.mcp.gateway import operation_kind, operation_texts

# Mutations that destroy or undo something (destructiveHint); every other mutation adds or
# checks. A new mutation tool must be listed here one way or the other (a test checks).
DESTRUCTIVE: dict[str, bool] = {
    "register_data_source": False,
    "test_data_source": False,
    "start_discovery": False,
    "generate_dashboard": False,
    "cancel_job": True,
}
# Mutations that may be repeated without further effect.
IDEMPOTENT_MUTATIONS = frozenset({"test_data_source"})
# Tools that reach outside UDS (the tenant's own databases).
OPEN_WORLD = frozenset({"test_data_source", "start_discovery"})

NULLABLE_STRING = {"type": ["string", "null"]}
NULLABLE_NUMBER = {"type": ["number", "null"]}
JOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "kind": {"type": "string"},
        "status": {"type": "string", "enum": ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]},
        "progress": {"type": "number"},
        "phase": NULLABLE_STRING,
        "message": NULLABLE_STRING,
        "error": NULLABLE_STRING,
        "result": {},
    },
    "required": ["id", "kind", "status", "progress"],
}
FOLLOWED_JOB: dict[str, Any] = {
    "type": "object",
    "properties": {
        "job": JOB_SCHEMA,
        "done": {"type": "boolean", "description": "True once the job has ended (any final status)."},
        "lastSeq": {
            "type": "integer",
            "description": "Last job event reported; pass as after_seq to get_job.",
        },
        "events": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "seq": {"type": "integer"},
                    "type": {"type": "string"},
                    "progress": {"type": "number"},
                    "phase": NULLABLE_STRING,
                    "message": NULLABLE_STRING,
                },
            },
        },
        "next": {"type": "string", "description": "What to do next."},
    },
    "required": ["job", "done", "lastSeq", "next"],
}
WAIT_ARGUMENT = {
    "type": "integer",
    "minimum": 0,
    "maximum": 600,
    "description": "Longest wait in seconds for the job to end before answering with its status.",
}


@dataclass(frozen=True, eq=False)
class ToolSpec:
    name: str
    title: str
    description: str
    operation: str
    output: dict[str, Any]
    flatten: str | None = None
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    required_extra: tuple[str, ...] = ()
    docs: dict[str, str] = field(default_factory=dict)
    long_job: bool = False
    internal: frozenset[str] = frozenset()  # variables the bridge sets itself (paging), not arguments

    @property
    def kind(self) -> str:
        return operation_kind(self.operation)

    @property
    def annotations(self) -> ToolAnnotations:
        if self.kind == "query":
            return ToolAnnotations(
                title=self.title,
                read_only_hint=True,
                idempotent_hint=True,
                open_world_hint=self.name in OPEN_WORLD,
            )
        return ToolAnnotations(
            title=self.title,
            read_only_hint=False,
            destructive_hint=DESTRUCTIVE[self.name],
            idempotent_hint=self.name in IDEMPOTENT_MUTATIONS,
            open_world_hint=self.name in OPEN_WORLD,
        )


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


DATA_SOURCE = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "host": {"type": "string"},
        "port": {"type": "integer"},
        "database": {"type": "string"},
        "user": {"type": "string"},
        "sslmode": {"type": "string"},
        "schemas": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["id", "name"],
}

TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="list_data_sources",
        title="List data sources",
        description=(
            "List the PostgreSQL databases registered in your UDS tenant, with each one's id and its "
            "latest discovery run. Start here: the other tools take a data_source_id from this list. "
            "Pages of up to `first` sources; pass `after` = pageInfo.endCursor for the next page."
        ),
        operation="ListDataSources",
        output={
            "type": "object",
            "properties": {
                "dataSources": {"type": "array", "items": DATA_SOURCE},
                "pageInfo": {
                    "type": "object",
                    "properties": {"hasNextPage": {"type": "boolean"}, "endCursor": NULLABLE_STRING},
                },
            },
            "required": ["dataSources", "pageInfo"],
        },
        docs={"first": "Page size (default 20).", "after": "Cursor from pageInfo.endCursor."},
    ),
    ToolSpec(
        name="register_data_source",
        title="Register a data source",
        description=(
            "Register a PostgreSQL database so UDS can discover it. The password is stored encrypted "
            "and never shown again. Needs the EDITOR role. Then call test_data_source to check the "
            "connection and start_discovery to read what is in it."
        ),
        operation="RegisterDataSource",
        flatten="input",
        output=DATA_SOURCE,
    ),
    ToolSpec(
        name="test_data_source",
        title="Test a data source's connection",
        description=(
            "Connect to a registered data source with discovery's safety limits and report whether "
            "it works (server version, visible tables), or why not (errorKind: refused, unreachable, "
            "auth_failed, access_denied, timeout, ...). Reads nothing else."
        ),
        operation="TestDataSource",
        output={
            "type": "object",
            "properties": {
                "ok": {"type": "boolean"},
                "message": {"type": "string"},
                "errorKind": NULLABLE_STRING,
                "latencyMs": NULLABLE_NUMBER,
                "serverVersion": NULLABLE_STRING,
                "tablesVisible": {"type": ["integer", "null"]},
            },
            "required": ["ok", "message"],
        },
        docs={"id": "The data source's id (from list_data_sources)."},
    ),
    ToolSpec(
        name="start_discovery",
        title="Discover a data source",
        description=(
            "Start discovery of a data source: tables, keys, relationships, column profiles and PII, "
            "read-only and within row and time budgets. It runs as a background job. With a progress "
            "token you get progress notifications and the final result; otherwise the call answers "
            "within a bounded wait with the job's status, and you follow it with get_job. When done, "
            "read the result with get_catalog. Needs the EDITOR role."
        ),
        operation="StartDiscovery",
        output=FOLLOWED_JOB,
        extra={"wait_seconds": WAIT_ARGUMENT},
        docs={"data_source_id": "The data source's id (from list_data_sources)."},
        long_job=True,
    ),
    ToolSpec(
        name="get_catalog",
        title="Read a data source's catalog",
        description=(
            "What discovery found in a data source, sized for your context window. level=summary "
            "(default) gives each table's row count, primary key, references to other tables, PII "
            "columns and quality score; level=detail adds every column's type, nullability, semantic "
            "type and PII flag. Pages stay under max_chars characters: when page.nextCursor is set, "
            "call again with cursor=page.nextCursor (and the same schema). page.totalTables says how "
            "many tables there are. For one table's full profiles use get_table or the resource links "
            "in the result."
        ),
        operation="GetCatalog",
        internal=frozenset({"first", "after", "count"}),
        extra={
            "level": {"type": "string", "enum": ["summary", "detail"], "description": "How much per table."},
            "cursor": {"type": "string", "description": "page.nextCursor of the previous page."},
            "max_chars": {
                "type": "integer",
                "minimum": 500,
                "maximum": 200_000,
                "description": "Budget for this page's JSON, in characters (default 12000).",
            },
            "schema": {"type": "string", "description": "Only tables of this schema."},
        },
        output={
            "type": "object",
            "properties": {
                "dataSourceId": {"type": "string"},
                "run": {"type": "object"},
                "level": {"type": "string"},
                "tables": {"type": "array", "items": {"type": "object"}},
                "page": {
                    "type": "object",
                    "properties": {
                        "offset": {"type": "integer"},
                        "tables": {"type": "integer"},
                        "totalTables": {"type": "integer"},
                        "nextCursor": NULLABLE_STRING,
                        "chars": {"type": "integer"},
                        "maxChars": {"type": "integer"},
                    },
                    "required": ["tables", "totalTables", "nextCursor", "maxChars"],
                },
            },
            "required": ["dataSourceId", "run", "level", "tables", "page"],
        },
        docs={"data_source_id": "The data source's id (from list_data_sources)."},
    ),
    ToolSpec(
        name="get_table",
        title="Read one table's profile",
        description=(
            "Everything discovery knows about one table: columns with types, semantic types, PII flags "
            "and value profiles (null fraction, distinct count, min/max, top values; PII values come "
            "masked), indexes, keys, quality and relationships. `table` is 'schema.name' as get_catalog "
            "shows it (exact case), a bare name when it is unique, or SQL identifiers such as "
            '\'"Sales"."OrderItems"\'.'
        ),
        operation="GetCatalogTable",
        internal=frozenset({"schema", "name"}),
        extra={
            "table": {
                "type": "string",
                "minLength": 1,
                "maxLength": 300,
                "description": "'schema.name' (exact case), a unique table name, or '\"Schema\".\"Name\"'.",
            }
        },
        required_extra=("table",),
        output={
            "type": "object",
            "properties": {
                "schema": {"type": "string"},
                "name": {"type": "string"},
                "columns": {"type": "array", "items": {"type": "object"}},
            },
            "required": ["schema", "name", "columns"],
        },
        docs={"data_source_id": "The data source's id (from list_data_sources)."},
    ),
    ToolSpec(
        name="catalog_diff",
        title="Compare two discovery runs",
        description=(
            "What changed in a data source between two discovery runs: tables and relationships "
            "added or removed, columns added, removed or changed. Give from_run_id and to_run_id, or "
            "only data_source_id to compare its two latest successful runs."
        ),
        operation="CatalogDiff",
        extra={"data_source_id": {"type": "string", "description": "Compare this source's two latest runs."}},
        output={
            "type": "object",
            "properties": {
                "fromRun": {"type": "object"},
                "toRun": {"type": "object"},
                "addedTables": {"type": "array"},
                "removedTables": {"type": "array"},
                "changedTables": {"type": "array"},
                "addedRelationships": {"type": "array"},
                "removedRelationships": {"type": "array"},
            },
            "required": ["addedTables", "removedTables", "changedTables"],
        },
    ),
    ToolSpec(
        name="generate_dashboard",
        title="Generate a dashboard",
        description=(
            "Build a dashboard from a discovered data source and a goal in plain words (e.g. "
            "'revenue over time by category'): UDS picks charts that answer it from what discovery "
            "measured, writes each one's read-only SQL and Vega-Lite spec, and lays them out. It runs "
            "as a background job, followed like start_discovery; when it has SUCCEEDED, job.result "
            "has the dashboardId for get_dashboard. Needs the EDITOR role and a discovered source."
        ),
        operation="GenerateDashboard",
        flatten="input",
        output=FOLLOWED_JOB,
        extra={"wait_seconds": WAIT_ARGUMENT},
        long_job=True,
    ),
    ToolSpec(
        name="get_dashboard",
        title="Read a dashboard",
        description=(
            "A dashboard's title, goal, link (url, for a person to open) and widgets: for each its "
            "title, kind, SQL, Vega-Lite spec (without data), grid position, score and the reason it "
            "was chosen. Fetch a widget's rows with get_widget_data, its picture with get_widget_image."
        ),
        operation="GetDashboard",
        output={
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "title": {"type": "string"},
                "goal": NULLABLE_STRING,
                "url": {"type": "string"},
                "widgets": {"type": "array", "items": {"type": "object"}},
            },
            "required": ["id", "title", "url", "widgets"],
        },
        docs={"id": "The dashboard's id (job.result.dashboardId of generate_dashboard)."},
    ),
    ToolSpec(
        name="get_widget_data",
        title="Read a widget's data",
        description=(
            "The rows behind one widget of a dashboard (its SQL run on the data source, read-only, "
            "cached), with the insights found in them. At most max_rows rows are returned (default "
            "50); rowsCapped says when there were more: then aggregate instead of reading them all."
        ),
        operation="GetWidgetData",
        extra={
            "max_rows": {
                "type": "integer",
                "minimum": 1,
                "maximum": 1000,
                "description": "Most rows to return (default 50).",
            },
            "refresh": {"type": "boolean", "description": "Run the SQL again instead of using the cache."},
        },
        output={
            "type": "object",
            "properties": {
                "columns": {"type": "array", "items": {"type": "string"}},
                "rows": {"type": "array", "items": {"type": "object"}},
                "rowsReturned": {"type": "integer"},
                "rowsAvailable": {"type": "integer"},
                "rowsCapped": {"type": "boolean"},
                "truncated": {"type": "boolean"},
                "cached": {"type": "boolean"},
                "insights": {"type": "array", "items": {"type": "string"}},
                "note": NULLABLE_STRING,
            },
            "required": ["columns", "rows", "rowsReturned", "rowsCapped", "truncated"],
        },
    ),
    ToolSpec(
        name="get_widget_image",
        title="See a widget",
        description=(
            "A PNG picture of one widget of a dashboard (rendered from its Vega-Lite spec and current "
            "data), with the dashboard's URL to give to a person."
        ),
        operation="GetWidgetImage",
        output={
            "type": "object",
            "properties": {
                "dashboardId": {"type": "string"},
                "widgetId": {"type": "string"},
                "mediaType": {"type": "string"},
                "imageUrl": {"type": "string"},
                "dashboardUrl": {"type": "string"},
                "dashboardTitle": {"type": "string"},
            },
            "required": ["dashboardId", "widgetId", "mediaType", "dashboardUrl"],
        },
    ),
    ToolSpec(
        name="get_job",
        title="Follow a job",
        description=(
            "The status of a background job (discovery, dashboard generation). With wait_seconds it "
            "waits up to that long for the job to end, and lists the job's events after after_seq; "
            "pass the lastSeq you got back as after_seq next time to resume where you left off."
        ),
        operation="GetJob",
        extra={
            "wait_seconds": WAIT_ARGUMENT,
            "after_seq": {
                "type": "integer",
                "minimum": 0,
                "description": "lastSeq of the previous answer: events already reported.",
            },
        },
        output=FOLLOWED_JOB,
        docs={"id": "The job's id."},
    ),
    ToolSpec(
        name="cancel_job",
        title="Cancel a job",
        description=(
            "Ask a running or queued job to stop. Its creator or a tenant ADMIN may. The job ends as "
            "CANCELLED (or, if it finished first, as it finished); follow it with get_job."
        ),
        operation="CancelJob",
        output={"type": "object", "properties": {"job": JOB_SCHEMA}, "required": ["job"]},
        docs={"id": "The job's id."},
    ),
)


@cache
def graphql_schema() -> GraphQLSchema:
    from uds.api.schema import build_schema

    return build_schema()._schema  # type: ignore[no-any-return]


def variables_of(operation: str) -> list[tuple[str, Any, bool]]:
    """(name, GraphQL type, required) of each variable of the operation."""
    schema = graphql_schema()
    document = parse(operation_texts()[operation])
    node = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    out = []
    for var in node.variable_definitions:
        gtype = type_from_ast(schema, var.type)
        out.append(
            (var.variable.name.value, gtype, isinstance(gtype, GraphQLNonNull) and var.default_value is None)
        )
    return out


def json_schema(gtype: Any, description: str | None = None) -> dict[str, Any]:
    """JSON Schema of a GraphQL input type."""
    if isinstance(gtype, GraphQLNonNull):
        return json_schema(gtype.of_type, description)
    out: dict[str, Any]
    if isinstance(gtype, GraphQLList):
        out = {"type": "array", "items": json_schema(gtype.of_type)}
    elif isinstance(gtype, GraphQLEnumType):
        out = {"type": "string", "enum": list(gtype.values)}
    elif isinstance(gtype, GraphQLInputObjectType):
        out = {"type": "object", "properties": {}, "additionalProperties": False}
        required = []
        for name, f in gtype.fields.items():
            out["properties"][name] = json_schema(f.type, f.description)
            if isinstance(f.type, GraphQLNonNull) and f.default_value is Undefined:
                required.append(name)
        if required:
            out["required"] = required
    elif isinstance(gtype, GraphQLScalarType):
        out = {
            "ID": {"type": "string"},
            "String": {"type": "string"},
            "Int": {"type": "integer"},
            "Float": {"type": "number"},
            "Boolean": {"type": "boolean"},
        }.get(gtype.name, {})
        out = dict(out)
    else:  # pragma: no cover - output types never appear in variables
        raise TypeError(f"not an input type: {gtype}")
    if description:
        out["description"] = description
    return out


@dataclass(frozen=True)
class Binding:
    """How a tool's arguments map onto its operation's variables."""

    input_schema: dict[str, Any]
    to_variable: dict[str, tuple[str, str | None]]  # tool arg -> (variable, input field or None)


_BINDINGS: dict[str, Binding] = {}


def binding(spec: ToolSpec) -> Binding:
    """The tool's input schema and argument mapping (computed once per tool)."""
    found = _BINDINGS.get(spec.name)
    if found is None:
        found = _BINDINGS[spec.name] = _binding(spec)
    return found


def _binding(spec: ToolSpec) -> Binding:
    properties: dict[str, Any] = {}
    required: list[str] = []
    mapping: dict[str, tuple[str, str | None]] = {}
    for name, gtype, needed in variables_of(spec.operation):
        if name in spec.internal:
            continue
        if name == spec.flatten:
            inner = gtype.of_type if isinstance(gtype, GraphQLNonNull) else gtype
            for fname, f in inner.fields.items():
                arg = snake(fname)
                properties[arg] = json_schema(f.type, f.description)
                mapping[arg] = (name, fname)
                if isinstance(f.type, GraphQLNonNull) and f.default_value is Undefined:
                    required.append(arg)
            continue
        arg = snake(name)
        properties[arg] = json_schema(gtype, spec.docs.get(arg))
        mapping[arg] = (name, None)
        if needed:
            required.append(arg)
    for arg, schema in spec.extra.items():
        if arg in properties:  # an extra that is also a variable only gets its doc
            properties[arg].setdefault("description", schema.get("description"))
            continue
        properties[arg] = schema
    for arg in spec.required_extra:
        required.append(arg)
    if spec.name == "catalog_diff":  # run ids or a data source: neither is required alone
        required = []
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return Binding(schema, mapping)


def variables_for(spec: ToolSpec, arguments: dict[str, Any]) -> dict[str, Any]:
    """The operation's variables from validated tool arguments (extras left out)."""
    variables: dict[str, Any] = {}
    for arg, value in arguments.items():
        target = binding(spec).to_variable.get(arg)
        if target is None:
            continue
        variable, input_field = target
        if input_field is None:
            variables[variable] = value
        else:
            variables.setdefault(variable, {})[input_field] = value
    return variables


TOOLS_BY_NAME = {spec.name: spec for spec in TOOLS}
