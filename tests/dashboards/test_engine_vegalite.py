"""Vega-Lite specs: every builder validates against the vendored schema; remote loading and
invalid specs are refused; inline_data makes rows JSON."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from importlib import resources

import pytest

from uds.dashboards import vegalite as vl
from uds.errors import BadUserInput

SPECS = {
    "kpi": vl.kpi_spec("Orders", value="count", value_title="Orders", fmt=",d"),
    "timeseries": vl.timeseries_spec(
        "Orders per month",
        time="time",
        grain="month",
        value="count",
        value_title="Orders",
        fmt=",d",
        time_range=("2024-01-01T00:00:00+00:00", "2024-06-01T00:00:00+00:00"),
    ),
    "split": vl.timeseries_spec(
        "Revenue per month by category",
        time="time",
        grain="month",
        value="sum_amount",
        value_title="Revenue",
        fmt=",.2f",
        series="category",
        series_title="Category",
        mark="area",
    ),
    "bar": vl.bar_spec(
        "Orders by status",
        category="status",
        category_title="Status",
        value="count",
        value_title="Orders",
        fmt=",d",
    ),
    "stacked_bar": vl.bar_spec(
        "Orders by status and currency",
        category="status",
        category_title="Status",
        value="count",
        value_title="Orders",
        fmt=",d",
        split="currency",
        split_title="Currency",
    ),
    "pie": vl.pie_spec(
        "Payments by method",
        category="method",
        category_title="Method",
        value="count",
        value_title="Payments",
        fmt=",d",
    ),
    "histogram": vl.histogram_spec(
        "Amounts", start="bin_start", end="bin_end", count="count", measure_title="Amount", fmt=",.2f"
    ),
    "scatter": vl.scatter_spec(
        "Price against quantity",
        x="quantity",
        x_title="Quantity",
        y="unit_price",
        y_title="Unit price",
        size="count",
        x_fmt=",d",
        y_fmt=",.2f",
    ),
    "table": vl.table_spec("Orders by status", columns=[("status", "Status"), ("count", "Orders")]),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_builders_make_valid_specs_without_data(name: str) -> None:
    spec = SPECS[name]
    vl.validate_spec(spec)
    assert spec["data"] == {"name": "table"}
    assert spec["usermeta"]["uds"]["kind"] in (
        "kpi",
        "timeseries",
        "bar",
        "stacked_bar",
        "pie",
        "histogram",
        "scatter",
        "table",
    )
    assert spec["encoding"].get("tooltip") or name == "table"
    full = vl.inline_data(spec, ["a"], [])
    vl.validate_spec(full)
    assert spec["data"] == {"name": "table"}, "inline_data copies"


def test_vendored_schema_is_the_release_vl_convert_bundles() -> None:
    assert vl.VEGA_LITE_VERSION == "6.4" and vl.SCHEMA_FILE == "vega-lite-v6.4.1.json"
    text = resources.files("uds.dashboards").joinpath("schemas", vl.SCHEMA_FILE).read_text("utf-8")
    schema = json.loads(text)
    assert schema["$ref"] == "#/definitions/TopLevelSpec" and "TopLevelUnitSpec" in schema["definitions"]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({**SPECS["bar"], "mark": "bars"}, "not valid Vega-Lite 6.4 at mark"),
        ({**SPECS["bar"], "encoding": {"x": {"field": "a", "type": "quantitativ"}}}, "not valid Vega-Lite"),
        ({**SPECS["bar"], "data": {"url": "https://example.com/data.csv"}}, "/data/url would load"),
        ({**SPECS["bar"], "data": {"url": "file:///etc/passwd"}}, "/data/url would load"),
        ({**SPECS["bar"], "layer": [{"mark": "point", "data": {"url": "x.json"}}]}, "/layer/0/data/url"),
        ({**SPECS["bar"], "mark": {"type": "image"}}, "/mark would load"),
        ({**SPECS["bar"], "encoding": {"href": {"field": "url", "type": "nominal"}}}, "/encoding/href"),
        ({**SPECS["bar"], "usermeta": {"x": float("nan")}}, "plain JSON"),
        ({**SPECS["bar"], "usermeta": {"x": {1, 2}}}, "plain JSON"),
    ],
)
def test_refused(spec: dict[str, object], match: str) -> None:
    with pytest.raises(BadUserInput, match=match) as info:
        vl.validate_spec(spec)
    assert info.value.code == "BAD_USER_INPUT"


def test_columns_named_url_are_data() -> None:
    spec = vl.bar_spec(
        "Hits by url", category="url", category_title="URL", value="href", value_title="Hits", fmt=",d"
    )
    vl.validate_spec(vl.inline_data(spec, ["url", "href"], [("https://example.com/a", 3)]))
    vl.validate_spec(
        {**spec, "data": {"name": "table"}, "datasets": {"table": [{"url": "https://x", "href": 1}]}}
    )
    with pytest.raises(BadUserInput, match="/layer/0/data/url"):
        vl.validate_spec({**spec, "layer": [{"mark": "bar", "data": {"url": "https://example.com/x.csv"}}]})


def test_not_an_object() -> None:
    for bad in ([], "spec", None, 3):
        with pytest.raises(BadUserInput, match="JSON object"):
            vl.validate_spec(bad)  # type: ignore[arg-type]


def test_inline_data_makes_json() -> None:
    when = dt.datetime(2024, 3, 1, 12, 30, tzinfo=dt.UTC)
    row = (
        Decimal("12.50"),
        when,
        dt.date(2024, 3, 1),
        uuid.UUID(int=1),
        dt.timedelta(minutes=2),
        b"\x00\x01",
        float("nan"),
        None,
        True,
        "x",
        Decimal("NaN"),
        [Decimal("1")],
    )
    columns = [f"c{i}" for i in range(len(row))]
    out = vl.inline_data(SPECS["bar"], columns, [row])
    values = out["data"]["values"][0]
    assert values == {
        "c0": 12.5,
        "c1": "2024-03-01T12:30:00+00:00",
        "c2": "2024-03-01",
        "c3": "00000000-0000-0000-0000-000000000001",
        "c4": 120.0,
        "c5": "AAE=",
        "c6": None,
        "c7": None,
        "c8": True,
        "c9": "x",
        "c10": None,
        "c11": [1.0],
    }
    json.dumps(out, allow_nan=False)
    with pytest.raises(ValueError, match="zip"):
        vl.inline_data(SPECS["bar"], ["a"], [(1, 2)])


ROWS = {
    "kpi": (["count"], [(1234,)]),
    "timeseries": (["time", "count"], [("2024-01-01T00:00:00+00:00", 3), ("2024-02-01T00:00:00+00:00", 5)]),
    "split": (["time", "category", "sum_amount"], [("2024-01-01", "a", 1.5), ("2024-01-01", "b", 2.0)]),
    "bar": (["status", "count"], [("paid", 3), ("new", 5)]),
    "stacked_bar": (["status", "currency", "count"], [("paid", "EUR", 3), ("new", "USD", 5)]),
    "pie": (["method", "count"], [("card", 3), ("cash", 5)]),
    "histogram": (["bin_start", "bin_end", "count"], [(0, 10, 3), (10, 20, 5)]),
    "scatter": (["quantity", "unit_price", "count"], [(1, 20, 3), (2, 40, 1)]),
    "table": (["status", "count"], [("paid", 3), ("new", 5)]),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_specs_render_with_the_bundled_vega_lite(name: str) -> None:
    vlc = pytest.importorskip(
        "vl_convert", reason="vl-convert-python is not installed (the renderer's dependency)"
    )
    assert vl.VEGA_LITE_VERSION in vlc.get_vegalite_versions()
    columns, rows = ROWS[name]
    full = vl.inline_data(SPECS[name], columns, rows)
    svg = vlc.vegalite_to_svg(full, vl_version=vl.VEGA_LITE_VERSION, allowed_base_urls=[])
    assert svg.startswith("<svg") and "graphics-symbol" in svg
