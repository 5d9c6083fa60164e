"""History: the audit trail of registry events (who, when, what, from/to, reason), filterable."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import streamlit as st

from core import constants as C
from dashboard import services as svc
from dashboard import widgets

KIND_LABEL = {
    "promote": "promote",
    "restore": "restore",
    "delete_backup": "delete backup",
    "cleanup": "clean-up",
    "external_change": "change by hand",
    "backup": "backup",
    "access": "accounts and keys",
    "hold": "registry hold",
    "candidate": "candidate",
    "reject": "rejected run",
    "notification_test": "test notification",
}

ops = svc.ops()
st.title("History")
if ops.database_error:
    widgets.db_needed("The audit trail (it lives in the database so it survives backup clean-up)")
    st.stop()

f1, f2, f3, f4 = st.columns([2, 1, 1, 1])
kinds = f1.multiselect(
    "Kind",
    list(C.EVENT_KINDS),
    format_func=lambda kind: KIND_LABEL.get(kind, kind),
    key="hist_kinds",
    placeholder="all kinds",
)
actor = f2.selectbox("Actor", ["(anyone)", *svc.actors()], key="hist_actor")
since = f3.date_input("From", value=None, key="hist_since")
until = f4.date_input("To", value=None, key="hist_until")

since_dt = dt.datetime.combine(since, dt.time.min, tzinfo=dt.UTC) if since else None
found = svc.events(kinds=tuple(kinds), actor=None if actor == "(anyone)" else actor, since=since_dt)
if until:
    end = dt.datetime.combine(until, dt.time.max, tzinfo=dt.UTC)
    found = [e for e in found if e.at <= end]

if not found:
    st.info(
        "No registry events match these filters."
        if (kinds or since or until or actor != "(anyone)")
        else "No registry events yet: promotions, restores, deletions, clean-ups and hand-made changes appear here."
    )
    st.stop()


def _details(details: dict) -> str:
    """The event's details in one line, without the full model metadata a promotion carries."""
    shown = {k: v for k, v in (details or {}).items() if k != "metadata" and v not in (None, "", [], {})}
    return ", ".join(
        f"{k}={json.dumps(v, default=str) if isinstance(v, (dict, list)) else v}" for k, v in shown.items()
    )


frame = pd.DataFrame(
    [
        {
            "when": e.at,
            "what": KIND_LABEL.get(e.kind, e.kind),
            "who": e.actor,
            "from": e.from_version or "",
            "to": e.to_version or "",
            "reason": e.reason or "",
            "details": _details(e.details),
        }
        for e in found
    ]
)
st.caption(
    f"{len(frame)} event(s), newest first"
    + (f" (capped at {svc.HISTORY_LIMIT})" if len(found) >= svc.HISTORY_LIMIT else "")
)
st.dataframe(
    frame,
    hide_index=True,
    width="stretch",
    key="hist_table",
    column_config={
        "when": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
        **{
            col: st.column_config.TextColumn(width=widgets.fit_width(frame[col], header=col, most=360))
            for col in ("what", "who", "from", "to")
        },
        "reason": st.column_config.TextColumn(width="large"),
        "details": st.column_config.TextColumn(width="large"),
    },
)
st.download_button(
    "Download as CSV",
    data=frame.to_csv(index=False),
    file_name="registry_events.csv",
    mime="text/csv",
    key="hist_csv",
    on_click="ignore",
)
