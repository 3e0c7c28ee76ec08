"""The part of Grafana's dashboard JSON model that UDS emits, as strict pydantic models.

Grafana has no official schema for the classic dashboard model, and its import is lenient:
a misspelt option is silently ignored. So every field `grafana.py` writes is declared
here (unknown fields are refused), with the per-panel options each panel type needs to
draw our data: stat reduces to the last value, pie and bar charts show every row, bar
charts name their category field, time series stack when split, the histogram gets
pre-binned `xMin`/`xMax` columns, the XY chart maps x, y and size by name. Written from
Grafana's panel documentation and its `kinds/dashboard` and panel `panelcfg` CUE files.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PLUGIN_ID = "grafana-postgresql-datasource"
SCHEMA_VERSION = 39
GRID_WIDTH = 24


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class DataSourceRef(_Strict):
    type: Literal["grafana-postgresql-datasource"]
    uid: str


class Target(_Strict):
    refId: str
    datasource: DataSourceRef
    rawSql: Annotated[str, Field(min_length=1)]
    rawQuery: Literal[True]
    editorMode: Literal["code"]
    format: Literal["time_series", "table"]


class GridPos(_Strict):
    x: Annotated[int, Field(ge=0, lt=GRID_WIDTH)]
    y: Annotated[int, Field(ge=0)]
    w: Annotated[int, Field(gt=0, le=GRID_WIDTH)]
    h: Annotated[int, Field(gt=0)]

    @model_validator(mode="after")
    def _fits(self) -> GridPos:
        if self.x + self.w > GRID_WIDTH:
            raise ValueError("panel runs off the 24-column grid")
        return self


class Legend(_Strict):
    showLegend: bool
    displayMode: Literal["list", "table", "hidden"]
    placement: Literal["bottom", "right"]
    calcs: list[str] = []


class Tooltip(_Strict):
    mode: Literal["single", "multi", "none"]
    sort: Literal["none", "asc", "desc"]


class ReduceOptions(_Strict):
    values: bool
    calcs: list[str]
    fields: str


class Matcher(_Strict):
    id: Literal["byName"]
    options: str


class FieldMatcher(_Strict):
    matcher: Matcher


class XYSeries(_Strict):
    x: FieldMatcher
    y: FieldMatcher
    size: FieldMatcher


class StatOptions(_Strict):
    reduceOptions: ReduceOptions
    colorMode: Literal["none", "value", "background"]
    graphMode: Literal["none", "area"]
    textMode: Literal["auto", "value", "value_and_name", "name", "none"]
    justifyMode: Literal["auto", "center"]
    orientation: Literal["auto", "horizontal", "vertical"]


class TimeseriesOptions(_Strict):
    legend: Legend
    tooltip: Tooltip


class BarchartOptions(_Strict):
    legend: Legend
    tooltip: Tooltip
    xField: str
    orientation: Literal["auto", "horizontal", "vertical"]
    stacking: Literal["none", "normal", "percent"]
    showValue: Literal["auto", "always", "never"]
    xTickLabelRotation: int = 0


class PiechartOptions(_Strict):
    reduceOptions: ReduceOptions
    pieType: Literal["pie", "donut"]
    displayLabels: list[Literal["name", "value", "percent"]]
    legend: Legend
    tooltip: Tooltip


class HistogramOptions(_Strict):
    combine: bool
    legend: Legend
    tooltip: Tooltip


class XYChartOptions(_Strict):
    mapping: Literal["manual"]
    series: list[XYSeries]
    legend: Legend
    tooltip: Tooltip


class TableOptions(_Strict):
    showHeader: bool
    cellHeight: Literal["sm", "md", "lg"]


class Custom(_Strict):
    drawStyle: Literal["line", "bars", "points"] | None = None
    fillOpacity: int | None = None
    showPoints: Literal["auto", "always", "never"] | None = None
    stacking: dict[str, str] | None = None


class Defaults(_Strict):
    unit: str | None = None
    decimals: int | None = None
    custom: Custom | None = None


class FieldConfig(_Strict):
    defaults: Defaults
    overrides: list[dict[str, Any]] = []


class Transformation(_Strict):
    id: Literal["groupingToMatrix"]
    options: dict[str, str]


class _Panel(_Strict):
    id: Annotated[int, Field(gt=0)]
    title: str
    description: str = ""
    gridPos: GridPos
    datasource: DataSourceRef
    targets: Annotated[list[Target], Field(min_length=1, max_length=1)]
    fieldConfig: FieldConfig
    transformations: list[Transformation] = []


class StatPanel(_Panel):
    type: Literal["stat"]
    options: StatOptions


class TimeseriesPanel(_Panel):
    type: Literal["timeseries"]
    options: TimeseriesOptions

    @model_validator(mode="after")
    def _time_series_format(self) -> TimeseriesPanel:
        if self.targets[0].format != "time_series":
            raise ValueError("a timeseries panel reads the time_series format")
        return self


class BarchartPanel(_Panel):
    type: Literal["barchart"]
    options: BarchartOptions


class PiechartPanel(_Panel):
    type: Literal["piechart"]
    options: PiechartOptions


class HistogramPanel(_Panel):
    type: Literal["histogram"]
    options: HistogramOptions


class XYChartPanel(_Panel):
    type: Literal["xychart"]
    options: XYChartOptions


class TablePanel(_Panel):
    type: Literal["table"]
    options: TableOptions


Panel = Annotated[
    StatPanel | TimeseriesPanel | BarchartPanel | PiechartPanel | HistogramPanel | XYChartPanel | TablePanel,
    Field(discriminator="type"),
]


class Input(_Strict):
    name: str
    label: str
    description: str
    type: Literal["datasource"]
    pluginId: Literal["grafana-postgresql-datasource"]
    pluginName: Literal["PostgreSQL"]


class Require(_Strict):
    type: Literal["grafana", "datasource", "panel"]
    id: str
    name: str
    version: str


class TimeRange(_Strict):
    from_: str = Field(alias="from")
    to: str


class ListHolder(_Strict):
    list: list[dict[str, Any]]


class Dashboard(_Strict):
    inputs: list[Input] = Field(alias="__inputs", min_length=1)
    requires: list[Require] = Field(alias="__requires", min_length=1)
    id: None
    uid: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
    title: Annotated[str, Field(min_length=1)]
    description: str
    tags: list[str]
    timezone: Literal["browser", "utc"]
    editable: bool
    graphTooltip: int
    schemaVersion: Literal[39]
    version: int
    refresh: str
    time: TimeRange
    templating: ListHolder
    annotations: ListHolder
    links: list[dict[str, Any]]
    panels: list[Panel]

    @model_validator(mode="after")
    def _unique_ids(self) -> Dashboard:
        ids = [p.id for p in self.panels]
        if len(ids) != len(set(ids)):
            raise ValueError("panel ids must be unique")
        return self
