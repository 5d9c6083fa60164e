"""Widgets and figures for realised performance: the live version on Status, weeks per version on Trends, shadow
candidates on Candidates."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.errors import RegistryError

METRIC_LABELS = {"f1_score": "F1", "precision": "Precision", "recall": "Recall", "roc_auc": "AUC"}
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#f59e0b", "#0891b2", "#db2777", "#65a30d")
HOW_TO_FILL = (
    "Predictions are logged as they are served (POST /api/predictions/predict) and by the daily fleet scoring "
    "(`scripts/score_fleet.py`, see deploy/crontab)."
)


def load(fetch: Any) -> tuple[Any, str | None]:
    """The report (or None) and, when it could not be read, why."""
    try:
        return fetch(), None
    except RegistryError as exc:
        return None, exc.message


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def live_section(report: Any, problem: str | None, current: Any) -> None:
    """Status: the live version's realised figures beside its holdout figures, with the counts behind them."""
    st.subheader("Realised performance (live version)")
    if report is None:
        st.caption(f"Unavailable: {problem}")
        return
    figures = report.version(current.version)
    if figures is None:
        st.info(f"No prediction of v{current.version} is logged yet. {HOW_TO_FILL}", icon=":material/pending:")
        return
    r = figures.total
    rows = [
        {
            "metric": METRIC_LABELS[m],
            "holdout (when trained)": _cell(current.performance.get(m)),
            "realised": _cell(r.get(m)),
        }
        for m in ("f1_score", "precision", "recall", "roc_auc")
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="status_realised")
    st.caption(
        f"Realised over **{r.outcomes:,} device-days** with a known outcome ({r.positives:,} followed by a failure "
        f"within {report.horizon_days} days) from {figures.first_day} to {figures.last_day}; "
        f"{figures.awaiting:,} more wait for their {report.horizon_days}-day horizon to pass. "
        "An outcome comes from device_failures, never from the readings."
    )
    if not r.enough:
        st.warning(
            f"**Too few outcomes yet** to judge the live model: {r.note}. The figures above are shown, but "
            "they can swing widely until more days have passed.",
            icon=":material/hourglass_empty:",
        )
    elif r.note:
        st.caption(f"— means: {r.note}")


def weekly_frame(report: Any, metric: str) -> pd.DataFrame:
    """One row per (version, week) with the realised metric, its counts and the version's holdout figure."""
    rows = [
        {
            "version": v.model_version,
            "role": v.role,
            "week": pd.Timestamp(w.week),
            "realised": w.realised.get(metric),
            "outcomes": w.realised.outcomes,
            "failures": w.realised.positives,
            "enough": w.realised.enough,
            "holdout": v.holdout.get(metric),
        }
        for v in report.versions
        for w in v.weeks
    ]
    return pd.DataFrame(rows)


def trend_figure(report: Any, metric: str) -> go.Figure:
    """Realised per week (solid; hollow markers where too few outcomes) beside the holdout figure (dashed)."""
    frame = weekly_frame(report, metric)
    fig = go.Figure()
    for i, (version, group) in enumerate(frame.groupby("version", sort=False)):
        color = PALETTE[i % len(PALETTE)]
        label = version if group["role"].iat[0] == "live" else f"{version} (shadow)"
        fig.add_trace(
            go.Scatter(
                x=group["week"],
                y=group["realised"],
                mode="lines+markers",
                name=f"{label} realised",
                line=dict(color=color),
                marker=dict(
                    color=[color if e else "white" for e in group["enough"]], line=dict(color=color, width=2), size=9
                ),
                customdata=group[["outcomes", "failures"]].to_numpy(),
                hovertemplate="week of %{x|%Y-%m-%d}<br>realised %{y:.3f}<br>%{customdata[0]} outcomes, "
                "%{customdata[1]} failures<extra>" + label + "</extra>",
            )
        )
        holdout = group["holdout"].dropna()
        if len(holdout):
            end = group["week"].max() + pd.Timedelta(days=6)
            fig.add_trace(
                go.Scatter(
                    x=[group["week"].min(), end],
                    y=[holdout.iat[0], holdout.iat[0]],
                    mode="lines",
                    name=f"{label} holdout",
                    line=dict(color=color, dash="dash"),
                    hovertemplate="holdout %{y:.3f} (when trained)<extra>" + label + "</extra>",
                )
            )
    name = METRIC_LABELS.get(metric, metric)
    fig.update_layout(
        title=f"Realised {name} per week beside the holdout {name} of each version",
        height=420,
        margin=dict(l=10, r=10, t=80, b=10),
        title_x=0,
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1),
        xaxis_title="week the predictions were made (UTC, Monday)",
        yaxis_title=name,
        yaxis=dict(range=[0, 1.02]),
    )
    return fig


def shadow_columns(shadow: Any) -> dict[str, Any]:
    """Candidates table: the candidate's shadow F1 and AUC beside the live version's on the same device-days."""
    if shadow is None or shadow.shared_outcomes == 0 or shadow.live is None:
        return {"shadow outcomes": 0, "shadow f1": None, "live f1 (same days)": None, "shadow auc": None}
    return {
        "shadow outcomes": shadow.shared_outcomes,
        "shadow f1": shadow.candidate.f1_score,
        "live f1 (same days)": shadow.live.f1_score,
        "shadow auc": shadow.candidate.roc_auc,
    }
