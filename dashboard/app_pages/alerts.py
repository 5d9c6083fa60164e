"""Alerts: what the alert engine reports firing, acknowledged or silenced, and what resolved lately."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import identity, widgets
from dashboard import services as svc
from dashboard.formatting import fmt_time, human_age

SILENCE_FOR: dict[str, int] = {"30 minutes": 30, "1 hour": 60, "4 hours": 240, "1 day": 1440, "1 week": 10080}
STATE_BADGE = {
    "firing": ("Firing", "red"),
    "acknowledged": ("Acknowledged", "orange"),
    "silenced": ("Silenced", "gray"),
}

actor = identity.who()
ack_block = svc.write_block_reason(actor, "acknowledge")
silence_block = svc.write_block_reason(actor, "silence alerts")


def done(result: svc.ActionResult) -> None:
    widgets.set_flash("al", result)
    st.rerun()


@widgets.dialog("Acknowledge this alert?")
def acknowledge_dialog(alert_id: int, rule: str, message: str) -> None:
    st.markdown(f"**{rule}**: {message}")
    st.caption(
        "Acknowledged, it no longer counts as firing (the monitoring scripts stop alerting on it) until its "
        "condition clears; if it comes back later, it fires again."
    )
    with st.form("al_ack_form", border=False):
        reason = st.text_input("Reason (required, recorded in History)", key="al_ack_reason")
        confirmed = st.form_submit_button("Acknowledge", type="primary", icon=":material/done:")
    if confirmed:
        result = svc.acknowledge_alert(alert_id, actor=actor, reason=reason)
        if not result.ok and not reason.strip():
            st.error(result.message)
            return
        done(result)


@widgets.dialog("Silence this alert?")
def silence_dialog(alert_id: int, rule: str, message: str) -> None:
    st.markdown(f"**{rule}**: {message}")
    st.caption("Silenced, it does not count as firing until the silence ends; it still resolves when it clears.")
    with st.form("al_silence_form", border=False):
        length = st.selectbox("For", list(SILENCE_FOR), index=1, key="al_silence_for")
        reason = st.text_input("Reason (required, recorded in History)", key="al_silence_reason")
        confirmed = st.form_submit_button("Silence", type="primary", icon=":material/notifications_off:")
    if confirmed:
        result = svc.silence_alert(alert_id, SILENCE_FOR[str(length)], actor=actor, reason=reason)
        if not result.ok and not reason.strip():
            st.error(result.message)
            return
        done(result)


st.title("Alerts")
widgets.flash("al")
board = svc.alert_board()
if board is None:
    widgets.db_needed("Alerts (their episodes are kept in the database)")
    st.stop()

counts = {state: len(board.in_state(state)) for state in STATE_BADGE}
st.caption(
    f"**{counts['firing']} firing** · {counts['acknowledged']} acknowledged · {counts['silenced']} silenced · "
    + (f"rules evaluated {fmt_time(board.evaluated_at)}" if board.evaluated_at else "rules evaluated by the server")
    + ". Each alert fires once, when its condition starts holding, and resolves when it clears."
)
if not board.open:
    st.success("No open alerts: every rule is clear.", icon=":material/check_circle:")
for alert in board.open:
    state = alert.state(board.now)
    label, color = STATE_BADGE[state]
    with st.container(border=True, key=f"al_alert_{alert.id}"):
        st.badge(f"{label} · {alert.level}", color=color)
        st.markdown(f"**{alert.rule}** · since {fmt_time(alert.fired_at)} ({human_age(board.now - alert.fired_at)})")
        st.write(alert.message)
        if state == "acknowledged":
            when = fmt_time(alert.acknowledged_at)
            st.caption(f"Acknowledged by **{alert.acknowledged_by}** {when}: “{alert.acknowledge_reason}”")
        if alert.silenced_until is not None:
            ended = f"{'until' if state == 'silenced' else 'silence ended'} {fmt_time(alert.silenced_until)}"
            st.caption(f"Silenced by **{alert.silenced_by}** {ended}: “{alert.silence_reason}”")
        c1, c2, _ = st.columns([1, 1, 3])
        can_ack = not ack_block and alert.acknowledged_at is None
        if c1.button("Acknowledge", key=f"al_ack_{alert.id}", icon=":material/done:", disabled=not can_ack):
            acknowledge_dialog(alert.id, alert.rule, alert.message)
        if c2.button(
            "Silence", key=f"al_silence_{alert.id}", icon=":material/notifications_off:", disabled=bool(silence_block)
        ):
            silence_dialog(alert.id, alert.rule, alert.message)
if ack_block or silence_block:
    st.caption(f":orange[{ack_block or silence_block}]")

st.subheader("Recently resolved")
if not board.resolved:
    st.caption("Nothing resolved yet.")
else:
    rows = [
        {
            "alert": a.id,
            "level": a.level,
            "rule": a.rule,
            "fired": fmt_time(a.fired_at),
            "resolved": fmt_time(a.resolved_at),
            "acknowledged by": a.acknowledged_by or "",
            "message": a.message,
        }
        for a in board.resolved
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
