"""Shared Streamlit pieces: the sidebar, first-run progress, flash messages, gate results and empty states."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from core.identity import Principal
from core.status import StatusReport
from dashboard import bootstrap, identity
from dashboard import services as svc
from dashboard.formatting import fmt_time, human_age

LEVEL_BADGE: dict[str, tuple[str, str]] = {
    "green": ("Healthy", "green"),
    "amber": ("Needs attention", "orange"),
    "red": ("Action needed", "red"),
}
STATUS_KEY = "app_status_report"
DIALOG_KEY = "app_dialog_open"  # a dialog is open: an app rerun would close it under the operator
STAMPS_KEY = "app_change_stamps"  # what the rendered page was read from
WATCH_EVERY = "2s"
RETRAIN_PAGE = "app_pages/retrain.py"
BACKUPS_PAGE = "app_pages/backups.py"


def sidebar(who: Principal) -> StatusReport:
    """The live model's version, age and health light, and who is operating with which role."""
    report = svc.ops().status()
    st.session_state[STATUS_KEY] = report  # the Status page reuses it within the same run
    with st.sidebar:
        st.caption("LIVE MODEL")
        if report.current is not None:
            st.markdown(f"### v{report.current.version}")
            st.caption(f"trained {human_age(report.current.age())} ago · {fmt_time(report.current.training_date)}")
        elif report.current_error:
            st.markdown("### unreadable")
        else:
            st.markdown("### no model yet")
        if report.current is None and not report.current_error and setting_up():
            st.badge("Setting up: first run", color="blue", icon=":material/hourglass_top:")
        else:
            label, color = LEVEL_BADGE[report.level]
            st.badge(label, color=color, icon=":material/circle:")
        if report.alerts:
            st.caption(f"{len(report.alerts)} problem(s): {report.alerts[0].message}")
        board = svc.alert_board()
        if board is not None and board.firing:
            st.caption(f":red[:material/notifications_active: {len(board.firing)} alert(s) firing: see Alerts.]")
        if report.hold is not None:
            h = report.hold
            st.caption(
                f":orange[:material/lock: **Held** v{h.version} by {h.placed_by} since {h.placed_at:%Y-%m-%d %H:%M} "
                "UTC]" + (f" · “{h.reason}”" if h.reason else "")
            )
        if report.candidates:
            st.caption(f":blue[{len(report.candidates)} candidate(s) waiting for approval: see Candidates.]")
        if report.running is not None:
            st.caption(
                f":blue[Training running since {report.running.started_at:%H:%M} UTC, "
                f"started by {report.running.actor}: see Retrain.]"
            )
        st.divider()
        if who.via == "local":
            st.caption(
                f"**Local mode**: no login is configured, so the server listens on this machine only and you act "
                f"as **{who.name}** (every permission). `manage_users.py add NAME --role admin` turns logins on."
            )
        else:
            st.caption(f"Signed in as **{who.name}** · role **{who.role}**")
            identity.logout_control(who)
    return report


def bootstrap_banner() -> None:
    """Progress of the first-run set-up (seeding, first training) above the page, polled every second."""
    state = bootstrap.ensure_bootstrap(svc.ops())
    if state is None:
        return
    if state.active:
        _bootstrap_progress()
    elif state.stage == "failed" and not st.session_state.get("app_boot_dismissed"):
        st.error(f"First-run set-up did not finish: {state.message}. You can seed and train by hand: see Retrain.")
        if st.button("Dismiss", key="app_boot_dismiss"):
            st.session_state["app_boot_dismissed"] = True
            st.rerun()


def setting_up() -> bool:
    """The first-run set-up (seeding, first training) is under way in this server."""
    state = bootstrap.ensure_bootstrap(svc.ops())
    return state is not None and state.active


@st.fragment(run_every="1s")
def _bootstrap_progress() -> None:
    state = bootstrap.ensure_bootstrap(svc.ops())
    if state is None or not state.active:
        st.rerun(scope="app")
    box = progress_box(f"First run: setting up ({state.stage})", running=True)
    box.write(state.message)
    run = svc.get_run(state.run_id) if state.run_id else None
    if run is not None:
        box.progress(min(max(run.progress, 0.0), 1.0), text=f"{run.stage} · {run.progress:.0%}")
        for line in list(run.log)[-5:]:
            box.caption(_log_line(line))


def progress_box(label: str, *, running: bool, failed: bool = False) -> Any:
    """An expanded status box that says running (spinner, "…") until the work is done.

    Used without `with`: leaving a `with st.status(...)` block marks the box complete (a tick) even while
    the work it shows is still running.
    """
    state = "running" if running else ("error" if failed else "complete")
    return st.status(label + ("…" if running else ""), state=state, expanded=True)


def _log_line(line: Any) -> str:
    if isinstance(line, dict):
        return f"{line.get('at', '')} [{line.get('stage', '')}] {line.get('message', '')}"
    return str(line)


def log_lines(lines: Any, limit: int = 15) -> str:
    """A run's last log lines as text."""
    return "\n".join(_log_line(x) for x in list(lines or [])[-limit:])


def set_flash(prefix: str, result: svc.ActionResult) -> None:
    """Remember an action's outcome to show after the rerun."""
    st.session_state[f"{prefix}_flash"] = (result.ok, result.message)


def flash(prefix: str) -> None:
    """Show (once) the outcome of the last action on this page."""
    item = st.session_state.pop(f"{prefix}_flash", None)
    if item:
        (st.success if item[0] else st.error)(item[1])


CHAR_PX = 7.6  # the grid's 14 px font, an average character's width
CELL_PADDING_PX = 28


def fit_width(values: Any, *, header: str = "", least: int = 60, most: int = 900) -> int:
    """A column width in pixels that shows the longest value (and the header) whole, within [least, most].

    The grid does not wrap text: a cut identity (`dashbc…`) or a date range cut before the part that
    differs is worse than a wider column.
    """
    longest = max([len(str(v)) for v in values if v is not None] + [len(header)], default=0)
    return int(min(most, max(least, longest * CHAR_PX + CELL_PADDING_PX)))


def checks_frame(gate: dict[str, Any] | None) -> pd.DataFrame:
    """A gate's checks as rows: check, passed, value, threshold, detail (tolerant of list or mapping shapes)."""
    checks = (gate or {}).get("checks") or []
    if isinstance(checks, dict):
        checks = [{"name": k, **(v if isinstance(v, dict) else {"passed": bool(v)})} for k, v in checks.items()]
    rows = []
    for c in checks:
        if not isinstance(c, dict):
            rows.append({"check": str(c), "passed": None, "value": None, "threshold": None, "detail": ""})
            continue
        passed = c.get("passed", c.get("ok", c.get("valid")))
        rows.append(
            {
                "check": str(c.get("name") or c.get("check") or "?"),
                "passed": "pass" if passed else ("FAIL" if passed is not None else "–"),
                "value": _short(c.get("value", c.get("actual"))),
                "threshold": _short(c.get("threshold", c.get("expected"))),
                "detail": str(c.get("message") or c.get("detail") or c.get("reason") or ""),
            }
        )
    return pd.DataFrame(rows, columns=["check", "passed", "value", "threshold", "detail"])


def _short(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{int(value):,}" if value.is_integer() else f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def gate_result(run: Any) -> None:
    """A finished run's outcome and each gate check."""
    gate = run.gate or {}
    if run.status == "promoted":
        st.success(f"Promoted version {run.version}: {gate.get('reason') or 'all checks passed'}")
    elif run.status == "rejected":
        st.error(f"Rejected by the validation gate: {gate.get('reason') or 'see the checks'}")
    elif run.status == "failed":
        st.error(f"Failed: {run.error or 'see the log'}")
    elif run.status == "unchanged":
        st.info(
            "Unchanged: the new model is byte-identical to the live one (same data and parameters), "
            "so no version or backup was made. Train on more recent data (days_back) to get a different model."
        )
    elif run.status == "candidate":
        st.info(f"Kept as a candidate: {log_lines(run.log, 1) or 'see Candidates'}")
    elif run.status == "skipped":
        st.info(f"Skipped: {log_lines(run.log, 1) or 'the model is not due for retraining'}")
    frame = checks_frame(gate)
    if not frame.empty:
        st.dataframe(
            frame,
            hide_index=True,
            width="stretch",
            column_config={"detail": st.column_config.TextColumn(width=fit_width(frame["detail"], header="detail"))},
        )


def no_model(extra: str = "") -> None:
    """The empty state when no model has been trained yet, with a link to Retrain.

    While the first-run set-up is making the first model, it says so instead of asking for action.
    """
    if setting_up():
        st.info(
            "The first model is being made (simulated fleet, then a first training run): follow it above. "
            "This page fills in when it is done.",
            icon=":material/hourglass_top:",
        )
        return
    st.info(
        "No model has been trained yet. Start the first training run on the Retrain page"
        + (f" {extra}" if extra else "")
        + "."
    )
    st.page_link(RETRAIN_PAGE, label="Go to Retrain", icon=":material/model_training:")


def db_needed(what: str) -> None:
    """Say that a part of the page needs the database, and why it is unavailable."""
    st.warning(
        f"{what} needs the database, which is unreachable: {svc.ops().database_error or 'unknown error'}. "
        "Status, Compare and Backups still show the models directory; "
        "fix DATABASE_URL or start the database server."
    )


# ------------------------------------------------------------------ live refresh
def change_stamps() -> tuple[Any, ...]:
    """Cheap values that change whenever anything a page shows changes: files, current set, history, runs.

    One stat of the models directory, one of the current set's files and one small query; a database that
    cannot answer counts as one state (not a new one on every call).
    """
    stamps = svc.ops().stamps()
    history = stamps.history if stamps.history[:1] != ("db-error",) else ("db-error",)
    return (stamps.directory, stamps.current_set, history)


def page_reading(stamps: tuple[Any, ...]) -> None:
    """Remember the stamps this run's page is read from, and that no dialog is open yet in this run."""
    st.session_state[STAMPS_KEY] = stamps
    st.session_state[DIALOG_KEY] = False


@st.fragment(run_every=WATCH_EVERY)
def watch_changes() -> None:
    """Rerun the page when a change made elsewhere (another operator, the CLI, cron) alters what it shows.

    Every 2 s only the stamps are compared, so an idle page costs one stat and one query; the whole page
    reruns only on a change, and never while a dialog is open (the rerun would close it). The dialog's
    page catches up as soon as it closes.
    """
    if st.session_state.get(DIALOG_KEY):
        return
    seen = st.session_state.get(STAMPS_KEY)
    try:
        now = change_stamps()
    except Exception:  # the page itself says what is wrong; the watcher just waits
        return
    if seen is not None and now != seen:
        st.session_state[STAMPS_KEY] = now
        st.rerun(scope="app")


def _dialog_dismissed() -> None:
    st.session_state[DIALOG_KEY] = False


def dialog(title: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`st.dialog` that marks itself open while shown, so the change watcher leaves it alone."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def body(*args: Any, **kw: Any) -> Any:
            st.session_state[DIALOG_KEY] = True
            return fn(*args, **kw)

        return st.dialog(title, on_dismiss=_dialog_dismissed, **kwargs)(body)

    return decorate
