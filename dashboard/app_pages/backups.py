"""Backups: browse backup sets, restore (with a preview of what changes), delete, clean up, download, back up now."""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import streamlit as st

from core.archive import archive_name
from core.errors import RegistryError
from dashboard import identity, same_data, widgets
from dashboard import services as svc
from dashboard.formatting import human_bytes

ops, actor = svc.ops(), identity.who()
block = svc.write_block_reason(actor, "restore")  # restore and back up: operators
admin_block = svc.write_block_reason(actor, "delete backups")  # delete and clean up: admins


SELECTED = "bk_selected"  # the selected set's timestamp: the selection follows the set, not a row position
UNDO = "bk_undo"  # the last restore made on this page, while it can be undone
ACTIONS = "bk_actions"  # actions done on this page: part of the table widget's key


def done(result: svc.ActionResult, *, undo: Any = None) -> None:
    """Show the outcome after a full rerun, with the selection cleared (the rows have changed)."""
    widgets.set_flash("bk", result)
    st.session_state.pop(SELECTED, None)
    st.session_state[ACTIONS] = st.session_state.get(ACTIONS, 0) + 1  # a fresh table widget: no tick left over
    st.session_state[UNDO] = undo
    st.rerun()


def undo_offer() -> None:
    """An Undo button under a restore's result, while the version it restored is still live."""
    restored = st.session_state.get(UNDO)
    if restored is None or not restored.undo_backup:
        return
    live = svc.ops().current()
    if live is None or live.version != restored.restored.version:
        st.session_state.pop(UNDO, None)
        return
    if st.button(
        f"Undo: put v{restored.replaced_version} back",
        icon=":material/undo:",
        key="bk_undo_button",
        disabled=bool(block),
        help=f"Restores backup {restored.undo_backup}, the set that was live before; recorded in History",
    ):
        done(svc.undo_restore(restored, actor=actor))


@widgets.dialog("Restore this backup?", width="large")
def restore_dialog(ts: str) -> None:
    """Show what the restore changes and ask for a reason before doing it."""
    try:
        preview = ops.restore_preview(ts)
    except RegistryError as exc:
        st.error(exc.message)
        return
    change = preview.comparison
    st.markdown(
        f"Live version **v{change.b.version}** → **v{change.a.version}** (from backup `{ts}`). "
        "The current set is backed up first, so this can be undone."
    )
    if change.a.version == change.b.version:
        st.info(
            f"This set holds v{change.a.version}, the version that is already live: the figures below cannot "
            "differ. Restoring it only replaces the live files with this copy (useful when they were damaged "
            "or changed by hand). To go back to another version, pick a set that holds it.",
            icon=":material/info:",
        )
    st.caption(
        f":material/lock: v{change.a.version} will be **held**: training runs that pass the gate wait on "
        "Candidates instead of going live, until an admin releases the hold."
    )
    if preview.training is not None:
        st.warning(
            f"A training run is in flight ({preview.training.describe()}). If you restore now, that run will "
            "not go live: it is kept as a candidate for an admin to approve or discard.",
            icon=":material/model_training:",
        )
    rows = [
        {"metric": n, "now": m.previous, "after restore": m.current, "change": m.difference}
        for n, m in change.metrics.items()
    ]
    number = st.column_config.NumberColumn(format="%.3f")
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        width="stretch",
        column_config={"now": number, "after restore": number, "change": st.column_config.NumberColumn(format="%+.3f")},
    )
    if (scored := svc.same_data_cached(ts, change.b.version)) is not None:
        st.markdown("**Scored on the same window** (from Compare: A is this backup, B the live version)")
        same_data.figures(scored, key="bk_restore_same_data")
    elif notice := ops.holdout_notice(change):
        st.caption(f"{notice} (Compare)")
    with st.form("bk_restore_form", border=False):
        reason = st.text_input(
            "Reason (required, recorded in History)",
            key="bk_restore_reason",
            placeholder="e.g. v1.4.0 misses failures on gateways",
        )
        during = False
        if preview.training is not None:
            during = st.checkbox("Restore anyway: keep the running run as a candidate", key="bk_restore_during")
        confirmed = st.form_submit_button(f"Restore v{change.a.version}", type="primary")
    if confirmed:
        result = svc.restore(ts, actor=actor, reason=reason, during_training=during)
        if not result.ok and (not reason.strip() or (preview.training is not None and not during)):
            st.error(result.message)  # stay in the dialog: the reason or the confirmation is what is missing
            return
        done(result, undo=result.value if result.ok else None)


@widgets.dialog("Delete this backup?")
def delete_dialog(ts: str, version: str) -> None:
    """Confirm removing every file of one backup set."""
    st.markdown(f"Backup `{ts}` (version **v{version}**) will be removed from disk. Its history stays in the database.")
    with st.form("bk_delete_form", border=False):
        reason = st.text_input("Reason (required, recorded in History)", key="bk_delete_reason")
        confirmed = st.form_submit_button("Delete", type="primary")
    if confirmed:
        result = svc.delete_backup(ts, actor=actor, reason=reason)
        if not result.ok and not reason.strip():
            st.error(result.message)
            return
        done(result)


@widgets.dialog("Clean up old backups?")
def cleanup_dialog(keep: int, expected: list[str]) -> None:
    """Confirm the previewed clean-up; the registry refuses if the list changed meanwhile."""
    st.markdown(f"Keep the newest **{keep}** backup sets and remove these **{len(expected)}**:")
    st.code("\n".join(expected[:200]) + ("\n…" if len(expected) > 200 else ""), language=None)
    with st.form("bk_cleanup_form", border=False):
        reason = st.text_input("Reason (required, recorded in History)", key="bk_cleanup_reason")
        confirmed = st.form_submit_button(f"Remove {len(expected)} backup sets", type="primary")
    if confirmed:
        result = svc.cleanup(keep, actor=actor, expected=expected, reason=reason)
        if not result.ok and not reason.strip():
            st.error(result.message)
            return
        done(result)


st.title("Backups")
widgets.flash("bk")
undo_offer()
if ops.database_error:
    st.warning(
        f"The database is unreachable ({ops.database_error}): restore, delete, clean-up and backup wait for it, "
        "because every change is recorded in History."
    )
if block:
    st.info(f"Restore, delete, clean-up and backup are disabled: {block}", icon=":material/lock:")
elif admin_block:
    st.info(f"Delete and clean-up are disabled: {admin_block}", icon=":material/lock:")

usage = svc.disk_usage()
table = svc.backups_table()
u1, u2, u3, u4, u5 = st.columns(5)
u1.metric("Backup sets", len(table))
u2.metric("Backups use", human_bytes(usage.backup_bytes))
u3.metric("Current set", human_bytes(usage.current_bytes))
u4.metric("Models directory", human_bytes(usage.total_bytes))
u5.metric("Free on disk", human_bytes(usage.free_bytes))

if st.button("Back up now", icon=":material/save:", disabled=bool(block), key="bk_backup_now", help=block):
    done(svc.backup_now(actor=actor))

if table.empty:
    st.info("No backup sets yet. One is made automatically before every promotion and restore, or press “Back up now”.")
    st.stop()

st.caption("Select a row to restore, delete or download that set.")
# The table's widget is keyed by the sets it lists: when a set is added or removed (here or elsewhere), the
# selection is placed again on the set that was selected, by its timestamp, never left on a row position.
listed = [str(t) for t in table["timestamp"]]
picked = st.session_state.get(SELECTED)
with st.container(key="bk_table"):
    event = st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key=f"bk_rows_{st.session_state.get(ACTIONS, 0)}_" + hashlib.sha1("\n".join(listed).encode()).hexdigest()[:12],
        selection_default={"selection": {"rows": [listed.index(picked)]}} if picked in listed else None,
        column_config={
            "created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
            **{
                m: st.column_config.NumberColumn(format="%.3f") for m in ("accuracy", "precision", "recall", "f1_score")
            },
            "complete": st.column_config.CheckboxColumn(),
        },
    )
rows = event.selection.rows if event is not None else []
st.session_state[SELECTED] = listed[rows[0]] if rows else None
if rows:
    row = table.iloc[rows[0]]
    ts, version = str(row["timestamp"]), str(row["version"])
    restorable = bool(row["complete"]) and row["integrity"] in ("ok", "unverified")
    st.markdown(
        f"**Selected:** `{ts}` · v{version} · {row['size']} · integrity **{row['integrity']}**"
        + (f" · {row['problems']}" if row["problems"] else "")
    )
    actions = st.container(horizontal=True)
    if actions.button(
        "Restore…",
        type="primary",
        icon=":material/restore:",
        disabled=bool(block) or not restorable,
        key="bk_restore",
        help=block or (None if restorable else "incomplete or damaged sets cannot be restored"),
    ):
        restore_dialog(ts)
    if actions.button(
        "Delete…", icon=":material/delete:", disabled=bool(admin_block), key="bk_delete", help=admin_block
    ):
        delete_dialog(ts, version)
    actions.download_button(
        "Download .tar.gz",
        data=lambda: ops.archive(ts)[1],
        file_name=archive_name(ts, version if version != "?" else None),
        mime="application/gzip",
        icon=":material/download:",
        on_click="ignore",
        key="bk_download",
    )

st.subheader("Clean up")
keep = int(
    st.number_input(
        "Keep the newest",
        min_value=0,
        max_value=10_000,
        value=ops.settings.keep_backups,
        step=1,
        key="bk_keep",
        width=220,
        help="The guide's `ls -t *.backup_* | tail -n +11 | xargs rm -f` keeps 10",
    )
)
plan = svc.cleanup_plan(keep)
if not plan.timestamps:
    st.caption(f"Nothing to remove: there are {len(table)} backup sets, keeping {keep}.")
else:
    n = len(plan.timestamps)
    st.markdown(
        f"Keeping the newest {keep} would remove **{n}** sets ({human_bytes(plan.size_bytes)}), "
        f"from `{plan.timestamps[0]}` back to `{plan.timestamps[-1]}`."
    )
    if st.button(f"Clean up {n} sets…", disabled=bool(admin_block), key="bk_cleanup", help=admin_block):
        cleanup_dialog(keep, plan.timestamps)
