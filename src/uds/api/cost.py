"""What an operation may cost, known before it runs: list sizes times what is selected below.

The cost counts the objects an operation can make the server build. An object field costs
1 plus what is selected below it; a leaf costs nothing; a list multiplies what one item
costs by how many items it can have:

- a field with a `first` argument returns at most `first` items (clamped to the maximum
  page size), or the default page when `first` is absent or null; for a connection, its
  `edges` and `nodes` lists have that many items;
- any other list of objects is assumed to hold `cost_list_size` items (a setting).

Fragments count in full wherever they are spread, and the branches of a union or
interface are added up rather than maxed, so the figure is an upper bound. Introspection
fields (`__schema`, `__type`) are not counted: they are bounded by the schema.

The same walk weighs the operation for the rate limiter: a query or subscription weighs
READ_WEIGHT (SUBSCRIPTION_WEIGHT), a mutation MUTATION_WEIGHT per root field, or
JOB_WEIGHT for a root field that starts a job.

Both are computed once per document and variables shape: the first walk of a document
notes which variables feed `first` arguments, and later requests look the figures up by
the document and the values of just those variables.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    NullValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)

from uds.api.pagination import DEFAULT_PAGE

READ_WEIGHT = 1
SUBSCRIPTION_WEIGHT = 5
MUTATION_WEIGHT = 5
JOB_WEIGHT = 20
# Mutation fields returning this union start a job (startDiscovery, generateDashboard, ...).
JOB_RESULT = "StartJobResult"
PAGED = frozenset({"edges", "nodes"})
CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Plan:
    """What the gate needs to know about one operation with one variables shape."""

    operation: str  # "query" | "mutation" | "subscription"
    cost: int
    weight: int


class CostAnalyzer:
    """Costs and weights of operations against one schema, cached."""

    def __init__(self, schema: GraphQLSchema, *, max_page_size: int, list_size: int) -> None:
        self.schema = schema
        self.max_page = max_page_size
        self.default_page = min(DEFAULT_PAGE, max_page_size)
        self.list_size = list_size
        # (document key, operation name) -> names of the variables that feed `first`.
        self._shapes: OrderedDict[tuple[str, str | None], tuple[str, ...]] = OrderedDict()
        # (document key, operation name, their values) -> plan.
        self._plans: OrderedDict[tuple[Any, ...], Plan] = OrderedDict()

    def plan(
        self,
        document: DocumentNode,
        *,
        key: str | None,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
    ) -> Plan:
        """The plan of a validated document; `key` identifies it (e.g. the query text).

        Without a key the plan is computed and not cached.
        """
        variables = variables or {}
        if key is None:
            return _Walk(self, document, operation_name, variables).run()
        shape_key = (key, operation_name)
        names = self._shapes.get(shape_key)
        if names is not None:
            plan_key = (key, operation_name, *(_hashable(variables.get(n)) for n in names))
            plan = self._plans.get(plan_key)
            if plan is not None:
                self._plans.move_to_end(plan_key)
                return plan
        walk = _Walk(self, document, operation_name, variables)
        plan = walk.run()
        names = tuple(sorted(walk.used))
        _put(self._shapes, shape_key, names)
        _put(self._plans, (key, operation_name, *(_hashable(variables.get(n)) for n in names)), plan)
        return plan


class _Walk:
    def __init__(
        self,
        analyzer: CostAnalyzer,
        document: DocumentNode,
        operation_name: str | None,
        variables: Mapping[str, Any],
    ) -> None:
        self.a = analyzer
        self.variables = variables
        self.used: set[str] = set()
        self.fragments: dict[str, FragmentDefinitionNode] = {}
        self.operation: OperationDefinitionNode | None = None
        for definition in document.definitions:
            if isinstance(definition, FragmentDefinitionNode):
                self.fragments[definition.name.value] = definition
            elif isinstance(definition, OperationDefinitionNode):
                name = definition.name.value if definition.name else None
                if operation_name is None or name == operation_name:
                    self.operation = self.operation or definition
        self.defaults: dict[str, Any] = {}
        if self.operation is not None:
            for var in self.operation.variable_definitions or ():
                if isinstance(var.default_value, IntValueNode):
                    self.defaults[var.variable.name.value] = int(var.default_value.value)

    def run(self) -> Plan:
        op = self.operation
        if op is None:  # validation reports this; nothing runs
            return Plan("query", 0, READ_WEIGHT)
        root = self.a.schema.get_root_type(op.operation)
        cost = self.selections(op.selection_set, root, None) if root else 0
        kind = op.operation.value
        if op.operation is OperationType.MUTATION and root is not None:
            weight = 0
            for field in self.root_fields(op.selection_set):
                definition = root.fields.get(field.name.value)
                returns = get_named_type(definition.type).name if definition else ""
                weight += JOB_WEIGHT if returns == JOB_RESULT else MUTATION_WEIGHT
            weight = max(weight, MUTATION_WEIGHT)
        elif op.operation is OperationType.SUBSCRIPTION:
            weight = SUBSCRIPTION_WEIGHT
        else:
            weight = READ_WEIGHT
        return Plan(kind, cost, weight)

    def root_fields(self, selection_set: SelectionSetNode) -> list[FieldNode]:
        fields: list[FieldNode] = []
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                if not selection.name.value.startswith("__"):
                    fields.append(selection)
            elif isinstance(selection, InlineFragmentNode):
                fields += self.root_fields(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    fields += self.root_fields(fragment.selection_set)
        return fields

    def selections(self, selection_set: SelectionSetNode, parent: Any, page: int | None) -> int:
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, page)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.a.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(selection.selection_set, target or parent, page)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    target = self.a.schema.get_type(fragment.type_condition.name.value)
                    total += self.selections(fragment.selection_set, target or parent, page)
        return total

    def field(self, node: FieldNode, parent: Any, page: int | None) -> int:
        name = node.name.value
        if name.startswith("__") or node.selection_set is None:
            return 0
        fields = getattr(parent, "fields", None)
        definition = fields.get(name) if fields else None
        if definition is None:
            return 0
        named = get_named_type(definition.type)
        size = self.first(node) if "first" in definition.args else None
        below = self.selections(node.selection_set, named, size)
        if _is_list(definition.type):
            if size is None:
                size = page if page is not None and name in PAGED else self.a.list_size
            return size * (1 + below)
        return 1 + below

    def first(self, node: FieldNode) -> int:
        """The page size a `first` argument asks for, clamped as the resolvers clamp it."""
        value: Any = None
        for argument in node.arguments or ():
            if argument.name.value != "first":
                continue
            if isinstance(argument.value, VariableNode):
                var = argument.value.name.value
                self.used.add(var)
                value = self.variables.get(var, self.defaults.get(var))
            elif isinstance(argument.value, IntValueNode):
                value = int(argument.value.value)
            elif isinstance(argument.value, NullValueNode):
                value = None
        if not isinstance(value, int) or isinstance(value, bool):
            return self.a.default_page
        return max(1, min(value, self.a.max_page))


def _is_list(type_: Any) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (int, str, float, bool, type(None))) else repr(value)


def _put(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
