"""Limits, cached parsing and validation, and what each operation may use: one extension.

Strawberry runs every extension's hooks for every request, and for every event of every
subscription; one extension doing all of this costs a fraction of five. It does what
MaxTokensLimiter, ParserCache, AddValidationRules, ValidationCache and
DisableIntrospection did (the admission gate, uds.api.admission, is the other one), plus:

- Over WebSocket only subscriptions run; queries and mutations go over HTTP. A
  WebSocket connection has one context for all its operations and no per-operation
  transaction: a mutation there would never commit, and concurrent queries would share
  one connection. Refusing them is clearer than either.
- An HTTP query reads without a transaction, on the read-only engine
  (`TransactionScope.read_only`); a mutation keeps its transaction and savepoints.
- In safelist mode a document that is not listed does not run (HTTP requests are
  checked before, by uds.api.fastlane; this covers WebSocket subscriptions).
- A query that ran teaches the operation plans its document (uds.api.plans).

The depth and alias rules are built once: the limiter classes make a new rule class per
instance, and the validation cache keys on the rule classes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

from graphql import GraphQLError, parse
from graphql.validation import NoSchemaIntrospectionCustomRule
from starlette.websockets import WebSocket
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.schema.schema import validate_document
from strawberry.types.graphql import OperationType

from uds.api.context import Context
from uds.api.storable import StorableStringsRule
from uds.errors import BadUserInput, PersistedQueryNotInList
from uds.observability.activity import note_operation
from uds.settings import Settings

CACHE_SIZE = 1024
_parse = lru_cache(maxsize=CACHE_SIZE)(parse)
_validate = lru_cache(maxsize=CACHE_SIZE)(validate_document)


def operation_rules(settings: Settings) -> tuple[Any, ...]:
    rules: list[Any] = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
        StorableStringsRule,  # literals PostgreSQL could not store (uds.api.storable)
    ]
    if not settings.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return tuple(rules)


class OperationGate(SchemaExtension):
    def __init__(self, *, max_tokens: int, rules: Sequence[Any]) -> None:
        self.max_tokens = max_tokens
        self.rules = tuple(rules)

    def on_operation(self) -> Iterator[None]:
        execution = self.execution_context
        execution.parse_options["max_tokens"] = self.max_tokens
        execution.validation_rules = tuple(execution.validation_rules) + self.rules
        yield

    def on_parse(self) -> Iterator[None]:
        execution = self.execution_context
        execution.graphql_document = _parse(execution.query, **execution.parse_options)
        yield

    def on_validate(self) -> Iterator[None]:
        execution = self.execution_context
        execution.pre_execution_errors = _validate(
            execution.schema._schema, execution.graphql_document, execution.validation_rules
        )
        yield

    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        context = execution.context
        operation = execution.operation_type
        # Where the request's operation becomes known: its name and type go to the
        # request's metrics, log lines and span (one call per operation, not per field).
        note_operation(execution.operation_name, operation.value)
        if isinstance(getattr(context, "request", None), WebSocket):
            if operation != OperationType.SUBSCRIPTION:
                raise GraphQLError(
                    "only subscriptions are served over WebSocket; send queries and mutations over HTTP",
                    extensions={"code": BadUserInput.code},
                )
        elif operation == OperationType.QUERY and isinstance(context, Context):
            context.tx.read_only()
        schema = execution.schema
        persisted = getattr(schema, "persisted", None)
        if persisted is not None and execution.query is not None and not persisted.allowed(execution.query):
            raise GraphQLError(
                "this operation is not on the server's safelist",
                extensions={"code": PersistedQueryNotInList.code},
            )
        yield
        plans = getattr(schema, "plans", None)
        if plans is not None and operation == OperationType.QUERY and isinstance(context, Context):
            if not isinstance(context.request, WebSocket):
                plans.learn(execution.query, execution.provided_operation_name, execution.graphql_document)
