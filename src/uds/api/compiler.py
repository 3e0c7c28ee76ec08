"""JSON from PostgreSQL for list fields whose selection is plain columns.

`JsonList` describes a root list field (its node type's `RowSource`, its order, cursor
and filters). Given the field's selection in a request, `JsonList.compile` writes one SQL
statement that returns the field's whole value as JSON text, in the order and with the
names (aliases, `__typename`) the selection asks for; the resolver hands that text to
graphql-core as an `orjson.Fragment` (uds.api.execution) instead of building objects.

The compiler only writes what it knows to be byte-identical to the normal path
(uds.api.sqljson); for anything else it raises `NotCompilable` and the resolver takes
the normal path. That covers fields with a resolver or an extension (per-field policy
included), arguments, JSON scalars, types without a row source, and selections that ask
for a field twice under one name with different sub-selections. Values the normal path
would report as a field error (a NULL in a non-null field, an enum value the schema
does not know, an Int over 32 bits, a non-finite float) make the statement return NULL,
and the resolver then takes the normal path, which reports the error as it always has.

Selections are collected with graphql-core's own `collect_subfields`, so fragments,
inline fragments, `@skip`/`@include` and field merging follow the executor exactly.
Compiled statements are cached per (selection, values of the document's directive
variables, variant of the arguments, tenant schema).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    OperationDefinitionNode,
    VariableNode,
)
from graphql.execution.collect_fields import FieldDetails, collect_subfields
from sqlalchemy import Boolean, DateTime, Float, Integer, SmallInteger, String, Text, Uuid
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB

from uds.api import sqljson as js
from uds.api.rowsource import SOURCES, Relation, RowSource

DEFINITION = "strawberry-definition"
BAD = "'BAD'"  # what a nested object's subquery returns when the normal path would err


class NotCompilable(Exception):
    """The selection asks for something the compiler does not write; use the normal path."""


@dataclass(frozen=True)
class Keyset:
    """How a list pages: its order, and the cursor text the resolvers encode per node.

    `kind` is the cursor's prefix (uds.api.pagination.encode_cursor); the key is the
    node's `columns` joined as the resolvers join them: "int" (one integer column),
    "text" (one text column) or "time_id" (`time_id_key`: a timestamp and an id).
    """

    kind: str
    key: str
    columns: tuple[str, ...]
    descending: bool


@dataclass(frozen=True)
class Selection:
    """A compiled selection of one object type, in terms of a row alias."""

    json: str
    checks: tuple[str, ...]
    columns: frozenset[str]
    derived: tuple[tuple[str, str], ...]  # (name, expression over the base alias)


class _Namer:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"


@dataclass
class _Walk:
    """What a compile needs from the executor: schema, fragments, variables, operation."""

    schema: Any
    fragments: Any
    variables: Any
    operation: OperationDefinitionNode
    names: _Namer = field(default_factory=_Namer)

    def subfields(self, type_: GraphQLObjectType, fields: Sequence[FieldDetails]) -> dict[str, list[Any]]:
        grouped, _defers, _forbidden = collect_subfields(
            self.schema, self.fragments, self.variables, self.operation, type_, list(fields)
        )
        return grouped


def _named(type_: Any) -> tuple[Any, bool, bool]:
    """(named type, non-null outside, is list) for T, T!, [T!]!, [T]."""
    non_null = isinstance(type_, GraphQLNonNull)
    if non_null:
        type_ = type_.of_type
    is_list = isinstance(type_, GraphQLList)
    if is_list:
        type_ = type_.of_type
        if isinstance(type_, GraphQLNonNull):
            type_ = type_.of_type
        if isinstance(type_, GraphQLList | GraphQLNonNull):
            raise NotCompilable("nested lists")
    return type_, non_null, is_list


def _basic(definition: Any) -> Any:
    strawberry_field = definition.extensions.get(DEFINITION)
    if strawberry_field is None or not strawberry_field.is_basic_field:
        raise NotCompilable(f"field {definition} has a resolver or an extension")
    return strawberry_field


def _one_selection(fields: Sequence[FieldDetails]) -> None:
    """Merged fields must not differ in ways collect_subfields would combine per value."""
    if any(f.fragment_variable_values is not None or f.defer_usage is not None for f in fields):
        raise NotCompilable("fragment variables or @defer")
    if any(f.node.arguments for f in fields):
        raise NotCompilable("arguments")


def _json_object(parts: list[tuple[str, str]]) -> str:
    """Concatenation of `"key":value` pairs (values are SQL expressions) into an object."""
    if not parts:
        return "'{}'"
    pieces: list[str] = []
    text = "{"
    for i, (key, value) in enumerate(parts):
        text += ("," if i else "") + orjson.dumps(key).decode() + ":"
        if value.startswith("'") and value.endswith("'") and value.count("'") == 2:
            text += value[1:-1]  # a constant (a __typename)
            continue
        pieces.append(js.literal(text))
        pieces.append(value)
        text = ""
    text += "}"
    pieces.append(js.literal(text))
    return "(" + " || ".join(pieces) + ")"


def _scalar(named: Any, column: Any, expr: str, *, non_null: bool, what: str) -> tuple[str, list[str]]:
    """(JSON expression, checks) for one scalar or enum value read from `column`."""
    sql_type = column.type
    checks: list[str] = []
    if isinstance(named, GraphQLEnumType):
        if not isinstance(sql_type, String | Text):
            raise NotCompilable(f"{what}: enum from {sql_type}")
        cases = []
        known = []
        for name, value in named.values.items():
            raw = getattr(value.value, "value", value.value)
            if not isinstance(raw, str):
                raise NotCompilable(f"{what}: enum value {raw!r}")
            cases.append(f"when {js.literal(raw)} then {js.literal(orjson.dumps(name).decode())}")
            known.append(js.literal(raw))
        json = f"(case {expr} {' '.join(cases)} end)"
        checks.append(f"({expr}) not in ({', '.join(known)})")
    elif not isinstance(named, GraphQLScalarType):
        raise NotCompilable(f"{what}: {named}")
    elif named.name == "ID" and isinstance(sql_type, Integer | Uuid):
        json = js.digits_string(expr)
    elif (
        named.name in ("ID", "String")
        and isinstance(sql_type, String | Text)
        and not isinstance(sql_type, JSONB)
    ):
        json = js.string(expr)
    elif named.name == "Int" and isinstance(sql_type, Integer):
        json = js.integer(expr)
        if not isinstance(sql_type, SmallInteger) and type(sql_type) is not Integer:
            checks.append(f"not {js.int32_ok(expr)}")
    elif named.name == "Float" and isinstance(sql_type, Float | Integer):
        json = js.float8(expr)
        checks.append(f"not {js.float8_ok(expr)}")
    elif named.name == "Boolean" and isinstance(sql_type, Boolean):
        json = js.boolean(expr)
    elif named.name == "DateTime" and isinstance(sql_type, DateTime) and sql_type.timezone:
        json = js.timestamp(expr)
        checks.append(f"not {js.timestamp_ok(expr)}")
    else:
        raise NotCompilable(f"{what}: {named.name} from {sql_type}")
    if non_null:
        if column.nullable:
            checks.append(f"({expr}) is null")
    else:
        json = f"coalesce({json}, 'null')"
    # A NULL never reaches a check as "true": `x not in (...)` is NULL for NULL x.
    return json, [f"coalesce({c}, false)" for c in checks]


def _string_list(
    column: Any, expr: str, *, non_null: bool, empty_if_null: bool, what: str
) -> tuple[str, list[str]]:
    """A JSON array of strings from a JSONB array of strings (as `list(value or [])` reads it)."""
    if not isinstance(column.type, JSONB):
        raise NotCompilable(f"{what}: list from {column.type}")
    array = (
        f"(select '[' || coalesce(string_agg(to_json(e.v #>> '{{}}')::text, ',' order by e.o), '') || ']'"
        f" from jsonb_array_elements(case when jsonb_typeof({expr}) = 'array' then {expr} end)"
        " with ordinality e(v, o))"
    )
    missing = f"({expr} is null or jsonb_typeof({expr}) = 'null')"
    checks = [
        f"coalesce(jsonb_typeof({expr}) not in ('array', 'null'), false)",
        f"coalesce((jsonb_typeof({expr}) = 'array' and exists (select 1"
        f" from jsonb_array_elements({expr}) e(v) where jsonb_typeof(e.v) <> 'string')), false)",
    ]
    if empty_if_null:
        return f"(case when {missing} then '[]' else {array} end)", checks
    if non_null:
        checks.append(missing)
        return array, checks
    return f"(case when {missing} then 'null' else {array} end)", checks


def compile_object(
    walk: _Walk, source: RowSource, type_: GraphQLObjectType, fields: Sequence[FieldDetails], level: int
) -> Selection:
    """The JSON of one object of `type_` read from a row of `source`.

    Expressions read the row as alias `r{level}`; derived columns (nested objects) are
    computed over alias `b{level}` and read back from `r{level}`.
    """
    row, base = f"r{level}", f"b{level}"
    parts: list[tuple[str, str]] = []
    checks: list[str] = []
    columns: set[str] = set()
    derived: list[tuple[str, str]] = []
    for key, sub in walk.subfields(type_, fields).items():
        _one_selection(sub)
        name = sub[0].node.name.value
        if name == "__typename":
            parts.append((key, js.literal(orjson.dumps(type_.name).decode())))
            continue
        definition = type_.fields.get(name)
        if definition is None:
            raise NotCompilable(f"{type_.name}.{name}")
        strawberry_field = _basic(definition)
        python_name = strawberry_field.python_name
        named, non_null, is_list = _named(definition.type)
        what = f"{type_.name}.{name}"
        relation = source.relations.get(python_name)
        if relation is not None:
            if is_list != relation.many or not isinstance(named, GraphQLObjectType):
                raise NotCompilable(f"{what}: relation and field differ in kind")
            if relation.source.type is not _origin(named):
                raise NotCompilable(f"{what}: relation to another type")
            derived_name = walk.names(f"rel{level}")
            nested = (_nested_list if relation.many else _nested)(walk, relation, named, sub, level + 1, base)
            derived.append((derived_name, nested))
            columns.update(outer for _inner, outer in relation.match)
            value = f"{row}.{js.quote_ident(derived_name)}"
            checks.append(f"coalesce({value} = {BAD}, false)")
            if non_null:
                checks.append(f"{value} is null")
                parts.append((key, value))
            else:
                parts.append((key, f"coalesce({value}, 'null')"))
            continue
        document = source.documents.get(python_name)
        if document is not None:
            if is_list or not isinstance(named, GraphQLObjectType):
                raise NotCompilable(f"{what}: a document that is not one object")
            column_key, json_key = document
            if source.table.c.get(column_key) is None:
                raise NotCompilable(f"{what}: no column {column_key}")
            columns.add(column_key)
            value = f"({row}.{js.quote_ident(column_key)} -> {js.literal(json_key)})"
            json, more = _document(walk, named, sub, value, non_null=non_null, what=what)
            parts.append((key, json))
            checks.extend(more)
            continue
        column = source.column_of(python_name)
        if column is None:
            raise NotCompilable(f"{what}: no column")
        columns.add(column.key)
        expr = f"{row}.{js.quote_ident(column.key)}"
        if is_list:
            if not (isinstance(named, GraphQLScalarType) and named.name == "String"):
                raise NotCompilable(f"{what}: list of {named}")
            json, more = _string_list(
                column,
                expr,
                non_null=non_null,
                empty_if_null=python_name in source.empty_if_null,
                what=what,
            )
        else:
            json, more = _scalar(named, column, expr, non_null=non_null, what=what)
        parts.append((key, json))
        checks.extend(more)
    return Selection(_json_object(parts), tuple(checks), frozenset(columns), tuple(derived))


def _origin(type_: GraphQLObjectType) -> Any:
    definition = type_.extensions.get(DEFINITION)
    return getattr(definition, "origin", None)


def _nested(
    walk: _Walk,
    relation: Relation,
    type_: GraphQLObjectType,
    fields: Sequence[FieldDetails],
    level: int,
    outer: str,
) -> str:
    """A scalar subquery: the related object's JSON, 'BAD', or NULL when there is none."""
    selection = compile_object(walk, relation.source, type_, fields, level)
    table = relation.source.table
    base, row = f"b{level}", f"r{level}"
    columns = set(selection.columns) | {inner for inner, _outer in relation.match}
    where = " and ".join(
        f"{base}.{js.quote_ident(inner)} = {outer}.{js.quote_ident(outer_col)}"
        for inner, outer_col in relation.match
    )
    order = ", ".join(
        f"{base}.{js.quote_ident(col)}{' desc' if desc else ''}" for col, desc in relation.order
    )
    inner = (
        f"select {', '.join(f'{base}.{js.quote_ident(c)}' for c in sorted(columns))}"
        f" from {{schema}}.{js.quote_ident(table.name)} {base} where {where} order by {order} limit 1"
    )
    rows = _with_derived(inner, selection, base)
    bad = " or ".join(selection.checks) or "false"
    return f"(select case when {bad} then {BAD} else {selection.json} end from ({rows}) {row})"


def _nested_list(
    walk: _Walk,
    relation: Relation,
    type_: GraphQLObjectType,
    fields: Sequence[FieldDetails],
    level: int,
    outer: str,
) -> str:
    """A scalar subquery: the JSON array of every related row in order, or 'BAD'."""
    selection = compile_object(walk, relation.source, type_, fields, level)
    table = relation.source.table
    base, row = f"b{level}", f"r{level}"
    columns = (
        set(selection.columns) | {inner for inner, _outer in relation.match} | {c for c, _d in relation.order}
    )
    where = " and ".join(
        f"{base}.{js.quote_ident(inner)} = {outer}.{js.quote_ident(outer_col)}"
        for inner, outer_col in relation.match
    )
    inner = (
        f"select {', '.join(f'{base}.{js.quote_ident(c)}' for c in sorted(columns))}"
        f" from {{schema}}.{js.quote_ident(table.name)} {base} where {where}"
    )
    rows = _with_derived(inner, selection, base)
    order = ", ".join(f"{row}.{js.quote_ident(col)}{' desc' if desc else ''}" for col, desc in relation.order)
    bad = " or ".join(selection.checks) or "false"
    return (
        f"(select case when coalesce(bool_or({bad}), false) then {BAD}"
        f" else '[' || coalesce(string_agg({selection.json}, ',' order by {order}), '') || ']' end"
        f" from ({rows}) {row})"
    )


def _document(
    walk: _Walk,
    type_: GraphQLObjectType,
    fields: Sequence[FieldDetails],
    value: str,
    *,
    non_null: bool,
    what: str,
) -> tuple[str, list[str]]:
    """(JSON, checks) of an object kept as a JSON object in a column (`Cls(**value)`).

    Its fields are the JSON object's keys: numbers, strings, booleans and lists of
    strings. Anything the dataclass would refuse (an unknown key, a missing one without
    a default, a value of another JSON type) is a check, and the normal path reports it.
    """
    origin = getattr(type_.extensions.get(DEFINITION), "origin", None)
    known, defaults = _dataclass_fields(origin)
    parts: list[tuple[str, str]] = []
    checks = [
        f"coalesce(jsonb_typeof({value}) not in ('object', 'null'), false)",
        f"coalesce(jsonb_typeof({value}) = 'object' and exists (select 1 from jsonb_object_keys({value}) k"
        f" where k not in ({', '.join(js.literal(k) for k in sorted(known))})), false)",
    ]
    missing = f"({value} is null or jsonb_typeof({value}) = 'null' or {value} = '{{}}'::jsonb)"
    for key, sub in walk.subfields(type_, fields).items():
        _one_selection(sub)
        name = sub[0].node.name.value
        if name == "__typename":
            parts.append((key, js.literal(orjson.dumps(type_.name).decode())))
            continue
        definition = type_.fields.get(name)
        if definition is None:
            raise NotCompilable(f"{what}.{name}")
        strawberry_field = _basic(definition)
        python_name = strawberry_field.python_name
        named, field_non_null, is_list = _named(definition.type)
        item = f"({value} -> {js.literal(python_name)})"
        present = f"({item} is not null and jsonb_typeof({item}) <> 'null')"
        if python_name not in defaults:  # the dataclass needs it
            checks.append(f"(not {missing} and {item} is null)")
        if is_list:
            if not (isinstance(named, GraphQLScalarType) and named.name == "String"):
                raise NotCompilable(f"{what}.{name}: list of {named}")
            elements = f"jsonb_array_elements(case when jsonb_typeof({item}) = 'array' then {item} end)"
            array = (
                "(select '[' || coalesce(string_agg(to_json(e.v #>> '{}')::text, ',' order by e.o), '')"
                f" || ']' from {elements} with ordinality e(v, o))"
            )
            checks.append(f"jsonb_typeof({item}) <> 'array'")  # JSON null too: list(None) fails
            checks.append(f"exists (select 1 from {elements} e(v) where jsonb_typeof(e.v) <> 'string')")
            json = f"(case when {item} is null then '[]' else {array} end)"
            if defaults.get(python_name) != "list":
                checks.append(f"(not {missing} and {item} is null)")
        elif isinstance(named, GraphQLScalarType) and named.name == "Float":
            number = f"({value} ->> {js.literal(python_name)})::float8"
            checks.append(f"{present} and jsonb_typeof({item}) <> 'number'")
            checks.append(f"{present} and jsonb_typeof({item}) = 'number' and not {js.float8_ok(number)}")
            json = f"(case when {present} and jsonb_typeof({item}) = 'number' then {js.float8(number)} end)"
        elif isinstance(named, GraphQLScalarType) and named.name == "String":
            checks.append(f"{present} and jsonb_typeof({item}) <> 'string'")
            json = f"(case when {present} then to_json({value} ->> {js.literal(python_name)})::text end)"
        elif isinstance(named, GraphQLScalarType) and named.name == "Boolean":
            checks.append(f"{present} and jsonb_typeof({item}) <> 'boolean'")
            json = f"(case when {present} then ({item})::text end)"
        else:
            raise NotCompilable(f"{what}.{name}: {named}")
        if field_non_null:
            checks.append(f"(not {missing} and {json} is null)")
            parts.append((key, json))
        else:
            parts.append((key, f"coalesce({json}, 'null')"))
    obj = _json_object(parts)
    if non_null:
        checks.append(missing)
        json = obj
    else:
        json = f"(case when {missing} then 'null' else {obj} end)"
    return json, [f"coalesce({c}, false)" for c in checks]


def _dataclass_fields(origin: Any) -> tuple[set[str], dict[str, str]]:
    """The fields of the snapshot dataclass a document is rebuilt with, and their defaults."""
    import dataclasses

    from uds.discovery import snapshot

    target = getattr(snapshot, getattr(origin, "__name__", ""), None)
    if target is None or not dataclasses.is_dataclass(target):
        raise NotCompilable(f"no snapshot dataclass for {origin}")
    found = {}
    for f in dataclasses.fields(target):
        if f.default is not dataclasses.MISSING:
            found[f.name] = "value"
        elif f.default_factory is list:
            found[f.name] = "list"
        elif f.default_factory is not dataclasses.MISSING:
            found[f.name] = "value"
    return {f.name for f in dataclasses.fields(target)}, found


def _with_derived(inner: str, selection: Selection, base: str) -> str:
    if not selection.derived:
        return inner
    extra = ", ".join(f"{expr} as {js.quote_ident(name)}" for name, expr in selection.derived)
    return f"select {base}.*, {extra} from ({inner}) {base}"


@dataclass(frozen=True)
class Compiled:
    """A connection's statement, per tenant schema; `params` says what goes in $2.. ."""

    template: str
    params: tuple[str, ...]  # "after:<i>" or "filter:<name>", in $ order after $1 (size)

    def sql(self, schema: str) -> str:
        return self.template.replace("{schema}", js.quote_ident(schema))


class JsonList:
    """A root list field (a cursor connection) that PostgreSQL can write as JSON."""

    def __init__(
        self,
        source: RowSource,
        *,
        keyset: Keyset,
        order: tuple[tuple[str, bool], ...],
        filters: Mapping[str, str] | None = None,
    ) -> None:
        self.source = source
        self.keyset = keyset
        self.order = order
        self.filters = dict(filters or {})
        self._cache: dict[Any, tuple[Any, Compiled | None]] = {}

    def compile(
        self,
        executor: Any,
        return_type: Any,
        field_nodes: Sequence[Any],
        *,
        after: bool,
        filters: Sequence[str],
    ) -> Compiled | None:
        """The statement for this selection, or None if the compiler does not handle it."""
        key = (
            tuple(id(n) for n in field_nodes),
            directive_values(executor),
            after,
            tuple(filters),
        )
        hit = self._cache.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], field_nodes, strict=True)):
            return hit[1]
        try:
            compiled: Compiled | None = self._compile(executor, return_type, field_nodes, after, filters)
        except NotCompilable:
            compiled = None
        if len(self._cache) > 2000:
            self._cache.clear()
        self._cache[key] = (tuple(field_nodes), compiled)
        return compiled

    def _compile(
        self, executor: Any, return_type: Any, field_nodes: Sequence[Any], after: bool, filters: Sequence[str]
    ) -> Compiled:
        walk = _Walk(executor.schema, executor.fragments, executor.variable_values, executor.operation)
        connection, _non_null, is_list = _named(return_type)
        if is_list or not isinstance(connection, GraphQLObjectType):
            raise NotCompilable("not a connection")
        fields = [FieldDetails(node, None, None) for node in field_nodes]
        parts: list[tuple[str, str]] = []
        selections: list[Selection] = []
        keyset = self.keyset
        cursor = self._cursor_expr("r0")
        uses_cursor = False

        def node_selection(type_: Any, sub: Sequence[FieldDetails]) -> str:
            named, _nn, _l = _named(type_)
            if _origin(named) is not self.source.type:
                raise NotCompilable("node of another type")
            selection = compile_object(walk, self.source, named, sub, 0)
            selections.append(selection)
            return selection.json

        for key, sub in walk.subfields(connection, fields).items():
            _one_selection(sub)
            name = sub[0].node.name.value
            if name == "__typename":
                parts.append((key, js.literal(orjson.dumps(connection.name).decode())))
            elif name == "edges":
                edge_type, _nn, is_list = _named(connection.fields[name].type)
                if not is_list:
                    raise NotCompilable("edges")
                edge_parts: list[tuple[str, str]] = []
                for edge_key, edge_sub in walk.subfields(edge_type, sub).items():
                    _one_selection(edge_sub)
                    edge_name = edge_sub[0].node.name.value
                    if edge_name == "__typename":
                        edge_parts.append((edge_key, js.literal(orjson.dumps(edge_type.name).decode())))
                    elif edge_name == "cursor":
                        uses_cursor = True
                        edge_parts.append((edge_key, f"('\"' || {cursor} || '\"')"))
                    elif edge_name == "node":
                        _basic(edge_type.fields[edge_name])
                        edge_parts.append(
                            (edge_key, node_selection(edge_type.fields[edge_name].type, edge_sub))
                        )
                    else:
                        raise NotCompilable(f"edge field {edge_name}")
                parts.append((key, _array(_json_object(edge_parts))))
            elif name == "nodes":
                parts.append((key, _array(node_selection(connection.fields[name].type, sub))))
            elif name == "pageInfo":
                info_type, _nn, _l = _named(connection.fields[name].type)
                info_parts: list[tuple[str, str]] = []
                for info_key, info_sub in walk.subfields(info_type, sub).items():
                    _one_selection(info_sub)
                    info_name = info_sub[0].node.name.value
                    if info_name == "__typename":
                        info_parts.append((info_key, js.literal(orjson.dumps(info_type.name).decode())))
                    elif info_name == "hasNextPage":
                        info_parts.append(
                            (
                                info_key,
                                "(case when (select count(*) from page) > $1 then 'true' else 'false' end)",
                            )
                        )
                    elif info_name == "endCursor":
                        uses_cursor = True
                        info_parts.append(
                            (
                                info_key,
                                f"coalesce((select '\"' || {cursor} || '\"' from rows r0"
                                " order by r0.\"__n\" desc limit 1), 'null')",
                            )
                        )
                    else:
                        raise NotCompilable(f"pageInfo field {info_name}")
                parts.append((key, _json_object(info_parts)))
            else:
                raise NotCompilable(f"connection field {name}")

        columns: set[str] = set(c for c, _d in self.order)
        if uses_cursor:
            columns.update(keyset.columns)
        derived: list[tuple[str, str]] = []
        checks: list[str] = []
        for selection in selections:
            columns |= selection.columns
            derived.extend(selection.derived)
            checks.extend(selection.checks)
        table = js.quote_ident(self.source.table.name)
        order = ", ".join(f"b0.{js.quote_ident(c)}{' desc' if d else ''}" for c, d in self.order)
        where: list[str] = []
        params: list[str] = []
        if after:
            direction = "<" if keyset.descending else ">"
            holders = []
            for i, column in enumerate(keyset.columns):
                params.append(f"after:{i}")
                holders.append(f"${len(params) + 1}::{_sql_type(self.source.table.c[column])}")
            keys = ", ".join(f"b0.{js.quote_ident(c)}" for c in keyset.columns)
            where.append(f"({keys}) {direction} ({', '.join(holders)})")
        for name in filters:
            params.append(f"filter:{name}")
            where.append(f"b0.{js.quote_ident(self.filters[name])} = ${len(params) + 1}")
        select_list = ", ".join(f"b0.{js.quote_ident(c)}" for c in sorted(columns))
        page = (
            f'select {select_list}, row_number() over (order by {order}) as "__n"'
            f" from {{schema}}.{table} b0{' where ' + ' and '.join(where) if where else ''}"
            f" order by {order} limit $1 + 1"
        )
        extra = "".join(f", {expr} as {js.quote_ident(name)}" for name, expr in derived)
        rows = f'select b0.*{extra} from page b0 where b0."__n" <= $1'
        body = _json_object(parts)
        if checks:
            bad = " or ".join(checks)
            body = f"case when exists (select 1 from rows r0 where {bad}) then null else {body} end"
        template = f"with page as ({page}), rows as ({rows}) select {body}"
        return Compiled(template, tuple(params))

    def _cursor_expr(self, alias: str) -> str:
        keyset = self.keyset
        cols = [f"{alias}.{js.quote_ident(c)}" for c in keyset.columns]
        if keyset.key == "int" or keyset.key == "text":
            key = f"({cols[0]})::text"
        elif keyset.key == "time_id":
            key = f"{js.isoformat(cols[0])} || '|' || ({cols[1]})::text"
        else:  # pragma: no cover - Keyset values are ours
            raise ValueError(keyset.key)
        return js.base64url(f"{js.literal(keyset.kind + ':')} || {key}")


def _sql_type(column: Any) -> str:
    return str(column.type.compile(dialect=postgresql.dialect()))


def _array(element: str) -> str:
    return (
        f"('[' || coalesce((select string_agg({element}, ',' order by r0.\"__n\") from rows r0), '') || ']')"
    )


# Per operation node: the names of the variables @skip/@include read in the document.
_DIRECTIVE_VARIABLES: dict[int, tuple[OperationDefinitionNode, tuple[str, ...]]] = {}


def directive_values(executor: Any) -> bytes:
    """The values of the variables that decide which fields a selection has."""
    operation = executor.operation
    known = _DIRECTIVE_VARIABLES.get(id(operation))
    if known is None or known[0] is not operation:
        if len(_DIRECTIVE_VARIABLES) > 2000:
            _DIRECTIVE_VARIABLES.clear()
        known = _DIRECTIVE_VARIABLES[id(operation)] = (operation, _directive_variables(executor))
    if not known[1]:
        return b""
    coerced = executor.variable_values.coerced
    return orjson.dumps([coerced.get(name) for name in known[1]])


def _directive_variables(executor: Any) -> tuple[str, ...]:
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


def find_source(type_: Any) -> RowSource | None:
    named, _nn, _l = _named(type_)
    return SOURCES.get(_origin(named))


Params = Callable[[str], Any]


# Statements handed out (run at once, or by an operation plan), statements whose values
# sent the resolver back to the normal path, and selections the compiler did not take.
STATS: dict[str, int] = {"json_lists": 0, "json_fallbacks": 0, "json_not_compiled": 0}


async def read_json(
    info: Any,
    spec: JsonList,
    *,
    size: int,
    after: Sequence[Any] | None = None,
    filters: Mapping[str, Any] | None = None,
) -> orjson.Fragment | None:
    """The field's value as JSON written by PostgreSQL, or None: take the normal path.

    Only on a read-only request (a query, fast paths on) whose executor is known; the
    arguments are the resolver's own, already checked (page size, decoded cursor).
    """
    ctx = info.context
    tx = getattr(ctx, "tx", None)
    executor = getattr(ctx, "executor", None)
    if tx is None or not tx.reading or executor is None or tx.tenant_slug is None:
        return None
    given = {k: v for k, v in (filters or {}).items() if v is not None}
    compiled = spec.compile(
        executor,
        info._raw_info.return_type,
        info._raw_info.field_nodes,
        after=after is not None,
        filters=tuple(sorted(given)),
    )
    if compiled is None:
        STATS["json_not_compiled"] += 1
        return None
    args: list[Any] = [size]
    for name in compiled.params:
        kind, _, which = name.partition(":")
        args.append(after[int(which)] if kind == "after" and after is not None else given[which])
    from uds.tenants.slugs import tenant_schema

    sql = compiled.sql(tenant_schema(tx.tenant_slug))
    deferred = getattr(ctx, "deferred", None)
    if deferred is not None:  # an operation plan runs all root fields' statements as one
        from uds.api.plans import Deferred

        item = Deferred(sql, args)
        deferred.append(item)
        STATS["json_lists"] += 1
        return item  # type: ignore[return-value]
    text = await tx.fetchval(sql, *args)
    if text is None:
        STATS["json_fallbacks"] += 1
        return None
    STATS["json_lists"] += 1
    return orjson.Fragment(text)


class JsonRows:
    """A plain list field of a RowSource's objects, filtered by equality: one JSON array."""

    def __init__(
        self, source: RowSource, *, order: tuple[tuple[str, bool], ...], filters: tuple[str, ...]
    ) -> None:
        self.source = source
        self.order = order
        self.filters = filters  # columns, in $ order
        self._cache: dict[Any, tuple[Any, Compiled | None]] = {}

    def compile(self, executor: Any, return_type: Any, fields: Sequence[FieldDetails]) -> Compiled | None:
        nodes = [f.node for f in fields]
        key = (tuple(id(n) for n in nodes), directive_values(executor))
        hit = self._cache.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], nodes, strict=True)):
            return hit[1]
        try:
            compiled: Compiled | None = self._compile(executor, return_type, fields)
        except NotCompilable:
            compiled = None
        if len(self._cache) > 2000:
            self._cache.clear()
        self._cache[key] = (tuple(nodes), compiled)
        return compiled

    def _compile(self, executor: Any, return_type: Any, fields: Sequence[FieldDetails]) -> Compiled:
        walk = _Walk(executor.schema, executor.fragments, executor.variable_values, executor.operation)
        named, non_null, is_list = _named(return_type)
        if not (is_list and non_null) or _origin(named) is not self.source.type:
            raise NotCompilable("not a non-null list of the source's type")
        _one_selection(fields)
        selection = compile_object(walk, self.source, named, fields, 0)
        columns = set(selection.columns) | {c for c, _d in self.order} | set(self.filters)
        table = js.quote_ident(self.source.table.name)
        where = " and ".join(f"b0.{js.quote_ident(c)} = ${i + 1}" for i, c in enumerate(self.filters))
        select_list = ", ".join(f"b0.{js.quote_ident(c)}" for c in sorted(columns))
        inner = f"select {select_list} from {{schema}}.{table} b0{' where ' + where if where else ''}"
        rows = _with_derived(inner, selection, "b0")
        order = ", ".join(f"r0.{js.quote_ident(c)}{' desc' if d else ''}" for c, d in self.order)
        items = f"(select string_agg({selection.json}, ',' order by {order}) from rows r0)"
        body = f"'[' || coalesce({items}, '') || ']'"
        if selection.checks:
            bad = " or ".join(selection.checks)
            body = f"case when exists (select 1 from rows r0 where {bad}) then null else {body} end"
        return Compiled(f"with rows as ({rows}) select {body}", ())


async def read_rows(
    ctx: Any, spec: JsonRows, return_type: Any, fields: Sequence[FieldDetails], *params: Any
) -> orjson.Fragment | None:
    """A list field's value as JSON written by PostgreSQL, or None: take the normal path."""
    tx = getattr(ctx, "tx", None)
    executor = getattr(ctx, "executor", None)
    if tx is None or not tx.reading or executor is None or tx.tenant_slug is None:
        return None
    compiled = spec.compile(executor, return_type, fields)
    if compiled is None:
        STATS["json_not_compiled"] += 1
        return None
    from uds.tenants.slugs import tenant_schema

    text = await tx.fetchval(compiled.sql(tenant_schema(tx.tenant_slug)), *params)
    if text is None:
        STATS["json_fallbacks"] += 1
        return None
    STATS["json_lists"] += 1
    return orjson.Fragment(text)


def subselection(executor: Any, type_: Any, field_nodes: Sequence[Any]) -> dict[str, list[FieldDetails]]:
    """The fields selected on an object field's value (collected as graphql-core does)."""
    named, _nn, _l = _named(type_)
    if not isinstance(named, GraphQLObjectType):
        return {}
    walk = _Walk(executor.schema, executor.fragments, executor.variable_values, executor.operation)
    return walk.subfields(named, [FieldDetails(node, None, None) for node in field_nodes])
