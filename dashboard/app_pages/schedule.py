"""Schedule: when training is due (TRAINING_SCHEDULE), the scheduled runs, missed runs, and the deploy lines."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import services as svc
from dashboard import widgets
from dashboard.formatting import fmt_time, human_age

ops = svc.ops()
report = ops.schedule()
now = report.checked_at

st.title("Schedule")
if report.expression is None:
    st.info(
        "No training schedule: TRAINING_SCHEDULE is off, so training runs only when started by hand and nothing "
        "is reported missed. Set it to a cron expression (UTC), e.g. `0 2 * * 0`, to schedule and watch runs."
    )
    st.stop()
st.caption(
    f"`{report.expression}` (UTC)"
    + (f" · {report.description}" if report.description else "")
    + f" · a run may start up to {report.grace_minutes} min late · set with TRAINING_SCHEDULE and "
    "SCHEDULE_GRACE_MINUTES"
)

if report.history_error:
    widgets.db_needed("Judging the schedule (scheduled runs are recorded in the history)")
if report.missed and report.deciding_due is not None:
    st.error(
        f"**Missed**: the run due {fmt_time(report.deciding_due)} did not start within {report.grace_minutes} min, "
        f"and no scheduled run has started since ({report.missed_count} due time(s) missed). Check the cron job, "
        "the Kubernetes CronJob or the trainer container.",
        icon=":material/event_busy:",
    )
if report.failed and report.last_run is not None:
    st.warning(
        f"**Failed**: the last scheduled run ({fmt_time(report.last_run.started_at)}) failed: "
        f"{report.last_run.error or 'see its log on Retrain'}",
        icon=":material/error:",
    )

run = report.last_run
c1, c2, c3 = st.columns(3)
c1.metric("Next run", f"in {human_age(report.next_runs[0] - now)}", help=fmt_time(report.next_runs[0]))
c2.metric(
    "Last due", f"{human_age(now - report.last_due)} ago" if report.last_due else "—", help=fmt_time(report.last_due)
)
c3.metric("Last scheduled run", run.status if run else "none", help=fmt_time(run.started_at) if run else None)

st.subheader("Next runs")
st.dataframe(
    pd.DataFrame(
        {"when (UTC)": [fmt_time(t) for t in report.next_runs], "in": [human_age(t - now) for t in report.next_runs]}
    ),
    hide_index=True,
)

st.subheader("Last scheduled run")
if run is None:
    st.info(
        "No scheduled run recorded yet. Runs count as scheduled when started with `--trigger schedule` "
        "(scripts/schedule_model_training.sh, the CronJob) or by the compose trainer; runs started by hand do not."
    )
else:
    st.markdown(
        f"**{run.status}** · started {fmt_time(run.started_at)} ({human_age(now - run.started_at)} ago) by "
        f"**{run.actor}**" + (f" · version **{run.version}**" if run.version else "")
    )
    st.caption(f"The {len(report.recent_runs)} most recent scheduled runs, newest first")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "started": fmt_time(r.started_at),
                    "outcome": r.status,
                    "version": r.version or "",
                    "by": r.actor,
                    "seconds": round(r.duration_seconds or 0.0, 1),
                    "error": r.error or "",
                }
                for r in report.recent_runs
            ]
        ),
        hide_index=True,
    )

st.subheader("Deploy")
st.caption("Generated from TRAINING_SCHEDULE: give the scheduler the same times this page expects.")
lines = ops.schedule_recipes()
st.markdown("crontab (`crontab -e`, or `manage_models.py schedule --crontab`)")
st.code(lines["crontab"], language="bash")
st.markdown("Kubernetes CronJob (deploy/k8s-cronjob.yaml, or `manage_models.py schedule --k8s`)")
st.code(lines["k8s"], language="yaml")
st.markdown("docker compose (the trainer asks the service when the next run is due)")
st.code(lines["compose"], language="bash")
