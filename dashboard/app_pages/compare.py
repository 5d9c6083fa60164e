"""Compare: any two versions side by side: metrics, confusion matrices, feature importances, data and parameters."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core import constants as C
from core.errors import RegistryError
from dashboard import same_data, widgets
from dashboard import services as svc
from dashboard.formatting import VERDICT_LABEL, flat_pairs

st.title("Compare versions")
entries = svc.versions()

if not entries:
    widgets.no_model()
    st.stop()
if len(entries) == 1:
    st.info(
        f"Only one version exists so far (v{entries[0].version}). Compare needs two: "
        "the next promoted training run (or a restore) makes a second one."
    )
    st.page_link(widgets.RETRAIN_PAGE, label="Train a new version", icon=":material/model_training:")
    st.stop()

names = [e.version for e in entries]
label = {
    e.version: f"v{e.version}"
    + (" (current)" if e.is_current else "")
    + (f" · {e.trained_at:%Y-%m-%d}" if e.trained_at else "")
    for e in entries
}
current = next((e for e in entries if e.is_current), entries[0])
previous = current.previous_version
default_b = (
    previous if previous in names and previous != current.version else next(n for n in names if n != current.version)
)

left, right = st.columns(2)
a = left.selectbox("Version A", names, index=names.index(current.version), format_func=label.get, key="cmp_a")
b = right.selectbox("Version B (baseline)", names, index=names.index(default_b), format_func=label.get, key="cmp_b")
if a == b:
    st.warning("Pick two different versions.")
    st.stop()
try:
    c = svc.comparison(a, b)
except RegistryError as exc:
    st.error(exc.message)
    st.stop()

st.subheader("Metrics")
rows = []
for name in C.PERFORMANCE_METRICS:
    m = c.metrics[name]
    verdict = VERDICT_LABEL[m.verdict]
    rows.append(
        {
            "metric": name,
            f"A · v{a}": m.current,
            f"B · v{b}": m.previous,
            "difference (A−B)": m.difference,
            "% change": m.percent_change,
            "A vs B": verdict,
            "gate": f"> {t:g}" if (t := svc.threshold(name)) is not None else "–",
        }
    )
st.dataframe(
    pd.DataFrame(rows),
    hide_index=True,
    width="stretch",
    key="cmp_metrics",
    column_config={
        f"A · v{a}": st.column_config.NumberColumn(format="%.4f"),
        f"B · v{b}": st.column_config.NumberColumn(format="%.4f"),
        "difference (A−B)": st.column_config.NumberColumn(format="%+.4f"),
        "% change": st.column_config.NumberColumn(format="%+.2f %%"),
    },
)
if notice := svc.holdout_notice(a, b):
    st.warning(notice, icon=":material/compare_arrows:")
same_data.panel(a, b)
figures = svc.compare_figures(a, b)
st.plotly_chart(figures["bar"], key="cmp_bar")


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return "" if value is None else str(value)


st.subheader("Confusion matrices")
cm_cols = st.columns(2)
for col, version in ((cm_cols[0], a), (cm_cols[1], b)):
    with col:
        if f"cm_{version}" in figures:
            st.plotly_chart(figures[f"cm_{version}"], key=f"cmp_cm_{version}")
        else:
            st.caption(f"v{version} has no confusion matrix in its metadata.")

st.subheader("Feature importance")
if "importances" in figures:
    st.plotly_chart(figures["importances"], key="cmp_imp")
else:
    st.caption("Neither version recorded feature importances.")

st.subheader("Data window, samples and parameters")
only_diff = st.toggle("Only differences", value=False, key="cmp_only_diff")
for title, section in (("Training data", "data"), ("Training parameters", "parameters")):
    pairs = c.differing(section) if only_diff else getattr(c, section)
    st.markdown(f"**{title}**")
    if not pairs:
        st.caption("No differences." if only_diff else "Nothing recorded.")
        continue
    frame = pd.DataFrame(
        [
            {"key": k, f"A · v{a}": _text(x), f"B · v{b}": _text(y), "differs": "≠" if x != y else ""}
            for k, (x, y) in flat_pairs(pairs).items()
        ]
    )
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        key=f"cmp_{section}",
        height=35 * (len(frame) + 1) + 3,  # every row on the page, no scrolling inside the grid
        column_config={  # widths that show each value whole and keep "differs" on screen
            "key": st.column_config.TextColumn(width=widgets.fit_width(frame["key"], header="key", most=260)),
            **{
                col: st.column_config.TextColumn(width=widgets.fit_width(frame[col], header=col, most=330))
                for col in (f"A · v{a}", f"B · v{b}")
            },
        },
    )
