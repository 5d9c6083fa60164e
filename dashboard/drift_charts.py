"""Plotly figures of the Drift page: both windows' distributions overlaid, and PSI per day against the bands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from core import constants as C

COLOR_REFERENCE = "#94a3b8"
COLOR_CURRENT = "#2563eb"
BAND_COLOR = {"stable": "#16a34a", "moderate": "#f59e0b", "significant": "#dc2626"}


def _unit(name: str) -> str:
    """The metric's unit for an axis title ("" for features that have none of their own, and for scores)."""
    metric = next((m for m in C.METRIC_NAMES if name == m or name.startswith(f"{m}_")), None)
    unit = C.METRIC_UNITS.get(metric, "") if metric else ""
    return f" ({unit})" if unit else ""


def distribution(name: str, h: Any, reference_label: str, current_label: str) -> go.Figure:
    """The training window's and the recent window's shares per bin (a core.drift.Histogram), overlaid."""
    centers = [(lo + hi) / 2 for lo, hi in zip(h.edges[:-1], h.edges[1:], strict=True)]
    width = (h.edges[1] - h.edges[0]) if len(h.edges) > 1 else 1.0
    fig = go.Figure()
    for label, shares, color in (
        (reference_label, h.reference, COLOR_REFERENCE),
        (current_label, h.current, COLOR_CURRENT),
    ):
        fig.add_bar(
            x=centers,
            y=shares,
            width=width,
            name=label,
            marker_color=color,
            opacity=0.55,
            hovertemplate=f"{label}<br>{name} %{{x:.4g}}<br>%{{y:.1%}} of values<extra></extra>",
        )
    fig.update_layout(
        barmode="overlay",
        title=f"{name}: distribution in both windows",
        xaxis_title=f"{name}{_unit(name)}",
        yaxis_title="share of values",
        yaxis_tickformat=".0%",
        height=380,
        margin=dict(l=10, r=10, t=60, b=10),
        title_x=0,
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1),
    )
    return fig


def over_time(points: Sequence[Any], metrics: Sequence[str]) -> go.Figure:
    """PSI per day of each chosen metric against the training window, with the moderate and significant lines."""
    fig = go.Figure()
    for metric in metrics:
        mine = sorted((p for p in points if p.metric == metric), key=lambda p: p.day)
        fig.add_scatter(
            x=[p.day for p in mine],
            y=[p.psi for p in mine],
            mode="lines+markers",
            name=metric,
            customdata=[p.count for p in mine],
            hovertemplate=f"{metric}<br>%{{x|%Y-%m-%d}}: PSI %{{y:.3f}} (%{{customdata}} readings)<extra></extra>",
        )
    for value, band in ((C.PSI_MODERATE, "moderate"), (C.PSI_SIGNIFICANT, "significant")):
        fig.add_hline(
            y=value,
            line=dict(color=BAND_COLOR[band], dash="dash", width=1),
            annotation_text=f"{band} above {value:g}",
            annotation_position="top left",
        )
    fig.update_layout(
        title="PSI per day against the training window",
        xaxis_title="day (UTC)",
        yaxis_title="PSI",
        height=380,
        margin=dict(l=10, r=10, t=60, b=10),
        title_x=0,
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1),
    )
    return fig
