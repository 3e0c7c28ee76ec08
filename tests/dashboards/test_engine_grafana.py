"""Grafana export: a golden file, the fields every panel type needs, and the model's refusals.

Regenerate the golden file after a deliberate change with UDS_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from pglast import parse_sql
from pydantic import ValidationError

from uds.dashboards import vegalite as vl
from uds.dashboards.draft import GridPos, WidgetDraft
from uds.dashboards.grafana import grafana_dashboard, with_time_filter
from uds.dashboards.grafana_model import Dashboard

GOLDEN = Path(__file__).parent / "data" / "grafana_golden.json"
RANGE = ("2022-01-01T22:24:30+00:00", "2024-06-19T00:07:13+00:00")


def w(kind: str, title: str, sql: str, spec: dict[str, Any], pos: tuple[int, int, int, int]) -> WidgetDraft:
    return WidgetDraft(
        key=f"k-{kind}",
        title=title,
        kind=kind,
        sql=sql,
        spec=spec,
        position=GridPos(*pos),
        score=0.5,
        reason=f"Why {title}.",
        columns=[],
    )


WIDGETS = [
    w(
        "kpi",
        "Number of orders",
        'SELECT count(*) AS "count"\nFROM "shop"."orders" AS "t0"\nLIMIT 1',
        vl.kpi_spec("Number of orders", value="count", value_title="Orders", fmt=",d"),
        (0, 0, 3, 2),
    ),
    w(
        "timeseries",
        "Orders per month",
        'SELECT date_trunc(\'month\', "t0"."created_at") AS "time",\n       count(*) AS "count"\n'
        'FROM "shop"."orders" AS "t0"\nWHERE "t0"."created_at" IS NOT NULL\nGROUP BY 1\nORDER BY 1\nLIMIT 1000',
        vl.timeseries_spec(
            "Orders per month",
            time="time",
            grain="month",
            value="count",
            value_title="Orders",
            fmt=",d",
            time_range=RANGE,
        ),
        (0, 2, 6, 4),
    ),
    w(
        "timeseries",
        "Revenue per month by status",
        'SELECT date_trunc(\'month\', "t0"."created_at") AS "time",\n'
        '       COALESCE(CAST("t0"."status" AS text), \'(none)\') AS "status",\n'
        '       sum("t0"."total_amount") AS "sum_total_amount"\nFROM "shop"."orders" AS "t0"\n'
        'WHERE "t0"."created_at" IS NOT NULL\nGROUP BY 1, 2\nORDER BY 1, 2\nLIMIT 5000',
        vl.timeseries_spec(
            "Revenue per month by status",
            time="time",
            grain="month",
            value="sum_total_amount",
            value_title="Total amount",
            fmt=",.2f",
            series="status",
            series_title="Status",
            mark="area",
            time_range=RANGE,
        ),
        (6, 2, 6, 4),
    ),
    w(
        "bar",
        "Orders by status",
        'SELECT COALESCE(CAST("t0"."status" AS text), \'(none)\') AS "status",\n       count(*) AS "count"\n'
        'FROM "shop"."orders" AS "t0"\nGROUP BY 1\nORDER BY 2 DESC NULLS LAST, 1\nLIMIT 20',
        vl.bar_spec(
            "Orders by status",
            category="status",
            category_title="Status",
            value="count",
            value_title="Orders",
            fmt=",d",
        ),
        (0, 6, 6, 4),
    ),
    w(
        "stacked_bar",
        "Orders by status and currency",
        'SELECT COALESCE(CAST("t0"."status" AS text), \'(none)\') AS "status",\n'
        '       COALESCE(CAST("t0"."currency" AS text), \'(none)\') AS "currency",\n       count(*) AS "count"\n'
        'FROM "shop"."orders" AS "t0"\nGROUP BY 1, 2\nORDER BY 1, 2\nLIMIT 640',
        vl.bar_spec(
            "Orders by status and currency",
            category="status",
            category_title="Status",
            value="count",
            value_title="Orders",
            fmt=",d",
            split="currency",
            split_title="Currency",
        ),
        (6, 6, 6, 4),
    ),
    w(
        "pie",
        "Payments by method",
        'SELECT COALESCE(CAST("t0"."method" AS text), \'(none)\') AS "method",\n       count(*) AS "count"\n'
        'FROM "shop"."payments" AS "t0"\nGROUP BY 1\nORDER BY 2 DESC NULLS LAST, 1\nLIMIT 7',
        vl.pie_spec(
            "Payments by method",
            category="method",
            category_title="Method",
            value="count",
            value_title="Payments",
            fmt=",d",
        ),
        (0, 10, 6, 4),
    ),
    w(
        "histogram",
        "Distribution of total amount",
        'SELECT floor(CAST("t0"."total_amount" AS numeric) / 20) * 20 AS "bin_start",\n'
        '       floor(CAST("t0"."total_amount" AS numeric) / 20) * 20 + 20 AS "bin_end",\n       count(*) AS "count"\n'
        'FROM "shop"."orders" AS "t0"\nWHERE "t0"."total_amount" IS NOT NULL\nGROUP BY 1, 2\nORDER BY 1\nLIMIT 200',
        vl.histogram_spec(
            "Distribution of total amount",
            start="bin_start",
            end="bin_end",
            count="count",
            measure_title="Total amount",
            fmt=",.2f",
        ),
        (6, 10, 6, 4),
    ),
    w(
        "scatter",
        "Unit price against quantity",
        'SELECT floor(CAST("t0"."quantity" AS numeric) / 1) * 1 AS "quantity",\n'
        '       floor(CAST("t0"."unit_price" AS numeric) / 20) * 20 AS "unit_price",\n       count(*) AS "count"\n'
        'FROM "shop"."order_items" AS "t0"\nWHERE "t0"."quantity" IS NOT NULL AND "t0"."unit_price" IS NOT NULL\n'
        "GROUP BY 1, 2\nORDER BY 1, 2\nLIMIT 1600",
        vl.scatter_spec(
            "Unit price against quantity",
            x="quantity",
            x_title="Quantity",
            y="unit_price",
            y_title="Unit price",
            size="count",
            x_fmt=",d",
            y_fmt=",.2f",
        ),
        (0, 14, 6, 4),
    ),
    w(
        "table",
        "Orders by status: rows, total amount and its average",
        'SELECT COALESCE(CAST("t0"."status" AS text), \'(none)\') AS "status",\n       count(*) AS "count",\n'
        '       sum("t0"."total_amount") AS "sum_total_amount"\nFROM "shop"."orders" AS "t0"\nGROUP BY 1\n'
        "ORDER BY 2 DESC, 1\nLIMIT 50",
        vl.table_spec(
            "Orders by status",
            columns=[("status", "Status"), ("count", "Rows"), ("sum_total_amount", "Total amount")],
        ),
        (0, 18, 12, 5),
    ),
]


def exported() -> dict[str, Any]:
    return grafana_dashboard(uid="demo-shop-overview", title="Demo shop overview", widgets=WIDGETS)


def test_golden_file() -> None:
    out = json.dumps(exported(), indent=2, sort_keys=True) + "\n"
    if os.environ.get("UDS_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(out)
    assert out == GOLDEN.read_text(), (
        "the export changed; rerun with UDS_UPDATE_GOLDEN=1 if that is deliberate"
    )


def test_dashboard_level_fields() -> None:
    out = exported()
    Dashboard.model_validate(out)
    assert out["schemaVersion"] == 39 and out["id"] is None and out["uid"] == "demo-shop-overview"
    assert out["__inputs"] == [
        {
            "name": "DS_POSTGRESQL",
            "label": "PostgreSQL",
            "description": "The data source the dashboard was generated from",
            "type": "datasource",
            "pluginId": "grafana-postgresql-datasource",
            "pluginName": "PostgreSQL",
        }
    ]
    requires = {(r["type"], r["id"]) for r in out["__requires"]}
    assert {("grafana", "grafana"), ("datasource", "grafana-postgresql-datasource")} <= requires
    assert {p["type"] for p in out["panels"]} == {r[1] for r in requires if r[0] == "panel"}
    # The time range covers the data, so time series show it on import.
    assert out["time"] == {"from": "2022-01-01T00:00:00.000Z", "to": "2024-06-20T00:00:00.000Z"}
    assert [p["id"] for p in out["panels"]] == list(range(1, len(WIDGETS) + 1))


def test_every_panel_type_has_what_it_needs() -> None:
    panels = {p["title"]: p for p in exported()["panels"]}
    for panel, widget in zip(exported()["panels"], WIDGETS, strict=True):
        target = panel["targets"][0]
        assert (
            panel["datasource"]
            == target["datasource"]
            == {
                "type": "grafana-postgresql-datasource",
                "uid": "${DS_POSTGRESQL}",
            }
        )
        assert target["rawQuery"] is True and target["editorMode"] == "code" and target["refId"] == "A"
        assert len(parse_sql(target["rawSql"].replace("$__timeFilter(", "__f("))) == 1
        p = widget.position
        assert panel["gridPos"] == {"x": 2 * p.x, "y": 2 * p.y, "w": 2 * p.w, "h": 2 * p.h}
        assert panel["description"] == widget.reason
    stat = panels["Number of orders"]
    assert stat["type"] == "stat" and stat["targets"][0]["format"] == "table"
    assert stat["options"]["reduceOptions"] == {"values": False, "calcs": ["lastNotNull"], "fields": ""}
    series = panels["Orders per month"]
    sql = series["targets"][0]["rawSql"]
    assert series["type"] == "timeseries" and series["targets"][0]["format"] == "time_series"
    assert "$__timeFilter(t0.created_at)" in sql and "AS time" in sql
    split = panels["Revenue per month by status"]
    sql = split["targets"][0]["rawSql"]
    assert sql.startswith('SELECT "q"."time", "q"."status" AS "metric", "q"."sum_total_amount"')
    assert "$__timeFilter(t0.created_at)" in sql
    assert split["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
    bar = panels["Orders by status"]
    assert bar["type"] == "barchart" and bar["options"]["xField"] == "status"
    assert bar["options"]["orientation"] == "horizontal" and bar["options"]["stacking"] == "none"
    stacked = panels["Orders by status and currency"]
    assert stacked["transformations"] == [
        {
            "id": "groupingToMatrix",
            "options": {
                "columnField": "currency",
                "rowField": "status",
                "valueField": "count",
                "emptyValue": "null",
            },
        }
    ]
    assert stacked["options"]["stacking"] == "normal" and stacked["options"]["xField"] == "status\\currency"
    pie = panels["Payments by method"]
    assert pie["type"] == "piechart" and pie["options"]["reduceOptions"]["values"] is True
    histogram = panels["Distribution of total amount"]
    assert histogram["type"] == "histogram"
    assert histogram["targets"][0]["rawSql"].startswith(
        'SELECT "q"."bin_start" AS "xMin", "q"."bin_end" AS "xMax"'
    )
    scatter = panels["Unit price against quantity"]
    assert scatter["type"] == "xychart"
    assert scatter["options"]["series"] == [
        {
            "x": {"matcher": {"id": "byName", "options": "quantity"}},
            "y": {"matcher": {"id": "byName", "options": "unit_price"}},
            "size": {"matcher": {"id": "byName", "options": "count"}},
        }
    ]
    table = panels["Orders by status: rows, total amount and its average"]
    assert table["type"] == "table" and table["targets"][0]["rawSql"] == WIDGETS[-1].sql


def test_widgets_as_mappings_without_kind() -> None:
    mapped = [
        {"title": x.title, "sql": x.sql, "spec": x.spec, "position": x.position.to_dict()} for x in WIDGETS
    ]
    out = grafana_dashboard(uid="x", title="t", widgets=mapped)
    assert [p["type"] for p in out["panels"]] == [p["type"] for p in exported()["panels"]]
    odd = grafana_dashboard(
        uid="an id with spaces/and slashes that is far too long for grafana",
        title="",
        widgets=[{"sql": "select 1", "spec": {}, "position": {"x": 11, "y": 0, "w": 4, "h": 1}}],
    )
    assert odd["uid"] == "an-id-with-spaces-and-slashes-that-is-fa"
    assert odd["panels"][0]["type"] == "table" and odd["panels"][0]["gridPos"] == {
        "x": 16,
        "y": 0,
        "w": 8,
        "h": 2,
    }
    assert odd["time"] == {"from": "now-5y", "to": "now"}


def test_time_filter() -> None:
    folded = """WITH "base" AS (
SELECT date_trunc('week', "t1"."created_at") AS "time", COALESCE(CAST("t3"."name" AS text), '(none)') AS "c",
       sum("t0"."x") AS "v"
FROM "s"."items" AS "t0" LEFT JOIN "s"."orders" AS "t1" ON "t1"."id" = "t0"."order_id"
WHERE "t1"."created_at" IS NOT NULL
GROUP BY 1, 2
), "top" AS (SELECT "c" FROM "base" GROUP BY 1 ORDER BY sum("v") DESC NULLS LAST, 1 LIMIT 8)
SELECT "b"."time" AS "time", "b"."c" AS "c", sum("b"."v") AS "v" FROM "base" AS "b" GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 5"""
    out = with_time_filter(folded)
    assert out.count("$__timeFilter(") == 1 and "$__timeFilter(t1.created_at)" in out
    assert out.index("$__timeFilter(") < out.index("GROUP BY 1, 2")
    no_where = (
        "SELECT date_trunc('day', t.at) AS time, count(*) AS n FROM s.t AS t GROUP BY 1 ORDER BY 1 LIMIT 5"
    )
    assert "WHERE $__timeFilter(t.at)" in with_time_filter(no_where)
    for unchanged in ("select count(*) from s.t", "not sql at all (", "select 1; select 2"):
        assert with_time_filter(unchanged) == unchanged


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["panels"][0].update(color="red"),  # an unknown field
        lambda d: d["panels"][1]["targets"][0].update(format="table"),  # time series need time_series
        lambda d: d["panels"][0]["gridPos"].update(x=20, w=8),  # off the grid
        lambda d: d["panels"][1].update(id=1),  # duplicate ids
        lambda d: d["panels"][3]["options"].pop("xField"),  # a bar chart without its category
        lambda d: d["panels"][0]["targets"][0].update(rawQuery=False),
        lambda d: d.update(schemaVersion=16),
        lambda d: d["__inputs"][0].update(pluginId="postgres"),
        lambda d: d.update(uid="has space"),
    ],
)
def test_the_model_refuses(change: Any) -> None:
    out = copy.deepcopy(exported())
    change(out)
    with pytest.raises(ValidationError):
        Dashboard.model_validate(out)
