"""Chart axes that make sense for one point and for many: scores on their 0..1 scale, dates not milliseconds."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from core.trends import LiveSpan, TrendPoint
from dashboard import charts

T0 = dt.datetime(2026, 11, 20, 22, 1, 8, 443500, tzinfo=dt.UTC)


def frame(n: int, *, hours_apart: float = 24.0, roc_auc: float = 0.912, samples: int = 16_400) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "at": T0 + dt.timedelta(hours=i * hours_apart),
                "version": f"1.0.{i}",
                "kind": "promoted",
                "trigger": "cron",
                "actor": "ci",
                "duration_s": 5.25,
                "samples": samples,
                "roc_auc": roc_auc + 0.001 * i,
                "f1_score": 0.7,
            }
            for i in range(n)
        ]
    )


def layout(fig) -> dict:
    return fig.to_plotly_json()["layout"]


@pytest.mark.parametrize("n", [1, 2, 1000])
def test_score_panels_stay_on_the_score_scale_and_never_magnify_a_tiny_change(n):
    fig = charts.metric_trends(frame(n), ["roc_auc", "f1_score"], lambda m: 0.6, by_version=False)
    for axis in ("yaxis", "yaxis2"):
        lo, hi = layout(fig)[axis]["range"]
        assert 0.0 <= lo < hi <= 1.02 and hi - lo >= charts.SCORE_MIN_SPAN
        assert lo <= 0.6  # the threshold line is inside the panel


def test_one_point_gets_a_day_either_side_and_dates_without_milliseconds():
    fig = charts.metric_trends(frame(1), ["roc_auc"], lambda m: None, by_version=False)
    x = layout(fig)["xaxis"]
    start, end = (pd.Timestamp(v) for v in x["range"])
    assert end - start == pd.Timedelta(days=2)
    assert "%S" not in x["tickformat"] and "%L" not in x["tickformat"]
    many = layout(charts.metric_trends(frame(60), ["roc_auc"], lambda m: None, by_version=False))["xaxis"]
    assert many["tickformat"] == "%b %d" and "range" not in many


def test_counts_start_at_zero_in_plain_numbers():
    fig = charts.over_time(frame(2), "samples", "Training samples", "samples")
    y = layout(fig)["yaxis"]
    assert (y["rangemode"], y["tickformat"]) == ("tozero", ",.0f")


def test_each_marker_names_its_version_kind_trigger_and_actor_on_hover():
    fig = charts.metric_trends(frame(3), ["roc_auc", "f1_score"], lambda m: 0.6, by_version=False)
    markers = [t for t in fig.data if t.mode == "markers"]
    assert len(markers) == 2  # one per panel: every point here is a promotion
    for trace in markers:
        assert list(trace.customdata) == [f"version 1.0.{i} (promoted)<br>trigger cron · by ci" for i in range(3)]
        assert "%{customdata}" in trace.hovertemplate
    over = charts.over_time(frame(2), "samples", "Training samples", "samples")
    assert list(over.data[0].customdata) == [
        "version 1.0.0<br>trigger cron · by ci",
        "version 1.0.1<br>trigger cron · by ci",
    ]


def test_panels_share_one_time_axis_and_each_trace_sits_on_its_own_panel():
    fig = charts.metric_trends(frame(5), ["f1_score", "accuracy", "roc_auc"], lambda m: 0.6, by_version=False)
    assert [(t.xaxis, t.yaxis) for t in fig.data if t.mode == "lines"] == [("x", "y"), ("x2", "y2")]  # no accuracy
    x = layout(fig)
    assert x["xaxis"]["matches"] == "x2" and x["xaxis"]["tickformat"] == x["xaxis2"]["tickformat"] == "%b %d"
    assert [a["text"] for a in x["annotations"]] == ["f1_score", "roc_auc", "threshold 0.6", "threshold 0.6"]
    assert x["height"] == 170 * 2 + 80 and len(x["shapes"]) == 2


def mixed(n: int) -> pd.DataFrame:
    """n promotions plus a rejected run and a restore, as points_frame makes them (time-zone-aware times)."""
    points = [
        TrendPoint(
            T0 + dt.timedelta(hours=6 * i), f"1.{i}.0", "promoted", "cron", "ci", {"f1_score": 0.7 + i / 1e4}, 2.5, 900
        )
        for i in range(n)
    ]
    points.append(TrendPoint(T0 + dt.timedelta(hours=1), None, "rejected", "cron", "ci", {"f1_score": 0.5}, None, None))
    points.append(
        TrendPoint(T0 + dt.timedelta(hours=2), "1.0.0", "restored", "restore", "bob", {"f1_score": 0.7}, 2.5, 900)
    )
    return charts.points_frame(sorted(points, key=lambda p: p.at))


def validated(fig: go.Figure) -> dict:
    """What plotly makes of the figure's specification when it validates every property."""
    return json.loads(pio.to_json(go.Figure(fig.to_dict()), validate=False))


@pytest.mark.parametrize("n", [1, 3, 200])
def test_trend_figures_made_without_validation_are_what_plotly_validates_them_into(n):
    spans = [
        LiveSpan(f"1.{i}.0", T0 + dt.timedelta(hours=i), T0 + dt.timedelta(hours=i + 1), "promote", "ci", False)
        for i in range(n)
    ]
    figures = [
        charts.metric_trends(mixed(n), ["f1_score", "roc_auc"], lambda m: 0.6, by_version=False),
        charts.metric_trends(mixed(n), ["f1_score"], lambda m: None, by_version=True),
        charts.over_time(mixed(n), "duration_s", "Training duration", "seconds"),
        charts.over_time(mixed(n), "samples", "Training samples", "samples"),
        charts.live_timeline(spans),
    ]
    for fig in figures:
        assert json.loads(pio.to_json(fig, validate=False)) == validated(fig)
