"""The catalog sized for a context window: two levels, pages under a character budget,
read from the API a page at a time.

A page holds whole tables, in catalog order (schema, name), while the page's JSON stays
within `max_chars`; the first table of a page is always included, so paging always
advances. The tables come from `catalog.tablesConnection(first, after)`: a call asks for
about as many as the budget can take (a first guess, then the average size of the tables
it has seen), again while there is room, at most `MAX_FETCHES` times; so one call reads
about one page of tables and never the whole catalog.

The cursor given out holds the discovery run it was cut from, the API's cursor of the last
table shown, the number of tables before the next page and the schema filter. If a newer
run replaced the one a cursor names, the next call says so instead of mixing two runs.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

from uds.mcp.gateway import GatewayError

DEFAULT_MAX_CHARS = 12_000
# A table's size in a page, in characters, before any has been seen (a summary table with a
# resource link is about 250; a detail one adds about 90 a column).
FIRST_GUESS = {"summary": 250, "detail": 900}
PAGE_GUESS = 600  # the page's fields other than its tables (run, paging, the cursor)
MAX_FETCHES = 4

Fetch = Callable[[int, str | None, bool], Awaitable[dict[str, Any]]]


def _size(value: Any) -> int:
    """Characters of the value's JSON as the tool result's text has it."""
    return len(json.dumps(value, ensure_ascii=False))


def _bad_cursor() -> GatewayError:
    return GatewayError("BAD_USER_INPUT", "cursor is not one that get_catalog gave out")


def encode_cursor(run_id: str, after: str, offset: int, schema: str | None) -> str:
    raw = json.dumps([run_id, after, offset, schema], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, schema: str | None) -> tuple[str, str, int]:
    """(run id, the API's cursor, offset) of a cursor given out for this schema filter."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        run_id, after, offset, cursor_schema = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        raise _bad_cursor() from None
    if not (isinstance(run_id, str) and isinstance(after, str) and isinstance(offset, int) and offset > 0):
        raise _bad_cursor()
    if cursor_schema != schema:
        raise GatewayError(
            "BAD_USER_INPUT",
            f"this cursor was given out for schema={cursor_schema!r}; ask with the same schema",
        )
    return run_id, after, offset


def _changed() -> GatewayError:
    return GatewayError(
        "CONFLICT",
        "the catalog changed (a newer discovery run) since this cursor was given out; "
        "start again without a cursor",
    )


def qualified(table: dict[str, Any]) -> str:
    return f"{table['schema']}.{table['name']}"


def _reference(rel: dict[str, Any]) -> str:
    return (
        f"{','.join(rel['fromColumns'])} -> {rel['toSchema']}.{rel['toTable']}({','.join(rel['toColumns'])})"
        + ("" if rel["declared"] else f" inferred {rel['confidence']:.2f}")
    )


def summary_table(table: dict[str, Any]) -> dict[str, Any]:
    """A table for the summary level; `table.relationships` are those from or to it."""
    key = (table["schema"], table["name"])
    quality = table.get("quality") or {}
    return {
        "table": qualified(table),
        "kind": table["kind"],
        "rows": table.get("rowEstimate"),
        "primaryKey": table["primaryKey"],
        "columns": len(table["columns"]),
        "piiColumns": [c["name"] for c in table["columns"] if c["pii"]],
        "references": [
            _reference(r)
            for r in table.get("relationships") or []
            if (r["fromSchema"], r["fromTable"]) == key
        ],
        "quality": quality.get("score"),
    }


def detail_table(table: dict[str, Any]) -> dict[str, Any]:
    out = summary_table(table)
    out["comment"] = table.get("comment")
    out["qualityReasons"] = (table.get("quality") or {}).get("reasons", [])
    out["columns"] = [
        {
            "name": c["name"],
            "type": c["dataType"],
            "nullable": c["nullable"],
            "semanticType": c.get("semanticType"),
            "pii": c["pii"],
        }
        for c in table["columns"]
    ]
    return out


async def read_page(
    fetch: Fetch,
    data_source_id: str,
    *,
    level: str,
    cursor: str | None,
    max_chars: int,
    schema: str | None,
    max_first: int,
    link: Callable[[str], str],
) -> tuple[dict[str, Any], list[str]]:
    """One page of the catalog, and the qualified names of the tables on it.

    `fetch(first, after, count)` runs the GetCatalog operation and returns its `catalog`
    (tableCount only when `count`).
    """
    run_id, after, offset = decode_cursor(cursor, schema) if cursor else (None, None, 0)
    shape = summary_table if level == "summary" else detail_table
    page: dict[str, Any] | None = None
    names: list[str] = []
    cursors: list[str] = []  # the API's cursor of each table shown
    used = PAGE_GUESS  # until the page's own fields are measured
    guess = FIRST_GUESS[level]
    more = True
    full = False
    for _ in range(MAX_FETCHES):
        first = max(1, min(max_first, round((max_chars - used) / guess)))
        catalog = await fetch(first, after, page is None)
        run = catalog["run"]
        if run_id is not None and run["id"] != run_id:
            if page is None:
                raise _changed()
            break  # a newer run landed during this call: the next call says so
        run_id = run["id"]
        if page is None:
            page = {
                "dataSourceId": data_source_id,
                "run": {k: run.get(k) for k in ("id", "status", "finishedAt", "rowsRead")},
                "level": level,
                "tables": [],
                "page": {
                    "offset": offset,
                    "tables": 0,
                    "totalTables": catalog["tableCount"],
                    # room for a typical cursor (a longer one is made room for below)
                    "nextCursor": encode_cursor(run_id, "x" * 64, offset + 10**4, schema),
                    "chars": 10**6,
                    "maxChars": max_chars,
                },
            }
            used = _size(page)
        connection = catalog["tablesConnection"]
        for edge in connection["edges"]:
            table = edge["node"]
            item = shape(table)
            item["resource"] = link(qualified(table))
            cost = _size(item) + 2  # with the ", " before it
            if names and used + cost > max_chars:
                full = True
                break
            page["tables"].append(item)
            names.append(qualified(table))
            cursors.append(edge["cursor"])
            used += cost
        more = full or connection["pageInfo"]["hasNextPage"]
        if full or not more:
            break
        after = cursors[-1] if cursors else after
        guess = max(1, math.ceil((used - _size({**page, "tables": []})) / len(names))) if names else guess
        if max_chars - used < guess / 2:
            break  # another table would hardly fit
    assert page is not None and run_id is not None
    while True:
        last = cursors[-1] if cursors else after
        page["page"]["tables"] = len(names)
        page["page"]["nextCursor"] = (
            encode_cursor(run_id, last, offset + len(names), schema) if more and last is not None else None
        )
        page["page"]["chars"] = 0
        page["page"]["chars"] = _size(page)
        page["page"]["chars"] = _size(page)  # its own digits counted
        if page["page"]["chars"] <= max_chars or len(names) <= 1:
            return page, names
        # A cursor longer than the room kept for it (long names): the last table goes.
        page["tables"].pop()
        names.pop()
        cursors.pop()
        more = True


def table_names(wanted: str) -> list[tuple[str | None, str]]:
    """The (schema, name) pairs `wanted` can mean, most likely first.

    'schema.name' or a bare name, as get_catalog shows them (exact, case-sensitive); or SQL
    identifiers, '"Sales"."OrderItems"', where quoted parts are exact and unquoted ones fold
    to lower case, as in PostgreSQL. A dotted name without quotes may split at any dot, or
    be a bare name with dots.
    """
    wanted = wanted.strip()
    if not wanted:
        raise GatewayError("BAD_USER_INPUT", "table: give 'schema.name' or a table name")
    if '"' in wanted:
        parts = _sql_identifiers(wanted)
        if len(parts) == 1:
            return [(None, parts[0])]
        if len(parts) == 2:
            return [(parts[0], parts[1])]
        raise GatewayError("BAD_USER_INPUT", f"table {wanted!r}: give 'schema.name' (two parts)")
    dots = [i for i, ch in enumerate(wanted) if ch == "."][:4]
    splits: list[tuple[str | None, str]] = [
        (wanted[:i], wanted[i + 1 :]) for i in dots if 0 < i < len(wanted) - 1
    ]
    return [*splits, (None, wanted)]  # last: a table whose own name has the dots


def _sql_identifiers(text: str) -> list[str]:
    parts: list[str] = []
    i = 0
    while True:
        if i < len(text) and text[i] == '"':
            end = i + 1
            value = ""
            while True:
                close = text.find('"', end)
                if close < 0:
                    raise GatewayError("BAD_USER_INPUT", f"table {text!r}: a quote is not closed")
                value += text[end:close]
                if text.startswith('""', close):
                    value += '"'
                    end = close + 2
                    continue
                i = close + 1
                break
        else:
            end = text.find(".", i)
            end = len(text) if end < 0 else end
            value = text[i:end].strip().lower()
            i = end
        if not value:
            raise GatewayError("BAD_USER_INPUT", f"table {text!r}: an empty name")
        parts.append(value)
        if i == len(text):
            return parts
        if text[i] != ".":
            raise GatewayError("BAD_USER_INPUT", f"table {text!r}: expected '.' after a quoted name")
        i += 1
