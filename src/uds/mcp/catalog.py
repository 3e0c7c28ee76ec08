"""The catalog sized for a context window: two levels, pages under a character budget.

A page holds whole tables, in catalog order, while the page's JSON stays within
`max_chars`; the first table of a page is always included, so paging always advances.
The cursor names the discovery run it was cut from: if a newer run replaced it between
two pages, the next call says so instead of mixing two runs.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from uds.mcp.gateway import GatewayError

DEFAULT_MAX_CHARS = 12_000


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def encode_cursor(run_id: str, offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([run_id, offset]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, run_id: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        cursor_run, offset = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset = int(offset)
    except (ValueError, TypeError):
        raise GatewayError("BAD_USER_INPUT", "cursor is not one that get_catalog gave out") from None
    if cursor_run != run_id:
        raise GatewayError(
            "CONFLICT",
            "the catalog changed (a newer discovery run) since this cursor was given out; "
            "start again without a cursor",
        )
    if offset < 0:
        raise GatewayError("BAD_USER_INPUT", "cursor is not one that get_catalog gave out")
    return offset


def qualified(table: dict[str, Any]) -> str:
    return f"{table['schema']}.{table['name']}"


def _reference(rel: dict[str, Any]) -> str:
    return (
        f"{','.join(rel['fromColumns'])} -> {rel['toSchema']}.{rel['toTable']}({','.join(rel['toColumns'])})"
        + ("" if rel["declared"] else f" inferred {rel['confidence']:.2f}")
    )


def summary_table(table: dict[str, Any], relationships: list[dict[str, Any]]) -> dict[str, Any]:
    name = qualified(table)
    quality = table.get("quality") or {}
    return {
        "table": name,
        "kind": table["kind"],
        "rows": table.get("rowEstimate"),
        "primaryKey": table["primaryKey"],
        "columns": len(table["columns"]),
        "piiColumns": [c["name"] for c in table["columns"] if c["pii"]],
        "references": [_reference(r) for r in relationships if f"{r['fromSchema']}.{r['fromTable']}" == name],
        "quality": quality.get("score"),
    }


def detail_table(table: dict[str, Any], relationships: list[dict[str, Any]]) -> dict[str, Any]:
    out = summary_table(table, relationships)
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


def catalog_page(
    data_source_id: str,
    catalog: dict[str, Any],
    *,
    level: str,
    cursor: str | None,
    max_chars: int,
    schema: str | None,
    link: Any,
) -> tuple[dict[str, Any], list[str]]:
    """One page of the catalog, and the qualified names of the tables on it."""
    run = catalog["run"]
    tables = [t for t in catalog["tables"] if schema is None or t["schema"] == schema]
    relationships = catalog["relationships"]
    offset = decode_cursor(cursor, run["id"]) if cursor else 0
    shape = summary_table if level == "summary" else detail_table
    page: dict[str, Any] = {
        "dataSourceId": data_source_id,
        "run": {k: run.get(k) for k in ("id", "status", "finishedAt", "rowsRead")},
        "level": level,
        "tables": [],
        "page": {
            "offset": offset,
            "tables": 0,
            "totalTables": len(tables),
            "nextCursor": encode_cursor(run["id"], len(tables)),  # the longest it can get
            "chars": 0,
            "maxChars": max_chars,
        },
    }
    used = _size(page)
    names: list[str] = []
    index = offset
    while index < len(tables):
        item = shape(tables[index], relationships)
        item["resource"] = link(qualified(tables[index]))
        cost = _size(item) + 1
        if names and used + cost > max_chars:
            break
        page["tables"].append(item)
        names.append(qualified(tables[index]))
        used += cost
        index += 1
    page["page"]["tables"] = len(names)
    page["page"]["nextCursor"] = encode_cursor(run["id"], index) if index < len(tables) else None
    page["page"]["chars"] = _size(page)
    return page, names


def find_table(catalog: dict[str, Any], wanted: str) -> dict[str, Any]:
    tables = catalog["tables"]
    exact = [t for t in tables if qualified(t) == wanted]
    if not exact and "." not in wanted:
        exact = [t for t in tables if t["name"] == wanted]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        names = ", ".join(qualified(t) for t in exact)
        raise GatewayError("BAD_USER_INPUT", f"table {wanted!r} is ambiguous: {names}; give 'schema.name'")
    raise GatewayError("NOT_FOUND", f"no table {wanted!r} in this catalog; list them with get_catalog")
