"""Candidates: the hold on the live version, and gate-passing runs waiting to be approved or discarded."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import constants as C
from core.errors import RegistryError
from dashboard import identity, realised_view, widgets
from dashboard import services as svc
from dashboard.formatting import fmt_time, human_age

ops, actor = svc.ops(), identity.who()
hold_block = svc.write_block_reason(actor, "manage holds")
approve_block = svc.write_block_reason(actor, "approve candidates")


def done(result: svc.ActionResult) -> None:
    widgets.set_flash("cd", result)
    st.session_state.pop("cd_table", None)
    st.rerun()


@widgets.dialog("Hold the live version?")
def hold_dialog(version: str) -> None:
    st.markdown(
        f"While **v{version}** is held, a training run that passes the gate (scheduled, API or dashboard) is kept "
        "here as a candidate instead of going live."
    )
    with st.form("cd_hold_form", border=False):
        reason = st.text_input("Reason (required, recorded in History)", key="cd_hold_reason")
        confirmed = st.form_submit_button(f"Hold v{version}", type="primary", icon=":material/lock:")
    if confirmed:
        result = svc.place_hold(actor=actor, reason=reason)
        if not result.ok and not reason.strip():
            st.error(result.message)
            return
        done(result)


@widgets.dialog("Release the hold?")
def release_dialog(version: str) -> None:
    st.markdown(
        f"After this, the next training run that passes the gate replaces **v{version}** "
        + ("(PROMOTION=manual: it still waits here for approval)." if ops.settings.promotion == "manual" else "")
    )
    with st.form("cd_release_form", border=False):
        reason = st.text_input("Reason (required, recorded in History)", key="cd_release_reason")
        confirmed = st.form_submit_button("Release hold", type="primary", icon=":material/lock_open:")
    if confirmed:
        result = svc.release_hold(actor=actor, reason=reason)
        if not result.ok and not reason.strip():
            st.error(result.message)
            return
        done(result)


@widgets.dialog("Approve this candidate?", width="large")
def approve_dialog(candidate_id: str) -> None:
    st.markdown(
        f"Candidate `{candidate_id}` becomes the live version (the current set is backed up first, so this can "
        "be undone with a restore). Any hold is released."
    )
    with st.form("cd_approve_form", border=False):
        reason = st.text_input("Reason (recorded in History)", key="cd_approve_reason")
        confirmed = st.form_submit_button("Approve and promote", type="primary", icon=":material/check:")
    if confirmed:
        done(svc.approve_candidate(candidate_id, actor=actor, reason=reason))


@widgets.dialog("Discard this candidate?")
def discard_dialog(candidate_id: str) -> None:
    st.markdown(f"Candidate `{candidate_id}` and its files are removed; its run stays in the run history.")
    with st.form("cd_discard_form", border=False):
        reason = st.text_input("Reason (recorded in History)", key="cd_discard_reason")
        confirmed = st.form_submit_button("Discard", icon=":material/delete:")
    if confirmed:
        done(svc.discard_candidate(candidate_id, actor=actor, reason=reason))


st.title("Candidates")
widgets.flash("cd")
report = st.session_state.get(widgets.STATUS_KEY) or ops.status()
if report.database_error:
    widgets.db_needed("Holds and approvals (they are recorded in the audit trail)")

st.subheader("Hold")
manual = ops.settings.promotion == "manual"
if report.hold is not None:
    h = report.hold
    st.warning(
        f"**v{h.version} is held** by **{h.placed_by}** since {fmt_time(h.placed_at)} "
        f"({human_age(report.checked_at - h.placed_at)})" + (f": “{h.reason}”" if h.reason else "") + ". "
        "Training runs that pass the gate wait below instead of going live.",
        icon=":material/lock:",
    )
    if st.button("Release hold", key="cd_release", icon=":material/lock_open:", disabled=bool(hold_block)):
        release_dialog(h.version)
elif report.current is not None:
    st.caption(
        f"Nothing is held: the next training run that passes the gate replaces v{report.current.version}"
        + (" once an admin approves it (PROMOTION=manual)." if manual else ".")
    )
    if st.button("Hold the live version", key="cd_hold", icon=":material/lock:", disabled=bool(hold_block)):
        hold_dialog(report.current.version)
if hold_block:
    st.caption(f":orange[{hold_block}]")
if report.newer_versions:
    st.caption(f"Promoted before but not live now: {', '.join('v' + v for v in report.newer_versions)}.")

st.subheader("Waiting for approval")
candidates = list(report.candidates)
if not candidates:
    st.info(
        "No candidates waiting. A training run that passes the gate waits here instead of going live while the "
        "live version is held (every restore holds it) or when the server runs with PROMOTION=manual.",
        icon=":material/inbox:",
    )
    st.stop()

shadows = svc.shadow_figures()
rows = [
    {
        "candidate": c.id,
        "kept": fmt_time(c.kept_at),
        "trained by": c.metadata.get("actor") or "?",
        "trigger": c.metadata.get("trigger") or "?",
        **{m: c.performance.get(m) for m in C.PERFORMANCE_METRICS},
        "why kept": c.kept_because,
        **realised_view.shadow_columns(shadows.get(c.id)),
    }
    for c in candidates
]
number = st.column_config.NumberColumn(format="%.3f")
picked = st.dataframe(
    pd.DataFrame(rows),
    hide_index=True,
    width="stretch",
    key="cd_table",
    on_select="rerun",
    selection_mode="single-row",
    column_config={m: number for m in (*C.PERFORMANCE_METRICS, "shadow f1", "live f1 (same days)", "shadow auc")},
)
st.caption(
    "Shadow: the daily fleet scoring (`scripts/score_fleet.py`) scores each candidate beside the live version "
    "without serving it; its realised figures are over the device-days both scored whose outcome is known."
)
selected = picked.selection.rows if picked is not None else []
if not selected:
    st.caption("Select a candidate to compare it with the live version, see its gate checks, approve or discard it.")
    st.stop()

chosen = candidates[selected[0]]
st.subheader(f"Candidate {chosen.id}")
try:
    change = ops.compare_candidate(chosen.id)
except RegistryError as exc:
    st.caption(exc.message)
else:
    st.markdown(f"Compared with the live **v{change.b.version}** (same gate, same thresholds):")
    compared = [
        {"metric": n, "live": m.previous, "candidate": m.current, "change": m.difference}
        for n, m in change.metrics.items()
    ]
    st.dataframe(
        pd.DataFrame(compared),
        hide_index=True,
        width="stretch",
        column_config={
            "live": number,
            "candidate": number,
            "change": st.column_config.NumberColumn(format="%+.3f"),
        },
    )
frame = widgets.checks_frame(chosen.gate)
if not frame.empty:
    st.caption("Validation gate checks")
    st.dataframe(frame, hide_index=True, width="stretch")
c1, c2, _ = st.columns([1, 1, 3])
if c1.button("Approve", key="cd_approve", type="primary", icon=":material/check:", disabled=bool(approve_block)):
    approve_dialog(chosen.id)
if c2.button("Discard", key="cd_discard", icon=":material/delete:", disabled=bool(approve_block)):
    discard_dialog(chosen.id)
if approve_block:
    st.caption(f":orange[{approve_block}]")
