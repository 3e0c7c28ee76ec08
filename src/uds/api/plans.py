"""Operation plans: a query seen once runs again without strawberry's view or a document walk.

After a query has run through the normal path (so it parsed and passed validation and
every limit), its document is kept with an `OperationPlan`. The next request with the
same document (sent in full or by persisted-query hash) is answered by the plan:

1. the variables are coerced with graphql-core's own `get_variable_values`;
2. each root field's real resolver runs, through strawberry's field wrapper and its
   extensions (the policy check included), with a `PlanContext` whose denials do not
   audit but hand the request back to the normal path (which audits them once);
3. list fields the compiler handles return their SQL instead of running it; all of them
   run as one statement on a read-only connection (uds.api.compiler);
4. other values are written by an output plan made once from the selection (plain
   attribute fields only), and the response bytes are assembled by orjson.

The plan is derived from the strawberry schema and the document, never written per
operation. Anything a plan does not reproduce exactly (an error, a denial, a NULL where
the schema says non-null, a selection with resolvers below the root, a mutation) makes
the request take the normal path from the start: a plan answers only when the normal
path would have answered the same bytes without errors, which the differential test
(tests/api/test_fast_paths_sameness.py) checks.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    OperationDefinitionNode,
    OperationType,
    is_leaf_type,
)
from graphql.execution.collect_fields import (
    FieldDetails,
    FragmentDetails,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import _OperationContextAwareGraphQLResolveInfo

from uds.api.context import Context
from uds.api.execution import DEFINITION, Fragment
from uds.errors import UdsError

log = logging.getLogger(__name__)

PLAN_CACHE_SIZE = 1000
STATS: dict[str, int] = {"plans_built": 0, "plans_run": 0, "plan_fallbacks": 0, "not_plannable": 0}


class PlanFallback(Exception):
    """This request is not one a plan answers exactly: take the normal path."""


class NotPlannable(Exception):
    """This operation never gets a plan."""


class Deferred:
    """A list field's statement, to run with the other root fields' in one statement."""

    __slots__ = ("args", "sql")

    def __init__(self, sql: str, args: list[Any]) -> None:
        self.sql = sql
        self.args = args


@dataclass(eq=False)
class PlanContext(Context):
    """The context of a plan run: a denial hands the request back instead of failing it."""

    # A plan runs its root fields one after another: guarded resolvers need no turns.
    serial: Any = None

    async def authorize(self, action: str, resource: dict[str, Any] | None = None) -> None:
        decision = await self.decide(action, resource)
        if not decision.allow:
            raise PlanFallback(f"denied: {action}")

    async def audit_denial(self, action: str, decision: Any, resource: dict[str, Any] | None) -> None:
        raise PlanFallback(f"denied: {action}")


@dataclass
class _Walk:
    """What uds.api.compiler reads from an executor, for a plan run."""

    schema: Any
    fragments: dict[str, FragmentDetails]
    fragment_definitions: dict[str, Any]
    operation: OperationDefinitionNode
    variable_values: VariableValues


@dataclass
class RootField:
    key: str
    definition: Any
    nodes: list[Any]
    output: Callable[[Any], Any] | None
    arguments: dict[str, Any] | None  # when they read no variables: coerced once


@dataclass
class OperationPlan:
    schema: Any  # graphql-core schema
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDetails]
    fragment_definitions: dict[str, Any]
    directive_variables: tuple[str, ...]
    variants: dict[bytes, list[RootField] | None] = field(default_factory=dict)
    document: DocumentNode | None = None  # the operation and its fragments, for the gate
    # Runs on the raw read pool (uds.db.TransactionScope.read_raw) until a run asks for
    # SQLAlchemy; then False, and later runs take the read engine.
    raw: bool | None = None

    def root_fields(self, walk: _Walk) -> list[RootField] | None:
        coerced = walk.variable_values.coerced
        key = (
            orjson.dumps([coerced.get(n) for n in self.directive_variables])
            if self.directive_variables
            else b""
        )
        if key in self.variants:
            return self.variants[key]
        try:
            fields: list[RootField] | None = self._root_fields(walk)
        except NotPlannable:
            fields = None
        if len(self.variants) < 64:
            self.variants[key] = fields
        return fields

    def _root_fields(self, walk: _Walk) -> list[RootField]:
        query = self.schema.query_type
        grouped, _defers, _forbidden = collect_fields(
            self.schema, self.fragments, walk.variable_values, query, self.operation
        )
        found = []
        for key, details in grouped.items():
            node = details[0].node
            if node.name.value == "__typename" or any(d.fragment_variable_values for d in details):
                raise NotPlannable("__typename or fragment variables at the root")
            definition = query.fields.get(node.name.value)
            if definition is None or definition.resolve is None:
                raise NotPlannable(f"root field {node.name.value}")
            uses_variables = _reads_variables(node)
            arguments = (
                None if uses_variables else get_argument_values(definition, node, walk.variable_values)
            )
            output = _output_or_none(walk, definition.type, details)
            found.append(RootField(key, definition, [d.node for d in details], output, arguments))
        return found


def _reads_variables(node: Any) -> bool:
    return "$" in _argument_text(node)


def _argument_text(node: Any) -> str:
    from graphql import print_ast

    return "".join(print_ast(argument) for argument in node.arguments or ())


# --------------------------------------------------------------------------------------
# Output plans: how graphql-core would complete a value whose selection reads attributes
# --------------------------------------------------------------------------------------


def _output_or_none(walk: _Walk, type_: Any, details: list[FieldDetails]) -> Callable[[Any], Any] | None:
    try:
        return _output(walk, type_, details)
    except NotPlannable:
        return None


def _output(walk: _Walk, type_: Any, details: list[FieldDetails]) -> Callable[[Any], Any]:
    if isinstance(type_, GraphQLNonNull):
        inner = _output(walk, type_.of_type, details)

        def non_null(value: Any) -> Any:
            result = inner(value)
            if result is None:
                raise PlanFallback("null in a non-null field")
            return result

        return non_null
    if isinstance(type_, GraphQLList):
        item = _output(walk, type_.of_type, details)

        def listed(value: Any) -> Any:
            if value is None or type(value) is Fragment:
                return value
            if not isinstance(value, list | tuple):
                raise PlanFallback("not a list")
            return [item(v) for v in value]

        return listed
    if is_leaf_type(type_):

        def leaf(value: Any) -> Any:
            if value is None:
                return None
            result = type_.coerce_output_value(value)
            if result is None or result is Undefined:
                raise PlanFallback("leaf value")
            return result

        return leaf
    if not isinstance(type_, GraphQLObjectType) or type_.is_type_of is not None:
        raise NotPlannable(f"abstract or checked type {type_}")
    grouped, _defers, _forbidden = collect_subfields(
        walk.schema, walk.fragments, walk.variable_values, walk.operation, type_, details
    )
    entries: list[tuple[str, str | None, Any]] = []
    for key, sub in grouped.items():
        node = sub[0].node
        if any(d.node.arguments or d.fragment_variable_values for d in sub):
            raise NotPlannable("arguments below the root")
        if node.name.value == "__typename":
            entries.append((key, None, type_.name))
            continue
        definition = type_.fields.get(node.name.value)
        strawberry_field = definition.extensions.get(DEFINITION) if definition else None
        if strawberry_field is None or not strawberry_field.is_basic_field:
            raise NotPlannable(f"{type_.name}.{node.name.value} has a resolver")
        entries.append((key, strawberry_field.python_name, _output(walk, definition.type, sub)))

    def obj(value: Any) -> Any:
        if value is None or type(value) is Fragment:
            return value
        return {key: (inner if attr is None else inner(getattr(value, attr))) for key, attr, inner in entries}

    return obj


# --------------------------------------------------------------------------------------
# The cache, and running a plan
# --------------------------------------------------------------------------------------


class PlanCache:
    """Plans by (document text, operation name); learned from the normal path."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema  # strawberry schema
        self._plans: OrderedDict[tuple[str, str | None], OperationPlan | None] = OrderedDict()

    def get(self, query: str, operation_name: str | None) -> OperationPlan | None:
        plan = self._plans.get((query, operation_name))
        return plan

    def known(self, query: str, operation_name: str | None) -> bool:
        return (query, operation_name) in self._plans

    def learn(self, query: str | None, operation_name: str | None, document: DocumentNode | None) -> None:
        """Keep a plan for a document that has just run through the normal path."""
        if query is None or document is None or (query, operation_name) in self._plans:
            return
        plan = _build(self.schema._schema, document, operation_name)
        STATS["plans_built" if plan is not None else "not_plannable"] += 1
        self._plans[(query, operation_name)] = plan
        while len(self._plans) > PLAN_CACHE_SIZE:
            self._plans.popitem(last=False)


def _build(schema: Any, document: DocumentNode, operation_name: str | None) -> OperationPlan | None:
    operation = None
    fragments: dict[str, FragmentDetails] = {}
    definitions: dict[str, Any] = {}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            if operation_name is None or (definition.name and definition.name.value == operation_name):
                if operation is not None:
                    return None
                operation = definition
        elif hasattr(definition, "type_condition"):
            if definition.variable_definitions:  # fragment arguments (experimental)
                return None
            definitions[definition.name.value] = definition
            fragments[definition.name.value] = FragmentDetails(definition, None)
    if operation is None or operation.operation is not OperationType.QUERY or operation.directives:
        return None
    from uds.api.compiler import _directive_variables

    holder = _Walk(schema, fragments, definitions, operation, VariableValues({}, {}))
    return OperationPlan(schema, operation, fragments, definitions, _directive_variables(holder))


_PLACEHOLDER = re.compile(r"\$(\d+)")


def combine(deferred: list[Deferred]) -> tuple[str, list[Any]]:
    """One statement returning each deferred statement's text as a column."""
    if len(deferred) == 1:
        return deferred[0].sql, deferred[0].args
    parts = []
    args: list[Any] = []
    for item in deferred:
        offset = len(args)
        parts.append("(" + _PLACEHOLDER.sub(lambda m, o=offset: f"${int(m.group(1)) + o}", item.sql) + ")")
        args.extend(item.args)
    return "select " + ", ".join(parts), args


async def run_plan(plan: OperationPlan, context: PlanContext, raw_variables: Any) -> bytes:
    """The response body for this request; raises PlanFallback for the normal path."""
    schema = plan.schema
    operation = plan.operation
    if raw_variables is not None and not isinstance(raw_variables, dict):
        raise PlanFallback("variables")
    if operation.variable_definitions:
        variables = get_variable_values(schema, operation.variable_definitions, raw_variables or {})
        if isinstance(variables, list):
            raise PlanFallback("variable errors")
    else:
        variables = VariableValues({}, {})
    walk = _Walk(schema, plan.fragments, plan.fragment_definitions, operation, variables)
    fields = plan.root_fields(walk)
    if fields is None:
        raise PlanFallback("not plannable")
    context.executor = walk
    context.deferred = []
    query_type = schema.query_type
    results: list[Any] = []
    for root in fields:
        arguments = root.arguments
        if arguments is None:
            try:
                arguments = get_argument_values(root.definition, root.nodes[0], variables)
            except Exception as exc:
                raise PlanFallback("arguments") from exc
        info = _OperationContextAwareGraphQLResolveInfo(
            root.nodes[0].name.value,
            root.nodes,
            root.definition.type,
            query_type,
            Path(None, root.key, query_type.name),
            schema,
            plan.fragment_definitions,
            None,
            operation,
            variables.coerced,
            context,
            _is_awaitable,
            None,
            None,
            None,
        )
        try:
            value = root.definition.resolve(None, info, **arguments)
            if _is_awaitable(value):
                value = await value
        except (UdsError, PlanFallback, Exception) as exc:
            raise PlanFallback(f"resolver {root.key}: {exc!r}") from exc
        results.append(value)
    deferred = context.deferred
    if deferred:
        sql, args = combine(deferred)
        texts = await context.tx.fetchrow(sql, *args)
        for item, text in zip(deferred, texts, strict=True):
            if text is None:
                from uds.api.compiler import STATS as JSON_STATS

                JSON_STATS["json_fallbacks"] += 1
                raise PlanFallback("a value the normal path reports as an error")
            item.sql = text  # reuse the slot: the JSON of this field
    data: dict[str, Any] = {}
    for root, value in zip(fields, results, strict=True):
        if type(value) is Deferred:
            data[root.key] = Fragment(value.sql)
        elif type(value) is Fragment:
            data[root.key] = value
        elif root.output is not None:
            data[root.key] = root.output(value)
        else:
            raise PlanFallback(f"no output plan for {root.key}")
    return orjson.dumps({"data": data})


def _is_awaitable(value: Any) -> bool:
    return hasattr(value, "__await__")
