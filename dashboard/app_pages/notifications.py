"""Notifications: the webhook targets, the delivery log (newest first), and a signed test message to every target."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import identity, widgets
from dashboard import services as svc

ops, actor = svc.ops(), identity.who()


def fmt_time(value: object) -> str:
    """To the second: retries follow each other within seconds."""
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value else ""


setup = ops.notification_setup()

st.title("Notifications")
st.caption(
    "Webhooks (Slack-compatible JSON, signed with a target's own WEBHOOK_SECRET_<NAME>, else WEBHOOK_SECRET) for "
    "new History events of these kinds: "
    + ", ".join(setup.events)
    + f". Each event is sent once per target, retried with backoff up to {setup.max_attempts} attempts."
)
widgets.flash("nt")

if not setup.targets:
    st.info(
        "No webhook is configured. Set `WEBHOOK_URLS` (comma-separated `name=https://...`) and `WEBHOOK_SECRET` "
        "on the server, then restart it; see the README's Notifications section."
    )
else:
    st.dataframe(
        pd.DataFrame([{"target": t.name, "host": t.host, "signed with": setup.signing(t.name)} for t in setup.targets]),
        hide_index=True,
        width="stretch",
    )
    block = svc.write_block_reason(actor, "send test notifications")
    if st.button(
        "Send test",
        icon=":material/send:",
        disabled=bool(block),
        help=block or "a signed test message, now",
        key="nt_test",
    ):
        widgets.set_flash("nt", svc.send_test_notification(actor=actor))
        st.rerun()
    if block:
        st.caption(block)

if ops.database_error:
    widgets.db_needed("The delivery log")
    st.stop()

st.subheader("Delivery log")
deliveries = ops.notification_log(limit=200)
if not deliveries:
    st.info("Nothing sent yet: deliveries appear here as soon as a notified event is recorded in History.")
    st.stop()
failed = sum(1 for d in deliveries if d.status == "failed")
if failed:
    st.warning(
        f"{failed} of the {len(deliveries)} deliveries below failed after their last attempt: see the error column.",
        icon=":material/error:",
    )
st.dataframe(
    pd.DataFrame(
        [
            {
                "event": f"#{d.event_id} {d.kind}",
                "target": d.target,
                "status": d.status,
                "attempts": d.attempts,
                "HTTP": str(d.http_status or ""),
                "error": d.last_error or "",
                "time": fmt_time(d.delivered_at or d.updated_at),
                "next attempt": fmt_time(d.next_attempt_at) if d.status == "pending" else "",
                "what": d.summary,
            }
            for d in deliveries
        ]
    ),
    hide_index=True,
    width="stretch",
)
