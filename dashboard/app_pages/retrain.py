"""Retrain: start a background training run, follow it live, see its gate result, and the recent runs."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from core import constants as C
from core.domain import RunRecord
from dashboard import identity, widgets
from dashboard import services as svc
from dashboard.formatting import fmt_time

RUN_KEY = "rt_run_id"
ops, actor = svc.ops(), identity.who()
block = svc.write_block_reason(actor, "train")

st.title("Retrain")
widgets.flash("rt")
if ops.database_error:
    widgets.db_needed("Training (telemetry and run history)")
    st.stop()


@st.fragment(run_every="1s")
def live_progress(run_id: str) -> None:
    """Poll the run's row every second; rerun the whole page once when it finishes."""
    run = svc.get_run(run_id)
    if run is None:
        st.warning("The run is not in the history (yet).")
        return
    elapsed = ((run.finished_at or dt.datetime.now(dt.UTC)) - run.started_at).total_seconds()
    box = widgets.progress_box(
        f"Training run {run.id[:8]} by {run.actor}: "
        + (f"{run.stage} · {elapsed:.0f} s" if not run.finished else f"{run.status} after {elapsed:.0f} s"),
        running=not run.finished,
        failed=run.status in ("failed", "rejected"),
    )
    box.progress(min(max(run.progress, 0.0), 1.0), text=f"{run.stage} · {run.progress:.0%} · elapsed {elapsed:.0f} s")
    box.code(widgets.log_lines(run.log) or "waiting for the first log line…", language=None)
    if run.finished and st.session_state.get("rt_seen_finished") != run_id:
        st.session_state["rt_seen_finished"] = run_id
        st.rerun(scope="app")


holder = ops.training_holder()
watching = st.session_state.get(RUN_KEY)
if holder is not None:
    held_run = (holder.details or {}).get("run_id")
    mine = bool(held_run) and held_run == watching
    st.info(
        ("Your run is in progress: " if mine else "Training is already running: ")
        + f"**{holder.what}**, started by **{holder.actor}** at {fmt_time(holder.since)} "
        f"(pid {holder.pid} on {holder.host}). A second run cannot start until it finishes.",
        icon=":material/hourglass_top:",
    )
    if held_run:
        st.session_state[RUN_KEY] = watching = held_run  # so its result stays here once it finishes
else:
    due, why = ops.training_due()
    st.caption(("Due: " if due else "Not due: ") + why + (". Tick “force” to train anyway." if not due else "."))
    with st.form("rt_form", border=True):
        c1, c2 = st.columns([1, 1])
        days = c1.number_input(
            "Days of telemetry (days_back)",
            min_value=1,
            max_value=C.MAX_DAYS_BACK,
            value=C.DEFAULT_DAYS_BACK,
            step=1,
            key="rt_days",
            help=f"1 to {C.MAX_DAYS_BACK} days, ending now",
        )
        force = c2.checkbox(
            "Force (train even if the model is not due)",
            value=False,
            key="rt_force",
            help="Unticked, a model that is not due is left as it is (the run is recorded as skipped).",
        )
        submitted = st.form_submit_button(
            "Start training", type="primary", icon=":material/play_arrow:", disabled=bool(block)
        )
    if block:
        st.caption(f":orange[{block}]")
    if submitted:
        result = svc.start_training(days_back=days, force=force, actor=actor)
        if result.ok:
            st.session_state[RUN_KEY] = result.value
            st.rerun()
        st.error(result.message)

if watching:
    run = svc.get_run(watching)
    if run is not None and not run.finished:
        live_progress(watching)
    elif run is not None:
        st.subheader(f"Result of run {run.id[:8]} ({run.status})")
        params = ", ".join(f"{k}={v}" for k, v in run.params.items())
        st.caption(f"Started {fmt_time(run.started_at)} by {run.actor} · {run.duration_seconds or 0:.1f} s · {params}")
        widgets.gate_result(run)
        with st.expander("Log"):
            st.code(widgets.log_lines(run.log, 200) or "(empty)", language=None)


def _figure(run: RunRecord, value: float | None, fmt: str) -> str:
    """A run's figure as text: "…" while it runs, "—" when it has none (skipped, failed)."""
    if value is not None:
        return fmt.format(value)
    return "…" if run.status == "running" else "—"


st.subheader("Recent runs")
runs = svc.runs(50)
if not runs:
    st.caption("No training runs yet.")
else:
    outcome = {
        "promoted": "promoted",
        "rejected": "REJECTED",
        "failed": "FAILED",
        "skipped": "skipped",
        "unchanged": "unchanged",
        "candidate": "candidate",
        "running": "running…",
    }
    frame = pd.DataFrame(
        [
            {
                "started": r.started_at,
                "outcome": outcome.get(r.status, r.status),
                "version": r.version or "",
                "by": r.actor,
                "trigger": r.trigger,
                "days_back": r.params.get("days_back"),
                "force": "yes" if r.params.get("force") else "no",
                "accuracy": _figure(r, (r.metrics or {}).get("accuracy"), "{:.3f}"),
                "f1_score": _figure(r, (r.metrics or {}).get("f1_score"), "{:.3f}"),
                "duration": _figure(r, r.duration_seconds, "{:.1f} s"),
                "reason": r.error or (r.gate or {}).get("reason") or "",
            }
            for r in runs
        ]
    )
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        key="rt_runs",
        column_config={
            "started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
            "reason": st.column_config.TextColumn(width="large", help="the gate's verdict or the error"),
        },
    )
