"""Status: the live model, how it became live, its metrics against the gate, the last run, integrity and alerts."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import constants as C
from dashboard import realised_view, widgets
from dashboard import services as svc
from dashboard.formatting import fmt_time, human_age, human_bytes

HOW_LIVE = {"promote": "promoted", "restore": "restored", "external_change": "changed by hand on disk"}

report = st.session_state.get(widgets.STATUS_KEY) or svc.ops().status()
current = report.current

st.title("Status")
if report.database_error:
    widgets.db_needed("Run history, the last gate result and the audit of hand-made changes")

if report.current_error:
    st.error(f"The current model's metadata cannot be read: {report.current_error}")
    st.page_link(widgets.BACKUPS_PAGE, label="Restore a backup", icon=":material/restore:")
elif current is None:
    widgets.no_model("(or wait for the first-run set-up above to finish)")

if current is not None:
    st.subheader(f"Version {current.version}")
    st.caption(
        f"Trained {fmt_time(current.training_date)} ({human_age(current.age())} ago) · "
        f"trigger **{current.trigger or '?'}** · by **{current.actor or '?'}** · data source **{current.data_source}**"
        + (f" · previous version {current.previous_version}" if current.previous_version else "")
    )
    if (event := report.live_event) is not None:
        how = HOW_LIVE.get(event.kind, event.kind)
        st.caption(
            f"Live since {fmt_time(event.at)}: **{how}** by **{event.actor}**"
            + (f" (from v{event.from_version})" if event.from_version else "")
            + (f" · “{event.reason}”" if event.reason else "")
        )
    if (h := report.hold) is not None:
        st.warning(
            f"**Held** since {fmt_time(h.placed_at)} by **{h.placed_by}**"
            + (f": “{h.reason}”" if h.reason else "")
            + ". Training runs that pass the gate wait as candidates until an admin releases the hold.",
            icon=":material/lock:",
        )
    waiting = len(report.candidates)
    if waiting or report.newer_versions:
        parts = [f"{waiting} candidate(s) waiting for approval"] if waiting else []
        if report.newer_versions:
            parts.append("newer versions not live: " + ", ".join(f"v{v}" for v in report.newer_versions))
        st.caption(" · ".join(parts))
        st.page_link("app_pages/candidates.py", label="See Candidates", icon=":material/pending_actions:")
    st.caption(svc.ops().auto_rollback_state().describe())
    if current.data_source == "sample":
        st.warning(
            "**This model was trained on SAMPLE data**, not on the fleet's telemetry. "
            "Its metrics say nothing about real devices: retrain on database telemetry.",
            icon=":material/warning:",
        )

st.subheader("Alerts")
if (board := svc.alert_board()) is not None and board.open:
    firing = len(board.firing)
    st.page_link(
        "app_pages/alerts.py",
        label=f"{firing} alert(s) firing · {len(board.open) - firing} acknowledged or silenced: see Alerts",
        icon=":material/notifications_active:",
    )
shown = [a for a in report.alerts if a.kind != "no_model"]  # the empty state above already says it
if not report.alerts:
    st.success("No alerts: metrics above thresholds, model fresh, files intact, last run fine.")
elif not shown:
    st.caption("Nothing besides the missing model.")
for alert in shown:
    (st.error if alert.level == "red" else st.warning)(alert.message)
    if alert.kind in ("integrity", "external_change") and not report.current_error:
        st.page_link(widgets.BACKUPS_PAGE, label="Pick a complete set to restore on Backups", icon=":material/restore:")

if current is not None:
    st.subheader("Key metrics")
    for col, name in zip(st.columns(len(C.PERFORMANCE_METRICS)), C.PERFORMANCE_METRICS, strict=True):
        value, limit = current.performance.get(name), svc.threshold(name)
        with col:
            if value is None:
                st.metric(name, "–", border=True)
                st.caption("not recorded")
                continue
            delta = f"{value - limit:+.3f} vs {limit:g}" if limit is not None else None
            gate = f"gate: must be > {limit:g}" if limit is not None else "no gate threshold"
            st.metric(name, f"{value:.3f}", delta=delta, border=True, help=gate)
            if limit is None:
                st.caption("no gate threshold")
            elif value > limit:
                st.caption(":green[:material/check_circle: pass]")
            else:
                st.caption(f":red[:material/cancel: **fail**: needs > {limit:g}]")

    realised_view.live_section(*realised_view.load(svc.realised), current)

    st.subheader("Training data and performance")
    stats = current.data_stats
    rng = stats.get("date_range") or {}
    latency = " · ".join(f"{k.replace('_ms', '')} {v:.2f} ms" for k, v in current.latency_ms.items())
    duration = current.training_duration_seconds
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(
        "Samples",
        f"{current.sample_count:,}" if current.sample_count is not None else "?",
        help=f"gate: more than {svc.ops().settings.thresholds.min_samples}",
    )
    c2.metric("Unique devices", stats.get("unique_devices", "?"))
    c3.metric("Training duration", f"{duration:.1f} s" if duration is not None else "?")
    rate = stats.get("positive_rate")
    c4.metric("Positive rate", f"{rate:.1%}" if isinstance(rate, (int, float)) else "?")
    st.caption(
        f"Date range **{str(rng.get('start', '?'))[:10]} → {str(rng.get('end', '?'))[:10]}** "
        f"({stats.get('days_back', '?')} days back) · prediction latency **{latency or 'not measured'}** · "
        f"scikit-learn {current.scikit_learn_version or '?'}"
    )

st.subheader("Last training run")
run = report.last_run
if report.database_error:
    st.caption("Unavailable without the database.")
elif run is None:
    st.caption("No training run recorded yet.")
else:
    newer = current is None or current.training_date is None or run.started_at >= current.training_date
    note = " (newer than the live model, which was kept)" if newer and run.status in ("rejected", "failed") else ""
    params = ", ".join(f"{k}={v}" for k, v in run.params.items())
    st.markdown(
        f"**{run.status}**{note} · started {fmt_time(run.started_at)} by **{run.actor}** ({run.trigger}) · {params}"
    )
    widgets.gate_result(run)
if report.running is not None and (live := svc.get_run(report.running.id)) is not None and not live.finished:
    st.info(
        f"A training run is in progress: {live.stage} ({live.progress:.0%}), "
        f"started by {live.actor} at {fmt_time(live.started_at)}."
    )
    st.page_link(widgets.RETRAIN_PAGE, label="Follow it on Retrain", icon=":material/model_training:")

if current is not None:
    st.subheader("Artifact integrity")
    rows = [
        {
            "file": a.name,
            "present": a.present,
            "size": human_bytes(a.bytes) if a.bytes is not None else "missing",
            "sha256 on disk": f"{a.sha256[:16]}…" if a.sha256 else "",
            "sha256 in metadata": f"{a.expected_sha256[:16]}…" if a.expected_sha256 else "(none recorded)",
            "status": "ok" if a.ok else a.problem,
        }
        for a in report.health.artifacts
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(
        f"Checked {fmt_time(report.health.checked_at)}. "
        "A mismatch means a file was changed or copied by hand: restore a whole backup set."
    )
