"""Vega-Lite specs as plain JSON: built here, checked against the vendored schema, data inlined.

A widget's spec carries no data: `data` is the named source `table`, and every encoding
field is a result column of the widget's SQL. `inline_data` puts fetched rows in
(`data.values`) for rendering. Specs never load anything: `validate_spec` refuses any
`url` or `href` (data URLs, image marks, links) besides checking the schema, so a spec
edited by a user cannot make the renderer or a browser fetch from the network. The
`$schema` member only names the Vega-Lite major version; nothing fetches it.

`usermeta.uds.kind` records the widget kind (kpi, timeseries, bar, ...), and for time
series `usermeta.uds.timeRange` the span of the data, so insights and the Grafana export
can read a spec without guessing.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import functools
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from importlib import resources
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match

from uds.errors import BadUserInput

# The Vega-Lite version the renderer asks vl-convert for (`vl_version`); vl-convert-python
# 1.9 bundles Vega-Lite 6.4.1 under this name. The vendored schema is of that release.
VEGA_LITE_VERSION = "6.4"
SCHEMA_FILE = "vega-lite-v6.4.1.json"
SCHEMA_URL = "https://vega.github.io/schema/vega-lite/v6.json"
DATA_NAME = "table"

# Property names that make Vega fetch or link to something.
_REMOTE_KEYS = frozenset({"url", "href"})

TIME_FORMATS = {
    "hour": "%d %b %H:%M",
    "day": "%d %b %Y",
    "week": "%d %b %Y",
    "month": "%b %Y",
    "quarter": "%b %Y",
    "year": "%Y",
}


@functools.cache
def _validator() -> Draft7Validator:
    text = resources.files("uds.dashboards").joinpath("schemas", SCHEMA_FILE).read_text("utf-8")
    return Draft7Validator(json.loads(text))


def validate_spec(spec: dict[str, Any]) -> None:
    """Raise BadUserInput unless `spec` is a valid Vega-Lite spec that loads nothing remote."""
    if not isinstance(spec, dict):
        raise BadUserInput("a widget spec must be a JSON object")
    try:
        json.dumps(spec, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BadUserInput(f"a widget spec must be plain JSON: {exc}") from None
    remote = _find_remote(spec, "")
    if remote is not None:
        raise BadUserInput(f"widget spec refused: {remote} would load or link to a URL")
    error = best_match(_validator().iter_errors(spec))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise BadUserInput(
            f"widget spec is not valid Vega-Lite {VEGA_LITE_VERSION} at {where}: {error.message[:300]}"
        )


def _find_remote(node: Any, path: str) -> str | None:
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}/{key}"
            if (key == "values" and path.endswith("/data")) or (key == "datasets" and path == ""):
                continue  # inline rows are data: a column may well be called "url"
            if key in _REMOTE_KEYS:
                return here
            if key == "mark" and (
                value == "image" or (isinstance(value, dict) and value.get("type") == "image")
            ):
                return here
            found = _find_remote(value, here)
            if found:
                return found
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found = _find_remote(value, f"{path}/{i}")
            if found:
                return found
    return None


def inline_data(
    spec: dict[str, Any], columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> dict[str, Any]:
    """A copy of `spec` with the rows as `data.values` (one object per row, JSON-safe values)."""
    out = copy.deepcopy(spec)
    names = list(columns)
    out["data"] = {"values": [{n: json_value(v) for n, v in zip(names, row, strict=True)} for row in rows]}
    return out


def json_value(value: Any) -> Any:
    """A database value as JSON: numbers stay numbers, times become ISO 8601 strings."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)


# -- builders ---------------------------------------------------------------------------


def _base(kind: str, title: str, **uds: Any) -> dict[str, Any]:
    return {
        "$schema": SCHEMA_URL,
        "title": {"text": title, "anchor": "start"},
        "data": {"name": DATA_NAME},
        "usermeta": {"uds": {"kind": kind, **uds}},
    }


def _q(field: str, title: str, fmt: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"field": field, "type": "quantitative", "title": title}
    if fmt:
        out["format"] = fmt
    out.update(extra)
    return out


def _n(field: str, title: str, **extra: Any) -> dict[str, Any]:
    return {"field": field, "type": "nominal", "title": title, **extra}


def _tip(enc: Mapping[str, Any]) -> dict[str, Any]:
    tip = {k: v for k, v in enc.items() if k in ("field", "type", "title", "format", "timeUnit")}
    if "axis" in enc and isinstance(enc["axis"], dict) and "format" in enc["axis"]:
        tip["format"] = enc["axis"]["format"]
    return tip


def kpi_spec(title: str, *, value: str, value_title: str, fmt: str) -> dict[str, Any]:
    spec = _base("kpi", title)
    spec["mark"] = {
        "type": "text",
        "fontSize": 36,
        "fontWeight": "bold",
        "align": "center",
        "baseline": "middle",
    }
    spec["encoding"] = {"text": _q(value, value_title, fmt), "tooltip": [_q(value, value_title, fmt)]}
    return spec


def timeseries_spec(
    title: str,
    *,
    time: str,
    grain: str,
    value: str,
    value_title: str,
    fmt: str,
    series: str | None = None,
    series_title: str | None = None,
    mark: str = "line",
    time_range: tuple[str, str] | None = None,
) -> dict[str, Any]:
    extra: dict[str, Any] = {"grain": grain}
    if time_range:
        extra["timeRange"] = list(time_range)
    spec = _base("timeseries", title, **extra)
    time_format = TIME_FORMATS.get(grain, "%d %b %Y")
    x = {"field": time, "type": "temporal", "title": grain.title(), "axis": {"format": time_format}}
    y = _q(value, value_title, None, axis={"format": fmt})
    if mark == "area":
        spec["mark"] = {"type": "area", "line": True}
    elif mark == "bar":
        spec["mark"] = {"type": "bar"}
    else:
        spec["mark"] = {"type": "line", "point": True}
    encoding: dict[str, Any] = {"x": x, "y": y}
    tooltip = [_tip(x), _q(value, value_title, fmt)]
    if series:
        encoding["color"] = _n(series, series_title or series, legend={"orient": "bottom"})
        tooltip.insert(1, _n(series, series_title or series))
        if mark in ("area", "bar"):
            y["stack"] = "zero"
    encoding["tooltip"] = tooltip
    spec["encoding"] = encoding
    return spec


def bar_spec(
    title: str,
    *,
    category: str,
    category_title: str,
    value: str,
    value_title: str,
    fmt: str,
    split: str | None = None,
    split_title: str | None = None,
    sort_by_value: bool = True,
) -> dict[str, Any]:
    kind = "stacked_bar" if split else "bar"
    spec = _base(kind, title)
    spec["mark"] = {"type": "bar"}
    # Horizontal bars: category labels stay readable however long they are.
    y = _n(category, category_title, sort="-x" if sort_by_value else "ascending")
    x = _q(value, value_title, None, axis={"format": fmt})
    encoding: dict[str, Any] = {"y": y, "x": x}
    tooltip = [_n(category, category_title), _q(value, value_title, fmt)]
    if split:
        encoding["color"] = _n(split, split_title or split, legend={"orient": "bottom"})
        tooltip.insert(1, _n(split, split_title or split))
    encoding["tooltip"] = tooltip
    spec["encoding"] = encoding
    return spec


def pie_spec(
    title: str, *, category: str, category_title: str, value: str, value_title: str, fmt: str
) -> dict[str, Any]:
    spec = _base("pie", title)
    spec["mark"] = {"type": "arc", "innerRadius": 40}
    spec["encoding"] = {
        "theta": _q(value, value_title, None, stack=True),
        "color": _n(
            category, category_title, sort={"field": value, "order": "descending"}, legend={"orient": "right"}
        ),
        "order": {"field": value, "type": "quantitative", "sort": "descending"},
        "tooltip": [_n(category, category_title), _q(value, value_title, fmt)],
    }
    return spec


def histogram_spec(
    title: str, *, start: str, end: str, count: str, measure_title: str, fmt: str
) -> dict[str, Any]:
    spec = _base("histogram", title)
    spec["mark"] = {"type": "bar", "binSpacing": 1}
    spec["encoding"] = {
        "x": _q(start, measure_title, None, bin={"binned": True}, axis={"format": fmt}),
        "x2": {"field": end},
        "y": _q(count, "Rows", None, axis={"format": ",d"}),
        "tooltip": [_q(start, "From", fmt), _q(end, "To", fmt), _q(count, "Rows", ",d")],
    }
    return spec


def scatter_spec(
    title: str, *, x: str, x_title: str, y: str, y_title: str, size: str, x_fmt: str, y_fmt: str
) -> dict[str, Any]:
    spec = _base("scatter", title)
    spec["mark"] = {"type": "circle", "opacity": 0.7}
    spec["encoding"] = {
        "x": _q(x, x_title, None, axis={"format": x_fmt}, scale={"zero": False}),
        "y": _q(y, y_title, None, axis={"format": y_fmt}, scale={"zero": False}),
        "size": _q(size, "Rows", None, legend={"format": ",d"}),
        "tooltip": [_q(x, x_title, x_fmt), _q(y, y_title, y_fmt), _q(size, "Rows", ",d")],
    }
    return spec


def table_spec(title: str, *, columns: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """A table drawn with text marks: one row per result row, one column per field."""
    spec = _base("table", title, columns=[field for field, _ in columns])
    spec["transform"] = [
        {"window": [{"op": "row_number", "as": "__row"}]},
        {"fold": [field for field, _ in columns], "as": ["__column", "__value"]},
    ]
    spec["width"] = {"step": 140}
    spec["height"] = {"step": 20}
    spec["mark"] = {"type": "text", "align": "left", "limit": 130}
    spec["encoding"] = {
        "y": {"field": "__row", "type": "ordinal", "axis": None},
        "x": {
            "field": "__column",
            "type": "nominal",
            "sort": [field for field, _ in columns],
            "axis": {"orient": "top", "title": None, "labelAngle": 0},
        },
        "text": {"field": "__value", "type": "nominal"},
    }
    return spec
