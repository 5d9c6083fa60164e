"""Trends: metrics over versions and time against thresholds (promotions, rejections, restores); what was live when."""

from __future__ import annotations

import streamlit as st

from core import constants as C
from dashboard import realised_view, widgets
from dashboard import services as svc
from dashboard.formatting import fmt_time

MAX_SPANS = 60

st.title("Trends")
data = svc.trends()
if not data.has_history:
    widgets.db_needed("Rejected runs, restores and the live-version timeline")

if not data.points:
    widgets.no_model()
    st.stop()

left, right = st.columns([3, 1])
chosen = left.multiselect(
    "Metrics", list(C.PERFORMANCE_METRICS), default=list(C.PERFORMANCE_METRICS), key="trend_metrics"
)
axis = right.segmented_control("X axis", ["time", "version"], default="time", key="trend_axis")
figures = svc.trend_figures(tuple(chosen), axis == "version", MAX_SPANS)
frame = figures["frame"]
counts = frame["kind"].value_counts().to_dict()
st.caption(
    f"{counts.get('promoted', 0)} promotions · {counts.get('rejected', 0)} rejected runs · "
    f"{counts.get('restored', 0)} restores · "
    f"from {fmt_time(frame['at'].min())} to {fmt_time(frame['at'].max())}"
)

if chosen:
    st.plotly_chart(figures["metrics"], key="trend_metrics_chart")
    st.caption(
        "Blue circles: promotions · red crosses: runs the gate rejected · orange diamonds: restores. "
        "Dashed red lines: gate thresholds."
    )
else:
    st.caption("Pick at least one metric.")

c1, c2 = st.columns(2)
with c1:
    st.plotly_chart(figures["duration"], key="trend_duration")
with c2:
    st.plotly_chart(figures["samples"], key="trend_samples")

st.subheader("Which version was live when")
if not data.spans:
    st.caption(
        "No promotions, restores or hand-made changes recorded yet." if data.has_history else "Needs the database."
    )
else:
    if len(data.spans) > MAX_SPANS:
        st.caption(f"The last {MAX_SPANS} of {len(data.spans)} changes; History lists them all.")
    st.plotly_chart(figures["timeline"], key="trend_timeline")

st.subheader("Realised beside holdout")
realised, problem = realised_view.load(svc.realised)
if realised is None:
    st.caption(f"Unavailable: {problem}")
elif not any(v.weeks for v in realised.versions):
    st.caption(f"No logged prediction has a known outcome yet. {realised_view.HOW_TO_FILL}")
else:
    metric = st.segmented_control(
        "Realised metric",
        list(realised_view.METRIC_LABELS),
        format_func=realised_view.METRIC_LABELS.get,
        default="f1_score",
        key="trend_realised_metric",
    )
    st.plotly_chart(realised_view.trend_figure(realised, metric or "f1_score"), key="trend_realised_chart")
    st.caption(
        "Solid: realised per week, from logged predictions joined with recorded failures once the "
        f"{realised.horizon_days}-day horizon passed (hollow markers: too few outcomes that week, fewer than "
        "30 or fewer than 3 failures). Dashed: the version's holdout figure when it was trained. "
        "Hover a point for the counts behind it."
    )
