"""Insights: short factual sentences about a widget's rows, from plain statistics.

- time series: change from the first to the last period (and in percent), the direction
  of the least-squares slope, the peak period, and periods that stand out (robust z-score
  over 3.5, from the median and the median absolute deviation, and at least 20 % off the
  median); with several series, the share of the largest series;
- breakdowns (bar, pie, stacked bar, table): the top contributor's share, how much the
  top 3 hold (concentration), values above Q3 + 1.5 x IQR;
- histograms: where most rows fall, where half of the rows lie below, a long tail;
- scatter: the correlation (Pearson, weighted by each point's row count).

Deterministic: the same rows give the same sentences, ties broken by label. Rows are
taken as the SQL returned them (values may be Decimal, datetime or their JSON forms).
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

ROBUST_Z = 3.5
MIN_DEVIATION = 0.2
MAX_SENTENCES = 5


def compute_insights(
    kind_or_spec: str | dict[str, Any], columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> list[str]:
    """Sentences about `rows` for a widget of this kind (or spec: kind and fields from it)."""
    if not rows or not columns:
        return ["No rows."] if columns else []
    kind, roles = _roles(kind_or_spec, list(columns))
    index = {name: i for i, name in enumerate(columns)}
    try:
        if kind == "timeseries":
            out = _timeseries(rows, index, roles)
        elif kind in ("bar", "pie", "table"):
            out = _breakdown(rows, index, roles)
        elif kind == "stacked_bar":
            out = _stacked(rows, index, roles)
        elif kind == "histogram":
            out = _histogram(rows, index, roles)
        elif kind == "scatter":
            out = _scatter(rows, index, roles)
        else:
            out = []
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return []  # rows that do not fit the spec (an edited widget): no insight, not an error
    return out[:MAX_SENTENCES]


# -- roles -----------------------------------------------------------------------------------


def _field(enc: dict[str, Any], channel: str) -> str | None:
    value = enc.get(channel)
    return value.get("field") if isinstance(value, dict) else None


def _title(enc: dict[str, Any], channel: str) -> str | None:
    value = enc.get(channel)
    return value.get("title") if isinstance(value, dict) and isinstance(value.get("title"), str) else None


def _roles(kind_or_spec: str | dict[str, Any], columns: list[str]) -> tuple[str, dict[str, Any]]:
    if isinstance(kind_or_spec, str):
        return kind_or_spec, _roles_by_position(kind_or_spec, columns)
    spec = kind_or_spec
    meta = spec.get("usermeta", {}).get("uds", {}) if isinstance(spec.get("usermeta"), dict) else {}
    enc = spec.get("encoding", {}) if isinstance(spec.get("encoding"), dict) else {}
    mark = spec.get("mark")
    mark_type = mark.get("type") if isinstance(mark, dict) else mark
    kind = meta.get("kind") or _kind_from(mark_type, enc)
    roles: dict[str, Any] = {"grain": meta.get("grain")}
    if kind == "timeseries":
        roles |= {
            "time": _field(enc, "x"),
            "value": _field(enc, "y"),
            "series": _field(enc, "color"),
            "value_title": _title(enc, "y"),
        }
    elif kind in ("bar", "stacked_bar"):
        horizontal = isinstance(enc.get("y"), dict) and enc["y"].get("type") == "nominal"
        cat, val = ("y", "x") if horizontal else ("x", "y")
        roles |= {
            "category": _field(enc, cat),
            "value": _field(enc, val),
            "split": _field(enc, "color"),
            "value_title": _title(enc, val),
        }
    elif kind == "pie":
        roles |= {
            "category": _field(enc, "color"),
            "value": _field(enc, "theta"),
            "value_title": _title(enc, "theta"),
        }
    elif kind == "histogram":
        roles |= {
            "start": _field(enc, "x"),
            "end": _field(enc, "x2"),
            "value": _field(enc, "y"),
            "value_title": _title(enc, "x"),
        }
    elif kind == "scatter":
        roles |= {
            "x": _field(enc, "x"),
            "y": _field(enc, "y"),
            "size": _field(enc, "size"),
            "x_title": _title(enc, "x"),
            "y_title": _title(enc, "y"),
        }
    elif kind == "table":
        shown = meta.get("columns") or columns
        roles |= {"category": shown[0], "value": shown[1] if len(shown) > 1 else None}
    defaults = _roles_by_position(kind, columns)
    return kind, {k: v if v is not None else defaults.get(k) for k, v in (defaults | roles).items()}


def _kind_from(mark: Any, enc: dict[str, Any]) -> str:
    x = enc.get("x") if isinstance(enc.get("x"), dict) else {}
    if mark == "arc":
        return "pie"
    if mark == "text":
        return "kpi"
    if mark in ("point", "circle", "square"):
        return "scatter"
    if x.get("type") == "temporal":
        return "timeseries"
    if mark == "bar" and isinstance(x.get("bin"), dict | bool):
        return "histogram"
    if mark == "bar":
        return "stacked_bar" if "color" in enc else "bar"
    return "other"


def _roles_by_position(kind: str, columns: list[str]) -> dict[str, Any]:
    """Our SQL's column order: dimensions first, the measure last."""
    first, last = columns[0], columns[-1]
    middle = columns[1] if len(columns) > 2 else None
    if kind == "timeseries":
        return {"time": first, "series": middle, "value": last}
    if kind in ("histogram",):
        return {"start": first, "end": columns[1] if len(columns) > 1 else None, "value": last}
    if kind == "scatter":
        return {
            "x": first,
            "y": columns[1] if len(columns) > 1 else None,
            "size": last if len(columns) > 2 else None,
        }
    if kind == "stacked_bar":
        return {"category": first, "split": middle, "value": last}
    if kind == "table":
        return {"category": first, "value": columns[1] if len(columns) > 1 else None}
    return {"category": first, "value": last}


# -- numbers and times ----------------------------------------------------------------------


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        f = float(value)
        return f if math.isfinite(f) else None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fmt_number(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.3g}"


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%"


def _time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def fmt_time(value: dt.datetime, grain: str | None) -> str:
    if grain == "year":
        return f"{value:%Y}"
    if grain == "quarter":
        return f"{value:%Y} Q{(value.month - 1) // 3 + 1}"
    if grain == "month":
        return f"{value:%b %Y}"
    if grain == "week":
        return f"the week of {value:%Y-%m-%d}"
    if grain == "hour":
        return f"{value:%Y-%m-%d %H:00}"
    return f"{value:%Y-%m-%d}"


def _label(value: Any) -> str:
    return "(none)" if value is None else str(value)


# -- by kind --------------------------------------------------------------------------------


def _timeseries(rows: Sequence[Sequence[Any]], index: dict[str, int], roles: dict[str, Any]) -> list[str]:
    t_i, v_i = index[roles["time"]], index[roles["value"]]
    s_i = index.get(roles.get("series") or "")
    grain = roles.get("grain")
    what = (roles.get("value_title") or roles["value"]).lower()
    totals: dict[dt.datetime, float] = {}
    by_series: dict[str, float] = {}
    for row in rows:
        t, v = _time(row[t_i]), _num(row[v_i])
        if t is None or v is None:
            continue
        totals[t] = totals.get(t, 0.0) + v
        if s_i is not None:
            key = _label(row[s_i])
            by_series[key] = by_series.get(key, 0.0) + v
    points = sorted(totals.items())
    if not points:
        return []
    out: list[str] = []
    (t0, first), (t1, last) = points[0], points[-1]
    if len(points) >= 2:
        start, end = fmt_time(t0, grain), fmt_time(t1, grain)
        change = f"{what} went from {fmt_number(first)} in {start} to {fmt_number(last)} in {end}"
        if first != 0:
            change += f" ({(last - first) / abs(first) * 100:+.1f}%)"
        out.append(change[:1].upper() + change[1:] + ".")
        values = [v for _, v in points]
        slope = _slope(values)
        mean = statistics.fmean(values)
        rise = slope * (len(values) - 1)
        if mean != 0 and abs(rise) < 0.05 * abs(mean):
            out.append(f"Over {len(values)} periods the trend is flat.")
        else:
            direction = "upward" if slope > 0 else "downward"
            out.append(
                f"Over {len(values)} periods the trend is {direction}, about {fmt_number(abs(slope))} "
                f"per {grain or 'period'} {'more' if slope > 0 else 'less'}."
            )
        peak_t, peak_v = max(points, key=lambda p: (p[1], -p[0].timestamp()))
        out.append(f"The highest was {fmt_time(peak_t, grain)} with {fmt_number(peak_v)}.")
        odd = _robust_outliers(points)
        if odd:
            shown = ", ".join(f"{fmt_time(t, grain)} ({fmt_number(v)})" for t, v in odd[:3])
            out.append(f"{len(odd)} period{'s stand' if len(odd) > 1 else ' stands'} out: {shown}.")
    if len(by_series) > 1:
        whole = sum(by_series.values())
        top_name, top_value = max(by_series.items(), key=lambda kv: (kv[1], [-ord(c) for c in kv[0]]))
        if whole > 0:
            out.append(f"The largest series is {top_name} with {_pct(top_value, whole)} of the total.")
    return out


def _slope(values: Sequence[float]) -> float:
    n = len(values)
    mean_x = (n - 1) / 2
    mean_y = statistics.fmean(values)
    den = sum((i - mean_x) ** 2 for i in range(n))
    return sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values)) / den if den else 0.0


def _robust_outliers(points: Sequence[tuple[Any, float]]) -> list[tuple[Any, float]]:
    if len(points) < 5:
        return []
    values = [v for _, v in points]
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    if mad == 0:
        return []
    # Far out by the robust z-score, and by enough to matter to a reader (a fifth of the
    # median): very regular series have a tiny MAD that would flag ordinary wobble.
    return [
        (t, v)
        for t, v in points
        if abs(v - median) / (1.4826 * mad) > ROBUST_Z and abs(v - median) >= MIN_DEVIATION * abs(median)
    ]


def _pairs(
    rows: Sequence[Sequence[Any]], index: dict[str, int], roles: dict[str, Any]
) -> list[tuple[str, float]]:
    c_i, v_i = index[roles["category"]], index[roles["value"]]
    out: dict[str, float] = {}
    for row in rows:
        v = _num(row[v_i])
        if v is not None:
            key = _label(row[c_i])
            out[key] = out.get(key, 0.0) + v
    return sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))


def _breakdown(rows: Sequence[Sequence[Any]], index: dict[str, int], roles: dict[str, Any]) -> list[str]:
    pairs = _pairs(rows, index, roles)
    if not pairs:
        return []
    whole = sum(v for _, v in pairs)
    out: list[str] = []
    top, value = pairs[0]
    if whole > 0 and len(pairs) > 1:
        out.append(
            f"The largest is {top} with {fmt_number(value)}, {_pct(value, whole)} of the {len(pairs)} shown."
        )
        if len(pairs) > 3:
            three = sum(v for _, v in pairs[:3])
            out.append(f"The top 3 hold {_pct(three, whole)} of the total.")
        smallest, low = pairs[-1]
        out.append(f"The smallest is {smallest} with {fmt_number(low)}.")
    elif len(pairs) == 1:
        out.append(f"Only {top}: {fmt_number(value)}.")
    values = [v for _, v in pairs]
    if len(values) >= 4:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        fence = q3 + 1.5 * (q3 - q1)
        high = [name for name, v in pairs if v > fence and q3 > q1]
        if high:
            out.append(f"Standing out above the rest (over {fmt_number(fence)}): {', '.join(high[:3])}.")
    return out


def _stacked(rows: Sequence[Sequence[Any]], index: dict[str, int], roles: dict[str, Any]) -> list[str]:
    out = _breakdown(rows, index, roles)[:2]
    split = roles.get("split")
    if split and split in index:
        parts = _pairs(rows, index, {"category": split, "value": roles["value"]})
        whole = sum(v for _, v in parts)
        if parts and whole > 0 and len(parts) > 1:
            out.append(f"Across all bars, {parts[0][0]} is the largest part with {_pct(parts[0][1], whole)}.")
    return out


def _histogram(rows: Sequence[Sequence[Any]], index: dict[str, int], roles: dict[str, Any]) -> list[str]:
    s_i, e_i, c_i = index[roles["start"]], index[roles["end"]], index[roles["value"]]
    bins = sorted(
        (float(s), float(e), float(c))
        for s, e, c in ((_num(r[s_i]), _num(r[e_i]), _num(r[c_i])) for r in rows)
        if s is not None and e is not None and c is not None
    )
    total = sum(c for _, _, c in bins)
    if not bins or total <= 0:
        return []
    out: list[str] = []
    mode = max(bins, key=lambda b: (b[2], -b[0]))
    out.append(
        f"The most rows ({_pct(mode[2], total)}) are between {fmt_number(mode[0])} and {fmt_number(mode[1])}."
    )
    running, median_end = 0.0, bins[-1][1]
    for _, end, count in bins:
        running += count
        if running >= total / 2:
            median_end = end
            break
    out.append(f"Half of the rows are below {fmt_number(median_end)}.")
    mean = sum((s + e) / 2 * c for s, e, c in bins) / total
    if len(bins) >= 5 and mean > 0 and mean > median_end * 1.2:
        out.append("The values have a long tail towards the high end.")
    return out


def _scatter(rows: Sequence[Sequence[Any]], index: dict[str, int], roles: dict[str, Any]) -> list[str]:
    x_i, y_i = index[roles["x"]], index[roles["y"]]
    w_i = index.get(roles.get("size") or "")
    points = []
    for row in rows:
        x, y = _num(row[x_i]), _num(row[y_i])
        w = _num(row[w_i]) if w_i is not None else 1.0
        if x is not None and y is not None and w is not None and w > 0:
            points.append((x, y, w))
    total = sum(w for _, _, w in points)
    if len(points) < 3 or total <= 0:
        return []
    mx = sum(x * w for x, _, w in points) / total
    my = sum(y * w for _, y, w in points) / total
    sxy = sum(w * (x - mx) * (y - my) for x, y, w in points)
    sxx = sum(w * (x - mx) ** 2 for x, _, w in points)
    syy = sum(w * (y - my) ** 2 for _, y, w in points)
    if sxx <= 0 or syy <= 0:
        return []
    r = sxy / math.sqrt(sxx * syy)
    strength = (
        "strongly"
        if abs(r) >= 0.7
        else "moderately"
        if abs(r) >= 0.4
        else "weakly"
        if abs(r) >= 0.1
        else "not"
    )
    x_name = (roles.get("x_title") or roles["x"]).lower()
    y_name = (roles.get("y_title") or roles["y"]).lower()
    if strength == "not":
        return [f"{y_name[:1].upper() + y_name[1:]} and {x_name} are not correlated (r = {r:.2f})."]
    sign = "positively" if r > 0 else "negatively"
    return [f"{y_name[:1].upper() + y_name[1:]} and {x_name} are {strength} {sign} correlated (r = {r:.2f})."]
