"""Compare's "score both on the same window" panel and the figures it shows (also in the restore dialog)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core import constants as C
from core.errors import DataError, RegistryError
from dashboard import services as svc
from dashboard.formatting import VERDICT_LABEL

REQUEST_KEY = "cmp_sd_request"


def figures(scored: Any, *, key: str) -> None:
    """The window, its sample count and both models' figures on it."""
    st.markdown(
        f"**Window** {scored.window.describe()} · **{scored.sample_count:,} samples** "
        f"({scored.positives:,} with a recorded failure within {scored.horizon_days} days, {scored.devices} devices)"
    )
    a, b = scored.a.ref.label, scored.b.ref.label
    rows = [
        {
            "metric": name,
            f"A · {a}": m.current,
            f"B · {b}": m.previous,
            "difference (A−B)": m.difference,
            "A vs B": VERDICT_LABEL[m.verdict],
        }
        for name, m in scored.metrics.items()
    ]
    number = st.column_config.NumberColumn(format="%.4f")
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        width="stretch",
        key=key,
        column_config={
            f"A · {a}": number,
            f"B · {b}": number,
            "difference (A−B)": st.column_config.NumberColumn(format="%+.4f"),
        },
    )
    if scored.identical_artifact:
        st.caption("Both sides are the same model file (identical checksum): identical figures are expected.")
    st.caption(
        f"Computed {scored.computed_at:%Y-%m-%d %H:%M:%S} UTC in {scored.seconds:.2f} s"
        + (" · from the cache (same files, same telemetry)" if scored.cached else "")
    )


def panel(a: str, b: str) -> None:
    """Pick a window (default: the most recent complete one), score A and B on it, show the figures."""
    st.subheader("Scored on the same window")
    st.caption(
        "Loads both versions' model files (checked against their checksums and the registry's records) and scores "
        f"them on the same labelled device-days: labels are failures recorded within {C.DEFAULT_HORIZON_DAYS} days."
    )
    try:
        default = svc.same_data_window()
    except DataError as exc:  # no telemetry yet: nothing to score on, nothing wrong
        st.info(exc.message)
        return
    except RegistryError as exc:
        st.error(exc.message)
        return
    candidates = svc.candidate_ids()
    sides = [a, *(f"candidate:{c}" for c in candidates)]
    with st.form("cmp_sd_form", border=False):
        row = st.columns([2, 1, 1])
        left = row[0].selectbox(
            "A", sides, format_func=lambda s: s if s.startswith("candidate:") else f"v{s}", key="cmp_sd_a"
        )
        start = row[1].date_input("Window start", value=default.start, max_value=default.end, key="cmp_sd_start")
        end = row[2].date_input("Window end", value=default.end, max_value=default.end, key="cmp_sd_end")
        asked = st.form_submit_button("Score both on the same window", icon=":material/balance:", key="cmp_same_data")
    if asked:
        st.session_state[REQUEST_KEY] = (left, b, start, end)
    request = st.session_state.get(REQUEST_KEY)
    if request is None or request[1] != b or request[0] not in sides:
        return
    try:
        with st.spinner("Scoring both models on the window…"):
            scored = svc.same_data(*request)
    except RegistryError as exc:
        st.error(exc.message)
        return
    figures(scored, key="cmp_sd_metrics")
