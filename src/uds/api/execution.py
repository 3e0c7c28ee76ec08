"""graphql-core's executor with two additions the read fast paths need.

1. JSON passthrough. A resolver (or an attribute) may hold an `orjson.Fragment`: JSON
   text already written for exactly the selection at that position, e.g. by PostgreSQL
   (uds.api.compiler). The executor takes it as the completed value, untouched; orjson
   splices it into the response. Nothing else changes: a value that is not a Fragment is
   completed as always, with its errors, nullability and abstract types.
2. One execution per event for all subscribers. A subscription event is delivered to
   every subscriber of a job as the same `SharedEvent` object; subscribers whose
   documents and variables are the same get the same result, computed once and kept on
   the event as a Fragment. Only selections of plain attribute fields are shared (no
   resolver, no field extension), so nothing caller-specific can leak between them.
   `event_body` gives that result as JSON bytes, also made once per event and shape, for
   the live path that writes frames itself (uds.api.live).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from graphql import (
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    is_leaf_type,
)
from graphql.execution import ExecutionResult
from graphql.execution.collect_fields import collect_fields, collect_subfields
from graphql.execution.executor import CollectedErrors
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

Fragment = orjson.Fragment
DEFINITION = "strawberry-definition"
# Subscription events executed, deliveries that took an execution shared by another, and
# live events written as frames by uds.api.live (they count in shared_results too).
STATS: dict[str, int] = {"event_executions": 0, "shared_results": 0, "live_frames": 0}


class SharedEvent:
    """A subscription payload shared by all the subscribers it is delivered to."""

    __slots__ = ("bodies", "results", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.results: dict[tuple[int, str], dict[str, Any]] = {}
        self.bodies: dict[tuple[int, str], bytes] = {}  # the results as JSON


_UNKNOWN = object()


class _SharedResult:
    """Stands in for a per-event executor when the event's result is shared already."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def execute_operation(self, serially: bool | None = None) -> ExecutionResult:
        return ExecutionResult(self.data, None)


class UdsExecutor(StrawberryGraphQLCoreExecutionContext):
    """The executor of every UDS operation (`execution_context_class` of the schema)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        context = self.context_value
        # A query's context belongs to its request alone: resolvers find their executor
        # there (uds.api.compiler collects sub-selections with it).
        if self.operation.operation is OperationType.QUERY and hasattr(context, "executor"):
            context.executor = self

    def complete_value(
        self,
        return_type: Any,
        field_details_list: Any,
        info: Any,
        path: Any,
        result: Any,
        position_context: Any,
    ) -> Any:
        if type(result) is Fragment:
            return result
        return super().complete_value(return_type, field_details_list, info, path, result, position_context)

    def build_per_event_executor(self, payload: Any) -> Any:
        """graphql-core's per-event copy, without `copy.copy`'s generic reduce protocol
        (it runs for every event of every subscriber).

        An event whose result another subscriber with the same operation and directive
        variables has made already needs no executor at all: its shared result is
        returned as it is (the key is worked out once per subscription).
        """
        if type(payload) is SharedEvent:
            key = self.__dict__.get("_uds_share_key", _UNKNOWN)
            if key is _UNKNOWN:
                key = self._uds_share_key = _share_key(self)
            if key is not None:
                data = payload.results.get(key)
                if data is not None:
                    STATS["shared_results"] += 1
                    return _SharedResult(data)
        executor = object.__new__(type(self))
        executor.__dict__.update(self.__dict__)
        executor.root_value = payload
        executor.collected_errors = CollectedErrors()
        return executor

    def cancellable_iterable(self, iterable: Any) -> Any:
        """graphql-core wraps a subscription's source stream here: a stream that wants its
        executor (uds.api.live.EventFeed) gets it."""
        bind = getattr(iterable, "bind", None)
        if bind is not None:
            bind(self)
        return super().cancellable_iterable(iterable)

    def execute_operation(self, serially: bool | None = None) -> Any:
        payload = self.root_value
        if type(payload) is not SharedEvent:
            return super().execute_operation(serially)
        self.root_value = payload.value
        key = _share_key(self)
        if key is None:
            return super().execute_operation(serially)
        data = payload.results.get(key)
        if data is not None:
            STATS["shared_results"] += 1
            return ExecutionResult(data, None)
        STATS["event_executions"] += 1
        result = super().execute_operation(serially)
        if self.is_awaitable(result):
            return _remember_async(payload, key, result)
        return _remember(payload, key, result)


_FINISHING: set[Any] = set()


def share_key(executor: UdsExecutor) -> tuple[int, str] | None:
    """The subscription's key to the results it shares with others (None: it shares none)."""
    key = executor.__dict__.get("_uds_share_key", _UNKNOWN)
    if key is _UNKNOWN:
        key = executor._uds_share_key = _share_key(executor)
    return key  # type: ignore[no-any-return]


def event_body(executor: UdsExecutor, key: tuple[int, str], payload: SharedEvent) -> bytes | None:
    """The event's `data` for the subscription of `executor` (whose `share_key` is `key`),
    as JSON: made once per event for every subscriber whose operation has the same shape
    and directive variables. None if it is not made at once or has errors: the event then
    takes graphql-core's path, which handles every case."""
    body = payload.bodies.get(key)
    if body is not None:
        STATS["shared_results"] += 1
        return body
    data = payload.results.get(key)
    try:
        if data is None:
            result = executor.build_per_event_executor(payload).execute_operation()
            if executor.is_awaitable(result):
                # Not expected for a plain selection; let it finish (it stores its result).
                task = asyncio.ensure_future(result)
                _FINISHING.add(task)
                task.add_done_callback(_FINISHING.discard)
                return None
            if result.errors or result.data is None:
                return None
            data = result.data
        else:
            STATS["shared_results"] += 1
        body = payload.bodies[key] = orjson.dumps(data)
    except TypeError:  # a value orjson refuses (uds.api.view.encode_json handles it)
        return None
    return body


async def _remember_async(payload: SharedEvent, key: tuple[int, str], result: Any) -> Any:
    return _remember(payload, key, await result)


def _remember(payload: SharedEvent, key: tuple[int, str], result: Any) -> Any:
    if result.errors or result.data is None:
        return result  # errors are not shared; each subscriber gets its own
    data = {name: Fragment(orjson.dumps(value)) for name, value in result.data.items()}
    payload.results[key] = data
    return ExecutionResult(data, None)


# Per operation node: the variables its selection's directives read, and per their values
# whether the selection below the root field reads plain attributes only. Keyed by the
# node's id and holding the node, so the id cannot be reused by another document.
_SHAPES: dict[int, tuple[OperationDefinitionNode, tuple[str, ...], dict[str, bool]]] = {}


def _share_key(executor: UdsExecutor) -> tuple[int, str] | None:
    operation = executor.operation
    shape = _SHAPES.get(id(operation))
    if shape is None or shape[0] is not operation:
        if len(_SHAPES) > 1000:
            _SHAPES.clear()
        shape = _SHAPES[id(operation)] = (operation, _directive_variables(executor), {})
    coerced = executor.variable_values.coerced
    try:
        # Decoded: the key lives as long as the subscription, and orjson's bytes keep the
        # capacity of its output buffer (4 KB) however short the JSON.
        values = orjson.dumps([coerced.get(name) for name in shape[1]]).decode()
    except TypeError:
        return None
    plain = shape[2].get(values)
    if plain is None:
        plain = shape[2][values] = _plain_operation(executor)
    return (id(operation), values) if plain else None


def _directive_variables(executor: UdsExecutor) -> tuple[str, ...]:
    """Names of the variables that @skip/@include read anywhere in the document."""
    names: set[str] = set()
    nodes: list[Any] = [executor.operation, *executor.fragment_definitions.values()]
    while nodes:
        node = nodes.pop()
        for directive in getattr(node, "directives", None) or ():
            for argument in directive.arguments or ():
                if isinstance(argument.value, VariableNode):
                    names.add(argument.value.name.value)
        selection_set = getattr(node, "selection_set", None)
        if selection_set is not None:
            nodes.extend(selection_set.selections)
    return tuple(sorted(names))


def _plain_operation(executor: UdsExecutor) -> bool:
    schema = executor.schema
    root = schema.subscription_type
    if root is None or executor.operation.operation is not OperationType.SUBSCRIPTION:
        return False
    grouped, _defers, _forbidden = collect_fields(
        schema, executor.fragments, executor.variable_values, root, executor.operation
    )
    for fields in grouped.values():
        definition = root.fields.get(fields[0].node.name.value)
        if definition is None or not _plain_below(executor, definition.type, fields):
            return False
    return True


def _plain_below(executor: UdsExecutor, type_: Any, fields: Any) -> bool:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    if is_leaf_type(type_):
        return True
    if not isinstance(type_, GraphQLObjectType) or type_.is_type_of is not None:
        return False
    grouped, _defers, _forbidden = collect_subfields(
        executor.schema, executor.fragments, executor.variable_values, executor.operation, type_, fields
    )
    for sub in grouped.values():
        field_name = sub[0].node.name.value
        if field_name == "__typename":
            continue
        definition = type_.fields.get(field_name)
        strawberry_field = definition.extensions.get(DEFINITION) if definition else None
        if strawberry_field is None or not strawberry_field.is_basic_field:
            return False
        if any(f.node.arguments for f in sub) or not _plain_below(executor, definition.type, sub):
            return False
    return True
