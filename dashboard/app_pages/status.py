"""Status: the live model, its metrics against the gate, its data, the last run's gate, integrity and alerts."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core import constants as C
from dashboard import services as svc
from dashboard import widgets

ctx = svc.context()
view = st.session_state.get(widgets.VIEW_KEY) or svc.status_view(ctx)
current = view.current

st.title("Status")
if ctx.db is None:
    widgets.db_needed(ctx, "Run history, the last gate result and the audit of hand-made changes")

if view.current_error:
    st.error(f"The current model's metadata cannot be read: {view.current_error}")
    st.page_link(widgets.BACKUPS_PAGE, label="Restore a backup", icon=":material/restore:")
elif current is None:
    widgets.no_model("(or wait for the first-run set-up above to finish)")

if current is not None:
    meta = current.metadata
    st.subheader(f"Version {current.version}")
    st.caption(
        f"Trained {svc.fmt_time(current.training_date)} ({svc.human_age(current.age())} ago) · "
        f"trigger **{current.trigger or '?'}** · by **{current.actor or '?'}** · data source **{current.data_source}**"
        + (f" · previous version {meta['previous_version']}" if meta.get("previous_version") else "")
    )
    if current.data_source == "sample":
        st.warning("**This model was trained on SAMPLE data**, not on the fleet's telemetry. Its metrics say nothing about real devices: retrain on database telemetry.", icon=":material/warning:")

st.subheader("Alerts")
shown = [a for a in view.alerts if a.kind != "no_model"]  # the empty state above already says it
if not view.alerts:
    st.success("No alerts: metrics above thresholds, model fresh, files intact, last run fine.")
elif not shown:
    st.caption("Nothing besides the missing model.")
for alert in shown:
    (st.error if alert.level == "red" else st.warning)(alert.message)

if current is not None:
    st.subheader("Key metrics")
    cols = st.columns(len(C.PERFORMANCE_METRICS))
    for col, name in zip(cols, C.PERFORMANCE_METRICS):
        value, limit = current.performance.get(name), svc.threshold(ctx, name)
        with col:
            if value is None:
                st.metric(name, "–", border=True)
                st.caption("not recorded")
                continue
            delta = f"{value - limit:+.3f} vs {limit:g}" if limit is not None else None
            st.metric(name, f"{value:.3f}", delta=delta, border=True, help=f"gate: must be > {limit:g}" if limit is not None else "no gate threshold")
            if limit is None:
                st.caption("no gate threshold")
            else:
                st.caption(":green[:material/check_circle: pass]" if value > limit else f":red[:material/cancel: **fail**: needs > {limit:g}]")

    st.subheader("Training data and performance")
    stats = current.data_stats
    rng = stats.get("date_range") or {}
    latency = meta.get("prediction_latency_ms")
    if isinstance(latency, dict):
        latency_text = " · ".join(f"{k.replace('_ms', '')} {v:.2f} ms" for k, v in latency.items() if isinstance(v, (int, float)))
    else:
        latency_text = f"{latency:.2f} ms" if isinstance(latency, (int, float)) else "not measured"
    samples = stats.get("sample_count")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Samples", f"{samples:,}" if isinstance(samples, int) else "?",
              help=f"gate: more than {ctx.settings.thresholds.min_samples}")
    c2.metric("Unique devices", stats.get("unique_devices", "?"))
    c3.metric("Training duration", f"{meta['training_duration_seconds']:.1f} s" if isinstance(meta.get("training_duration_seconds"), (int, float)) else "?")
    c4.metric("Positive rate", f"{stats['positive_rate']:.1%}" if isinstance(stats.get("positive_rate"), (int, float)) else "?")
    st.caption(
        f"Date range **{str(rng.get('start', '?'))[:10]} → {str(rng.get('end', '?'))[:10]}** ({stats.get('days_back', '?')} days back) · "
        f"prediction latency **{latency_text}** · scikit-learn {meta.get('scikit_learn_version', '?')}"
    )

st.subheader("Last training run")
run = view.last_run
if ctx.db is None:
    st.caption("Unavailable without the database.")
elif run is None:
    st.caption("No training run recorded yet.")
else:
    newer = current is None or current.training_date is None or run.started_at >= current.training_date
    note = " (newer than the live model, which was kept)" if newer and run.status in ("rejected", "failed") else ""
    params = ", ".join(f"{k}={v}" for k, v in run.params.items())
    st.markdown(f"**{run.status}**{note} · started {svc.fmt_time(run.started_at)} by **{run.actor}** ({run.trigger}) · {params}")
    widgets.gate_result(run)
if view.running is not None and (live := svc.get_run(ctx, view.running.id)) is not None and not live.finished:
    st.info(f"A training run is in progress: {live.stage} ({live.progress:.0%}), started by {live.actor} at {svc.fmt_time(live.started_at)}.")
    st.page_link(widgets.RETRAIN_PAGE, label="Follow it on Retrain", icon=":material/model_training:")

if current is not None:
    st.subheader("Artifact integrity")
    rows = [
        {
            "file": a.name,
            "present": a.present,
            "size": svc.human_bytes(a.bytes) if a.bytes is not None else "missing",
            "sha256 on disk": f"{a.sha256[:16]}…" if a.sha256 else "",
            "sha256 in metadata": f"{a.expected_sha256[:16]}…" if a.expected_sha256 else "(none recorded)",
            "status": "ok" if a.ok else a.problem,
        }
        for a in view.health.artifacts
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(f"Checked {svc.fmt_time(view.health.checked_at)}. A mismatch means a file was changed or copied by hand: restore a whole backup set.")
