"""Plotly figures for the pages: comparison bars, confusion matrices, importances, trends and the live timeline."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core import constants as C
from core.domain import Comparison
from core.trends import LiveSpan, TrendPoint

COLOR_A = "#2563eb"
COLOR_B = "#94a3b8"
KIND_STYLE: dict[str, dict[str, Any]] = {
    "promoted": {"color": "#2563eb", "symbol": "circle", "size": 8},
    "rejected": {"color": "#dc2626", "symbol": "x", "size": 10},
    "restored": {"color": "#f59e0b", "symbol": "diamond", "size": 11},
}
HOW_COLOR = {"promote": "#2563eb", "restore": "#f59e0b", "external_change": "#dc2626"}


def _frame(height: int) -> dict[str, Any]:
    """Layout every figure shares: its height, margins, a left-aligned title and the legend above the plot."""
    return dict(
        height=height,
        margin=dict(l=10, r=10, t=60, b=10),
        title=dict(x=0),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1),
    )


def _layout(fig: go.Figure, height: int) -> go.Figure:
    """`fig` with the shared layout (figures built up call by call)."""
    fig.update_layout(_frame(height))
    return fig


def _merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` merged into it, nested dictionaries key by key (what update_layout does)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _values(column: pd.Series) -> Any:
    """A column as the array plotly makes of it (time-zone-aware times as their wall time), made once: plotly would
    convert the same column again for every panel's trace when it writes the figure's JSON."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return column.dt.tz_localize(None).to_numpy()
    return column.to_numpy()


def _who(points: pd.DataFrame, after_version: str = "") -> np.ndarray:
    """Each point's hover line: "version V<after_version><br>trigger T · by A".

    One string a point, not one a field: plotly deep-copies every string of a figure when it is made and again on
    each render, and 1,000 versions in five panels made 22,000 of them. Made in Python: pandas' string arithmetic
    on these (Arrow) columns, or iterating them, took 4-10 ms a figure; an array, as plotly would make of a list.
    """
    columns = (points[c].tolist() for c in ("version", "trigger", "actor"))
    lines = [f"version {v}{after_version}<br>trigger {t} · by {a}" for v, t, a in zip(*columns, strict=True)]
    return np.array(lines, dtype=object)


def _figure(traces: list[dict[str, Any]], layout: dict[str, Any]) -> go.Figure:
    """One figure from its traces and layout, without plotly's property-by-property validation.

    Built up with add_trace, make_subplots and update_layout, the Trends figures of 1,000 versions took ~125 ms
    (plotly validates and dispatches again on every call); as one validated specification ~45 ms; unvalidated
    ~25 ms. The arrays are given as validation would make them (`_values`, `_who`); tests/dashboard/test_charts.py
    checks that plotly's validation of each figure gives back exactly the same figure.
    """
    return go.Figure(data=traces, layout=layout, _validate=False)


def metrics_bar(c: Comparison, thresholds: dict[str, float | None]) -> go.Figure:
    """Each metric of version A next to version B, with the gate threshold marked."""
    names = [m for m in C.PERFORMANCE_METRICS if c.metrics[m].current is not None or c.metrics[m].previous is not None]
    fig = go.Figure()
    fig.add_bar(
        name=f"A · v{c.a.version}",
        x=names,
        y=[c.metrics[m].current for m in names],
        marker_color=COLOR_A,
        text=[_fmt(c.metrics[m].current) for m in names],
        textposition="outside",
    )
    fig.add_bar(
        name=f"B · v{c.b.version}",
        x=names,
        y=[c.metrics[m].previous for m in names],
        marker_color=COLOR_B,
        text=[_fmt(c.metrics[m].previous) for m in names],
        textposition="outside",
    )
    for i, m in enumerate(names):
        t = thresholds.get(m)
        if t is not None:
            fig.add_shape(
                type="line", x0=i - 0.45, x1=i + 0.45, y0=t, y1=t, line=dict(color="#dc2626", dash="dash", width=2)
            )
    fig.update_layout(
        barmode="group", yaxis=dict(range=[0, 1.1], title="score"), title="Metrics (red dashes: gate threshold)"
    )
    return _layout(fig, 380)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def confusion(matrix: Sequence[Sequence[int]], title: str) -> go.Figure:
    """A 2x2 confusion matrix [[tn, fp], [fn, tp]] as an annotated heatmap."""
    fig = px.imshow(
        [list(row) for row in matrix],
        x=["predicted ok", "predicted fail"],
        y=["actual ok", "actual fail"],
        text_auto=True,
        color_continuous_scale="Blues",
        aspect="auto",
    )
    fig.update_layout(title=title, coloraxis_showscale=False)
    return _layout(fig, 300)


def importances(a: dict[str, float], b: dict[str, float], label_a: str, label_b: str, top: int = 15) -> go.Figure:
    """The top features by importance in either version, side by side."""
    keys = sorted(set(a) | set(b), key=lambda k: max(a.get(k, 0.0), b.get(k, 0.0)), reverse=True)[:top]
    keys.reverse()  # largest at the top of a horizontal bar chart
    fig = go.Figure()
    fig.add_bar(name=label_a, y=keys, x=[a.get(k) for k in keys], orientation="h", marker_color=COLOR_A)
    fig.add_bar(name=label_b, y=keys, x=[b.get(k) for k in keys], orientation="h", marker_color=COLOR_B)
    fig.update_layout(barmode="group", title=f"Feature importance (top {len(keys)})", xaxis_title="importance")
    return _layout(fig, max(320, 28 * len(keys) + 120))


def points_frame(points: Sequence[TrendPoint]) -> pd.DataFrame:
    """Trend points as a flat table (one column per metric that any point has)."""
    if not points:
        return pd.DataFrame()
    metrics = [m for m in dict.fromkeys(k for p in points for k in p.metrics)]
    # Column by column: a frame of 1,000 points built from one dict per row takes several times longer.
    columns: dict[str, list[Any]] = {
        "at": [p.at for p in points],
        "version": [p.version or "(rejected)" for p in points],
        "kind": [p.kind for p in points],
        "trigger": [p.trigger or "?" for p in points],
        "actor": [p.actor or "?" for p in points],
        "duration_s": [p.duration_seconds for p in points],
        "samples": [p.sample_count for p in points],
        **{m: [p.metrics.get(m) for p in points] for m in metrics},
    }
    return pd.DataFrame(columns)


SCORE_MIN_SPAN = 0.1  # a score panel spans at least this much: a change of 0.002 must not fill it
DAY = pd.Timedelta(days=1)


def _score_range(values: Sequence[float], threshold: float | None) -> list[float]:
    """A score axis (0..1 scale) that shows every point and the threshold, never beyond [0, 1.02]."""
    shown = [float(v) for v in values if v is not None and not pd.isna(v)]
    if threshold is not None:
        shown.append(float(threshold))
    if not shown:
        return [0.0, 1.02]
    lo, hi = min(shown), max(shown)
    pad = max(SCORE_MIN_SPAN - (hi - lo), 0.0) / 2 + 0.02
    lo, hi = max(0.0, lo - pad), min(1.02, hi + pad)
    return [lo, hi]


def _time_axis(times: pd.Series) -> dict[str, Any]:
    """X-axis properties for dates (with hours only when the points are hours apart), and room around one point
    or a short span."""
    times = pd.to_datetime(times.dropna(), utc=True)
    if times.empty:
        return {}
    first, last = times.min(), times.max()
    span = last - first
    axis: dict[str, Any] = {}
    if span < DAY:  # one point, or a few the same day: a day either side, not milliseconds
        axis["range"] = [first - DAY, last + DAY]
    axis.update(tickformat="%b %d, %H:%M" if span < 3 * DAY else "%b %d", hoverformat="%Y-%m-%d %H:%M UTC")
    return axis


@functools.lru_cache(maxsize=32)
def _panels(titles: tuple[str, ...]) -> dict[str, Any]:
    """The layout of one column of panels sharing their x axis (axes, domains, titles); make_subplots takes ~17 ms
    and its answer depends on the titles alone. Callers get a copy."""
    grid = make_subplots(rows=len(titles), cols=1, shared_xaxes=True, vertical_spacing=0.04, subplot_titles=titles)
    layout = grid.layout.to_plotly_json()
    layout.pop("template", None)  # the default template, applied again when the figure is made
    return layout


def _axis_suffix(row: int) -> str:
    """ "" for the first panel, "2", "3", ... for the others (xaxis, xaxis2, ...; x, x2, ...)."""
    return "" if row == 1 else str(row)


def metric_trends(
    frame: pd.DataFrame, metrics: Sequence[str], threshold: Callable[[str], float | None], by_version: bool
) -> go.Figure:
    """One panel per metric: the promoted line, markers for promotions, rejected runs and restores, threshold lines."""
    metrics = [m for m in metrics if m in frame.columns]
    layout = copy.deepcopy(_panels(tuple(metrics)))
    x = "version" if by_version else "at"
    traces: list[dict[str, Any]] = []
    parts = {kind: frame[frame["kind"] == kind] for kind in KIND_STYLE}
    hover = {kind: _who(part, f" ({kind})") for kind, part in parts.items()}
    values = {kind: {c: _values(part[c]) for c in dict.fromkeys((x, *metrics))} for kind, part in parts.items()}
    for row, m in enumerate(metrics, start=1):
        axis = _axis_suffix(row)
        on = {"xaxis": f"x{axis}", "yaxis": f"y{axis}"}
        promoted = values["promoted"]
        traces.append(
            dict(
                type="scatter",
                x=promoted[x],
                y=promoted[m],
                mode="lines",
                line=dict(color="#93c5fd", width=1.5),
                showlegend=False,
                hoverinfo="skip",
                **on,
            )
        )
        for kind, style in KIND_STYLE.items():
            if parts[kind].empty:
                continue
            traces.append(
                dict(
                    type="scatter",
                    x=values[kind][x],
                    y=values[kind][m],
                    mode="markers",
                    name=kind,
                    legendgroup=kind,
                    showlegend=row == 1,
                    marker=dict(color=style["color"], symbol=style["symbol"], size=style["size"]),
                    customdata=hover[kind],
                    hovertemplate=f"<b>{m}</b> %{{y:.3f}}<br>%{{customdata}}<br>%{{x}}<extra></extra>",
                    **on,
                )
            )
        t = threshold(m)
        layout[f"yaxis{axis}"].update(range=_score_range(frame[m].tolist(), t), tickformat=".2f")
        if t is not None:
            layout.setdefault("shapes", []).append(
                dict(
                    type="line",
                    xref=f"x{axis} domain",
                    x0=0,
                    x1=1,
                    yref=f"y{axis}",
                    y0=t,
                    y1=t,
                    line=dict(color="#dc2626", dash="dash", width=1),
                )
            )
            layout["annotations"].append(
                dict(
                    text=f"threshold {t:g}",
                    xref=f"x{axis} domain",
                    x=1,
                    xanchor="right",
                    yref=f"y{axis}",
                    y=t,
                    yanchor="top",
                    showarrow=False,
                )
            )
    if by_version:
        order = list(dict.fromkeys(frame.loc[frame["kind"] != "rejected", "version"]))
        shared = dict(type="category", categoryorder="array", categoryarray=order)
    else:
        shared = _time_axis(frame["at"])
    for row in range(1, len(metrics) + 1):
        layout[f"xaxis{_axis_suffix(row)}"].update(shared)
    return _figure(traces, _merged(layout, _frame(170 * len(metrics) + 80)))


def over_time(frame: pd.DataFrame, column: str, title: str, y_title: str) -> go.Figure:
    """One quantity of the promoted and rejected runs over time."""
    data = frame.dropna(subset=[column]) if column in frame.columns else frame.iloc[0:0]
    traces: list[dict[str, Any]] = []
    for kind, style in KIND_STYLE.items():
        part = data[data["kind"] == kind] if "kind" in data.columns else data.iloc[0:0]
        if part.empty:
            continue
        traces.append(
            dict(
                type="scatter",
                x=_values(part["at"]),
                y=_values(part[column]),
                mode="markers",
                name=kind,
                marker=dict(color=style["color"], symbol=style["symbol"], size=style["size"]),
                customdata=_who(part),
                hovertemplate=f"{column} %{{y}}<br>%{{customdata}}<br>%{{x}}<extra></extra>",
            )
        )
    times = data["at"] if "at" in data.columns else pd.Series(dtype="datetime64[ns, UTC]")
    layout = dict(
        title=dict(text=title),
        # From zero, in plain numbers: 16,400 samples twice is a flat line, not an axis from 16.399k to 16.401k.
        yaxis=dict(title=dict(text=y_title), rangemode="tozero", tickformat=",.0f" if column == "samples" else ",.1f"),
        xaxis=_time_axis(times),
        legend=dict(title=dict(text="")),
    )
    return _figure(traces, _merged(layout, _frame(300)))


def live_timeline(spans: Sequence[LiveSpan]) -> go.Figure:
    """Which version was live when, coloured by what made it live (horizontal bars from start to end)."""
    order = list(dict.fromkeys(f"v{s.version}" for s in spans))
    traces: list[dict[str, Any]] = []
    for how, color in HOW_COLOR.items():
        part = [s for s in spans if s.how == how]
        if not part:
            continue
        traces.append(
            dict(
                type="bar",
                orientation="h",
                name=how,
                y=[f"v{s.version}" for s in part],
                base=[s.start for s in part],
                x=[(s.end - s.start).total_seconds() * 1000 for s in part],
                marker=dict(color=color),
                customdata=[[s.actor, s.start, s.end] for s in part],
                hovertemplate="%{y} · %{customdata[1]} to %{customdata[2]}<br>by %{customdata[0]}<extra></extra>",
            )
        )
    layout = dict(
        yaxis=dict(autorange="reversed", categoryorder="array", categoryarray=order),
        xaxis=dict(type="date"),
        legend=dict(title=dict(text="made live by")),
        barmode="overlay",
    )
    return _figure(traces, _merged(layout, _frame(min(max(240, 24 * len(order) + 110), 900))))
