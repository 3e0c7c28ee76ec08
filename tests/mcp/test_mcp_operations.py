"""Every tool is a named GraphQL operation that the schema accepts; annotations follow it."""

from __future__ import annotations

from graphql import parse, validate

from uds.mcp.gateway import operation_kind, operation_texts
from uds.mcp.tools import DESTRUCTIVE, TOOLS, binding, graphql_schema, variables_for


def test_every_operation_validates_against_the_schema() -> None:
    schema = graphql_schema()
    texts = operation_texts()
    assert texts, "no operations"
    for name, text in texts.items():
        errors = validate(schema, parse(text))
        assert not errors, (name, errors)


def test_every_tool_runs_a_known_operation_with_annotations_from_its_kind() -> None:
    for spec in TOOLS:
        assert spec.operation in operation_texts(), spec.name
        kind = operation_kind(spec.operation)
        annotations = spec.annotations
        if kind == "query":
            assert annotations.read_only_hint and annotations.idempotent_hint, spec.name
        else:
            assert kind == "mutation" and spec.name in DESTRUCTIVE, spec.name
            assert annotations.read_only_hint is False
            assert annotations.destructive_hint is DESTRUCTIVE[spec.name]


def test_arguments_map_onto_the_operation_variables() -> None:
    register = next(s for s in TOOLS if s.name == "register_data_source")
    variables = variables_for(
        register, {"name": "n", "host": "h", "database": "d", "user": "u", "password": "p"}
    )
    assert variables == {"input": {"name": "n", "host": "h", "database": "d", "user": "u", "password": "p"}}
    start = next(s for s in TOOLS if s.name == "start_discovery")
    assert variables_for(start, {"data_source_id": "x", "wait_seconds": 3}) == {"dataSourceId": "x"}
    assert binding(start).input_schema["required"] == ["data_source_id"]


def test_the_bridge_imports_no_domain_service_and_no_database_layer() -> None:
    import ast
    from pathlib import Path

    import uds.mcp

    forbidden = (
        "uds.db",
        "uds.datasources",
        "uds.discovery",
        "uds.dashboards",
        "uds.jobs",
        "uds.services",
        "sqlalchemy",
        "asyncpg",
        "redis",
    )
    for path in Path(uds.mcp.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(forbidden), f"{path.name} imports {name}"
