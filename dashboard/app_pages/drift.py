"""Drift: how far the last days' telemetry, features and scores moved from the live version's training window."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import constants as C
from core.errors import NotFound, RegistryError
from dashboard import drift_charts, widgets
from dashboard import services as svc
from dashboard.formatting import fmt_time

TOP_OVER_TIME = 5

st.title("Drift")
window = st.number_input(
    "Recent window (days)",
    min_value=1,
    max_value=C.MAX_DRIFT_WINDOW_DAYS,
    value=svc.ops().settings.drift_window_days,
    step=1,
    key="drift_window",
    help="The last this-many days are compared with the days the live version was trained on.",
)
try:
    with st.spinner("Measuring drift..."):
        report = svc.drift(int(window))
except NotFound:
    widgets.no_model("to have a training window to compare with")
    st.stop()
except RegistryError as exc:
    st.warning(exc.message)
    st.stop()

last_day = report.reference_end - pd.Timedelta(days=1)
st.caption(
    f"Version {report.version} was trained on {report.reference_start:%Y-%m-%d} to {last_day:%Y-%m-%d}; "
    f"compared with the last {report.window_days} days ({fmt_time(report.current_start)} to "
    f"{fmt_time(report.current_end)}). PSI below {C.PSI_MODERATE:g} is stable, up to {C.PSI_SIGNIFICANT:g} moderate, "
    f"above significant; KS calls drift at p < {C.KS_ALPHA:g} with a statistic of at least {C.KS_MIN_STATISTIC:g}. "
    f"Measured {fmt_time(report.computed_at)} in {report.seconds:.1f} s."
)
for note in report.notes:
    st.info(note)

counts = report.counts(report.metrics)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Metrics drifted significantly", f"{counts['significant']} of {len(report.metrics)}")
c2.metric("Moderate", counts["moderate"])
c3.metric(
    "Features drifted significantly", f"{report.counts(report.features)['significant']} of {len(report.features)}"
)
c4.metric(
    "Prediction score PSI",
    f"{report.score.psi:.3f}" if report.score else "not measured",
    delta=report.score.band if report.score else None,
    delta_color="off",
    delta_arrow="off",
)


def table(scores: tuple) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "name": s.name,
                "PSI": s.psi,
                "band": s.band,
                "KS statistic": s.ks_statistic,
                "KS p-value": s.ks_pvalue,
                "KS drift": s.ks_drift,
                "median (training)": s.reference_median,
                "median (recent)": s.current_median,
                "values (training / recent)": f"{s.reference_count:,} / {s.current_count:,}",
            }
            for s in scores
        ]
    )


FORMATS = {
    "PSI": st.column_config.NumberColumn(format="%.3f"),
    "KS statistic": st.column_config.NumberColumn(format="%.3f"),
    "KS p-value": st.column_config.NumberColumn(format="%.1e"),
    "median (training)": st.column_config.NumberColumn(format="%.4g"),
    "median (recent)": st.column_config.NumberColumn(format="%.4g"),
}
st.subheader("Most drifted first")
tab_metrics, tab_features = st.tabs(["Raw metrics (readings)", "Model features (per device and day)"])
# Read-only tables keep no key of their own: their containers carry it (for the browser tests).
with tab_metrics, st.container(key="drift_metrics_table"):
    st.dataframe(table(report.metrics), hide_index=True, column_config=FORMATS)
with tab_features, st.container(key="drift_features_table"):
    st.dataframe(table(report.features), hide_index=True, column_config=FORMATS)
if report.score:
    with st.container(key="drift_score_table"):
        st.dataframe(table((report.score,)), hide_index=True, column_config=FORMATS)

st.subheader("Distributions")
names = [s.name for s in report.metrics] + [s.name for s in report.features]
names += [C.DRIFT_SCORE_NAME] if C.DRIFT_SCORE_NAME in report.histograms else []
chosen = st.selectbox("Metric, feature or score", names, index=0, key="drift_variable")
st.plotly_chart(
    drift_charts.distribution(
        chosen,
        report.histograms[chosen],
        f"training ({report.reference_start:%Y-%m-%d} to {last_day:%Y-%m-%d})",
        f"last {report.window_days} days",
    ),
    key="drift_distribution_chart",
)

st.subheader("Drift over time")
ranked = [s.name for s in report.metrics]
shown = st.multiselect("Metrics", ranked, default=ranked[:TOP_OVER_TIME], key="drift_over_time_metrics")
if not report.over_time:
    st.caption("No readings in the last weeks.")
elif shown:
    st.plotly_chart(drift_charts.over_time(report.over_time, shown), key="drift_over_time_chart")
else:
    st.caption("Pick at least one metric.")
