"""Chart axes that make sense for one point and for many: scores on their 0..1 scale, dates not milliseconds."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

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
