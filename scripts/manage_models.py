#!/usr/bin/env python3
"""Inspect and manage the model registry: status, versions, backups, restore, delete, clean-up, compare, history."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from core import constants as C
from core import serialize as S
from core.domain import BackupSet, CandidateSet, Comparison, Hold
from core.errors import InvalidInput
from core.modelops import ModelOps
from scripts import common as cli


def build_parser() -> argparse.ArgumentParser:
    common = cli.common_options()
    p = argparse.ArgumentParser(description=__doc__, parents=[common])
    p.add_argument("--actor", default=None, help="who is acting, in local mode (default: the shell user)")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, parents=[common])

    command("status", "live version, metrics, integrity and every problem (exit 1 when action is needed)")
    command("versions", "every version ever promoted")
    command("backups", "backup sets on disk")
    r = command("restore", "make a backup set live (by timestamp or version)")
    r.add_argument("target", help="backup timestamp YYYYMMDD_HHMMSS or version MAJOR.MINOR.PATCH")
    r.add_argument("--reason", help="why (required; recorded in the audit trail)")
    r.add_argument(
        "--trust-unrecorded",
        action="store_true",
        help="restore a set whose files are in no recorded set (made by an older tool); recorded with the event",
    )
    r.add_argument(
        "--during-training",
        action="store_true",
        help="restore although a training run is in flight (the run is then kept as a candidate, not promoted)",
    )
    d = command("delete-backup", "delete one backup set")
    d.add_argument("timestamp")
    d.add_argument("--reason", help="why (required; recorded in the audit trail)")
    c = command("cleanup", "keep only the newest N backup sets")
    c.add_argument("--keep", type=int, default=None, help="sets to keep (default: $KEEP_BACKUPS or 10)")
    c.add_argument("--dry-run", action="store_true", help="only show what would be removed")
    c.add_argument("--reason", help="why (required unless --dry-run; recorded in the audit trail)")
    b = command("backup", "back up the live set now")
    b.add_argument("--reason")
    cmp_ = command("compare", "compare two versions (default: live vs the newest other backup)")
    cmp_.add_argument("a", nargs="?")
    cmp_.add_argument("b", nargs="?")
    cmp_.add_argument("--same-data", action="store_true", help="also score both on one labelled window of telemetry")
    cmp_.add_argument("--window-start", type=cli.iso_date, help="--same-data: first day, YYYY-MM-DD")
    cmp_.add_argument("--window-end", type=cli.iso_date, help="--same-data: last day (default: newest labelled)")
    cmp_.add_argument("--days", type=int, help="--same-data: window length (default: $SAME_DATA_DAYS or 14)")
    hold = command("hold", "show the hold on the live version; --place or --release it (admin, with --reason)")
    which = hold.add_mutually_exclusive_group()
    which.add_argument("--place", action="store_true", help="hold the live version")
    which.add_argument("--release", action="store_true", help="release the hold")
    hold.add_argument("--reason", help="why (required to place or release; recorded in the audit trail)")
    command("candidates", "gate-passing runs kept aside by a hold or PROMOTION=manual")
    for verb, what in (("approve", "promote a candidate (admin)"), ("discard", "remove a candidate (admin)")):
        a = command(verb, what)
        a.add_argument("candidate_id")
        a.add_argument("--reason", help="why (recorded in the audit trail)")
    h = command("history", "the audit trail of registry events")
    h.add_argument("--limit", type=int, default=50)
    n = command("notify", "send webhook notifications for new History events (WEBHOOK_URLS); runs until stopped")
    n.add_argument("--once", action="store_true", help="one pass, then exit (cron): 1 when a delivery failed for good")
    n.add_argument("--test", action="store_true", help="send a signed test message to every target now (operator)")
    dr = command("drift", "data drift: the last days against the live version's training window (PSI, KS)")
    dr.add_argument("--window-days", default=None, help="recent window in days (default: $DRIFT_WINDOW_DAYS or 7)")
    dr.add_argument("--features", type=int, default=10, metavar="N", help="show the N most drifted features")
    dr.add_argument("--check", action="store_true", help="exit 1 when a metric or the score drifted significantly")
    perf = command(
        "performance", "realised precision, recall, F1 and AUC per version and week (from the prediction log)"
    )
    perf.add_argument("--weeks", action="store_true", help="show every week, not only each version's total")
    al = command("alerts", "evaluate the alert rules, list open and recent alerts (exit 1 while one is firing)")
    verbs = al.add_subparsers(dest="alert_action")
    ack = verbs.add_parser("ack", help="acknowledge an alert (operator)", parents=[common])
    ack.add_argument("alert_id", type=int)
    ack.add_argument("--reason", help="why (required; recorded in the audit trail)")
    sil = verbs.add_parser("silence", help="silence an alert for N minutes (operator)", parents=[common])
    sil.add_argument("alert_id", type=int)
    sil.add_argument("--minutes", type=int, required=True, help="how long (at most 30 days)")
    sil.add_argument("--reason", help="why (required; recorded in the audit trail)")
    sch = command("schedule", "the training schedule ($TRAINING_SCHEDULE): next runs, last scheduled run, missed")
    line = sch.add_mutually_exclusive_group()
    line.add_argument("--crontab", action="store_true", help="print only the crontab line for the schedule")
    line.add_argument("--k8s", action="store_true", help="print only the Kubernetes CronJob `schedule:` line")
    sch.add_argument("--check", action="store_true", help="exit 1 when a due run was missed or the last one failed")
    command(
        "auto-rollback",
        "evaluate automatic rollback now ($AUTO_ROLLBACK): would act, acted, or why not; prints the decision",
    )
    return p


def _age(when: dt.datetime | None) -> str:
    if when is None:
        return "?"
    hours = (dt.datetime.now(dt.UTC) - when).total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


def _backup_line(s: BackupSet) -> str:
    perf = s.performance
    acc = (
        f"acc={perf['accuracy']:.3f} f1={perf.get('f1_score', float('nan')):.3f}" if "accuracy" in perf else "metrics=?"
    )
    state = "complete" if s.complete else "INCOMPLETE"
    line = f"{s.timestamp}  v{s.version or '?':<8} {acc:<24} {s.size_bytes / 1024:8.1f} KiB  {state:<10} {s.integrity}"
    return line + (f"  ({'; '.join(s.problems)})" if s.problems else "")


def _comparison_text(c: Comparison) -> str:
    lines = [f"{'metric':<10} {c.a.version:>10} {c.b.version:>10} {'diff':>9} {'%':>8}"]
    for name, m in c.metrics.items():
        if m.difference is None or m.current is None or m.previous is None:
            lines.append(f"{name:<10} {'-':>10} {'-':>10}")
            continue
        pct = f"{m.percent_change:+.2f}" if m.percent_change is not None else "n/a"
        lines.append(f"{name:<10} {m.current:>10.4f} {m.previous:>10.4f} {m.difference:>+9.4f} {pct:>8} {m.verdict}")
    for key, (x, y) in {**c.differing("data"), **c.differing("parameters")}.items():
        lines.append(f"{key}: {c.a.version}={x}  {c.b.version}={y}")
    return "\n".join(lines)


def status(ops: ModelOps, args: argparse.Namespace) -> int:
    report = ops.status()
    payload = {**S.status_dict(report), "files": S.files_dict(report.health)}
    lines = []
    if (current := report.current) is not None:
        perf = current.performance
        trained = f"{current.training_date:%Y-%m-%d %H:%M} UTC" if current.training_date else "?"
        lines.append(
            f"version {current.version}  trained {trained} ({_age(current.training_date)} ago)  "
            f"source {current.data_source}"
        )
        lines.append("  " + "  ".join(f"{k}={perf[k]:.3f}" for k in C.PERFORMANCE_METRICS if k in perf))
    else:
        lines.append("no usable model: run `python scripts/train_models.py --force` or restore a backup")
    if report.live_event is not None:
        e = report.live_event
        lines.append(
            f"  live since {e.at:%Y-%m-%d %H:%M} UTC: {e.kind} by {e.actor}" + (f" ({e.reason})" if e.reason else "")
        )
    if report.hold is not None:
        lines.append("  " + _hold_line(report.hold))
    if report.candidates:
        lines.append(f"  {len(report.candidates)} candidate(s) waiting: `manage_models.py candidates`")
    if report.newer_versions:
        lines.append(f"  newer versions not live: {', '.join(report.newer_versions)}")
    lines.append(f"  status: {report.level}" + ("" if report.alerts else " (no problems)"))
    lines += [f"  {a.level.upper():<5} {a.message}" for a in report.alerts]
    cli.emit(args, payload, "\n".join(lines))
    return cli.EXIT_FAILED if report.level == "red" else cli.EXIT_OK


def versions(ops: ModelOps, args: argparse.Namespace) -> int:
    entries = ops.versions()
    rows = [
        f"{'*' if e.is_current else ' '} {e.version:<9} "
        f"{e.trained_at.strftime('%Y-%m-%d %H:%M') if e.trained_at else '?':<16} "
        f"acc={e.performance.get('accuracy', float('nan')):.3f} f1={e.performance.get('f1_score', float('nan')):.3f} "
        f"backups={','.join(e.backup_timestamps) or '-'}"
        for e in entries
    ]
    cli.emit(args, [S.version_entry_dict(e) for e in entries], "\n".join(rows) or "no versions yet")
    return cli.EXIT_OK


def backups(ops: ModelOps, args: argparse.Namespace) -> int:
    sets = ops.backups()
    text = "\n".join(_backup_line(s) for s in sets) or "no backups yet (one is made before every promotion)"
    payload = {"backups": [S.backup_dict(s) for s in sets], "disk_usage": S.disk_usage_dict(ops.disk_usage())}
    cli.emit(args, payload, text)
    return cli.EXIT_OK


def restore(ops: ModelOps, args: argparse.Namespace) -> int:
    who = cli.principal(args, ops)
    result = ops.restore(
        args.target,
        actor=who,
        reason=args.reason,
        trust_unrecorded=args.trust_unrecorded,
        during_training=args.during_training,
    )
    text = (
        f"restored version {result.restored.version} from backup {result.source_backup}; "
        f"the replaced set ({result.replaced_version or 'none'}) is backed up as {result.undo_backup or '-'}\n"
        f"version {result.restored.version} is held: training keeps new models as candidates until an admin runs "
        "`manage_models.py hold --release --reason ...`"
    )
    if result.audit_pending:
        text += f"\nwarning: applied, but its audit event is pending ({result.audit_pending})"
    cli.emit(args, S.restore_dict(result, who.name), text)
    return cli.EXIT_OK


def delete_backup(ops: ModelOps, args: argparse.Namespace) -> int:
    gone = ops.delete_backup(args.timestamp, actor=cli.principal(args, ops), reason=args.reason)
    text = f"deleted backup {gone.timestamp} ({len(gone.files)} files, {gone.size_bytes} bytes)"
    cli.emit(args, S.backup_dict(gone), text)
    return cli.EXIT_OK


def cleanup(ops: ModelOps, args: argparse.Namespace) -> int:
    if args.dry_run:
        plan = ops.cleanup_plan(args.keep)
    else:
        plan = ops.cleanup(args.keep, actor=cli.principal(args, ops), reason=args.reason)
    verb = "would remove" if args.dry_run else "removed"
    text = f"{verb} {len(plan.sets)} backup set(s)" + "".join(f"\n  {_backup_line(s)}" for s in plan.sets)
    cli.emit(args, {"dry_run": args.dry_run, "removed": [S.backup_dict(s) for s in plan.sets]}, text)
    return cli.EXIT_OK


def backup(ops: ModelOps, args: argparse.Namespace) -> int:
    made = ops.backup_now(actor=cli.principal(args, ops), reason=args.reason)
    cli.emit(args, S.backup_dict(made), f"backed up version {made.version} as {made.timestamp}")
    return cli.EXIT_OK


def compare(ops: ModelOps, args: argparse.Namespace) -> int:
    if args.same_data or args.window_start or args.window_end or args.days:
        return compare_same_data(ops, args)
    comparison = ops.compare(args.a, args.b)
    notice = ops.holdout_notice(comparison)
    text = _comparison_text(comparison) + (f"\nnote: {notice}" if notice else "")
    cli.emit(args, {**S.comparison_dict(comparison), "holdout_notice": notice}, text)
    return cli.EXIT_OK


def _hold_line(h: Hold) -> str:
    return f"held: version {h.version} by {h.placed_by} since {h.placed_at:%Y-%m-%d %H:%M} UTC" + (
        f" ({h.reason})" if h.reason else ""
    )


def hold(ops: ModelOps, args: argparse.Namespace) -> int:
    if args.place:
        placed = ops.place_hold(actor=cli.principal(args, ops), reason=args.reason)
        cli.emit(args, {"hold": S.hold_dict(placed)}, _hold_line(placed))
    elif args.release:
        released = ops.release_hold(actor=cli.principal(args, ops), reason=args.reason)
        cli.emit(args, {"released": S.hold_dict(released)}, f"released the hold on version {released.version}")
    else:
        current = ops.hold()
        cli.emit(
            args,
            {"hold": S.hold_dict(current) if current else None},
            _hold_line(current) if current else "nothing is held",
        )
    return cli.EXIT_OK


def _candidate_line(c: CandidateSet) -> str:
    perf = c.performance
    metrics = "  ".join(f"{k}={perf[k]:.3f}" for k in ("accuracy", "f1_score") if k in perf)
    kept = f"{c.kept_at:%Y-%m-%d %H:%M}" if c.kept_at else "?"
    return f"{c.id}  kept {kept} UTC  {metrics}  ({c.kept_because})"


def candidates(ops: ModelOps, args: argparse.Namespace) -> int:
    found = ops.candidates()
    shadows = {f.candidate_id: f for f in ops.shadow_performance()} if found and ops.db is not None else {}
    lines = []
    for c in found:
        lines.append(_candidate_line(c))
        if c.id in shadows:
            lines.append("    " + _shadow_line(shadows[c.id]))
    text = "\n".join(lines) or "no candidates waiting"
    payload = [{**S.candidate_dict(c), "shadow": shadows[c.id].to_dict() if c.id in shadows else None} for c in found]
    cli.emit(args, payload, text)
    return cli.EXIT_OK


def approve(ops: ModelOps, args: argparse.Namespace) -> int:
    promoted = ops.approve_candidate(args.candidate_id, actor=cli.principal(args, ops), reason=args.reason)
    text = f"candidate {args.candidate_id} approved: version {promoted.version} is live"
    cli.emit(args, {"promoted": promoted.version, "candidate_id": args.candidate_id}, text)
    return cli.EXIT_OK


def discard(ops: ModelOps, args: argparse.Namespace) -> int:
    ops.discard_candidate(args.candidate_id, actor=cli.principal(args, ops), reason=args.reason)
    cli.emit(args, {"discarded": args.candidate_id}, f"candidate {args.candidate_id} discarded")
    return cli.EXIT_OK


def history(ops: ModelOps, args: argparse.Namespace) -> int:
    events = ops.events(limit=args.limit)
    rows = [
        f"{e.at:%Y-%m-%d %H:%M:%S}  {e.kind:<16} {e.actor:<12} {e.from_version or '-'} -> {e.to_version or '-'}  "
        f"{e.reason or ''}"
        for e in events
    ]
    cli.emit(args, [S.event_dict(e) for e in events], "\n".join(rows) or "no events yet")
    return cli.EXIT_OK


def _drift_line(s: Any) -> str:
    ks = "drift" if s.ks_drift else "-"
    return (
        f"{s.name:<34} PSI {s.psi:7.3f}  {s.band:<11}  KS {s.ks_statistic:.3f} (p {s.ks_pvalue:.1e}, {ks:<5})  "
        f"median {s.reference_median:.4g} -> {s.current_median:.4g}"
    )


def drift(ops: ModelOps, args: argparse.Namespace) -> int:
    report = ops.drift(args.window_days)
    significant = report.counts(report.features)["significant"]
    lines = [
        f"version {report.version}: training window {report.reference_start:%Y-%m-%d} to "
        f"{report.reference_end - dt.timedelta(days=1):%Y-%m-%d} vs the last {report.window_days} days "
        f"({report.current_start:%Y-%m-%d %H:%M} to {report.current_end:%Y-%m-%d %H:%M} UTC)",
        "metrics (PSI < 0.1 stable, 0.1-0.25 moderate, > 0.25 significant):",
        *(f"  {_drift_line(s)}" for s in report.metrics),
        "prediction score:",
        f"  {_drift_line(report.score)}" if report.score else "  not measured",
        f"most drifted features ({significant} of {len(report.features)} significant):",
        *(f"  {_drift_line(s)}" for s in report.features[: max(0, args.features)]),
        *(f"note: {n}" for n in report.notes),
    ]
    cli.emit(args, S.drift_dict(report), "\n".join(lines))
    drifted = any(s.band == "significant" for s in (*report.metrics, *([report.score] if report.score else [])))
    return cli.EXIT_FAILED if args.check and drifted else cli.EXIT_OK


def compare_same_data(ops: ModelOps, args: argparse.Namespace) -> int:
    """compare --same-data: the stored figures (with the different-window note), then both scored on one window."""
    scored = ops.compare_same_data(
        args.a, args.b, window_start=args.window_start, window_end=args.window_end, days=args.days
    )
    a, b = scored.a, scored.b
    lines = [_comparison_text(scored.stored)]
    if scored.notice:
        lines.append(f"note: {scored.notice}")
    lines.append(
        f"\nscored on the same window {scored.window.describe()}: {scored.sample_count:,} samples, "
        f"{scored.positives:,} with a failure within {scored.horizon_days} days, {scored.devices} devices"
        + (" (cached)" if scored.cached else "")
    )
    lines.append(f"{'metric':<10} {a.ref.label:>32} {b.ref.label:>32} {'diff':>9}")
    for name, m in scored.metrics.items():
        lines.append(f"{name:<10} {m.current:>32.4f} {m.previous:>32.4f} {m.difference:>+9.4f} {m.verdict}")
    if scored.identical_artifact:
        lines.append("both are the same model file (identical checksum)")
    body = {**S.comparison_dict(scored.stored), "holdout_notice": scored.notice, "same_data": scored.to_dict()}
    cli.emit(args, body, "\n".join(lines))
    return cli.EXIT_OK


def _figure(value: float | None) -> str:
    return "  —  " if value is None else f"{value:.3f}"


def _realised_row(label: str, r: Any, extra: str = "") -> str:
    cells = "  ".join(_figure(getattr(r, m)) for m in ("precision", "recall", "f1_score", "roc_auc"))
    flag = "" if r.enough else "  (too few outcomes yet)"
    return f"{label:<22} {r.outcomes:>7} {r.positives:>6}  {cells}{extra}{flag}"


def _shadow_line(f: Any) -> str:
    if f.live is None or f.shared_outcomes == 0:
        return "shadow: no outcomes yet on days the live version also scored (run scripts/score_fleet.py daily)"
    return (
        f"shadow over {f.shared_outcomes} shared device-days: f1 {_figure(f.candidate.f1_score)} "
        f"(live {f.live_version}: {_figure(f.live.f1_score)}), auc {_figure(f.candidate.roc_auc)} "
        f"(live {_figure(f.live.roc_auc)})" + ("" if f.candidate.enough else "; too few outcomes yet")
    )


def performance(ops: ModelOps, args: argparse.Namespace) -> int:
    report = ops.realised_performance()
    header = f"{'version / week':<22} {'outcomes':>7} {'fails':>6}  precis  recall  f1     auc"
    lines = [header]
    for v in report.versions:
        live = " (live)" if v.model_version == report.live_version else (" (shadow)" if v.role == "shadow" else "")
        hold = v.holdout.get("f1_score")
        extra = f"  holdout f1 {hold:.3f}" if isinstance(hold, (int, float)) else ""
        lines.append(_realised_row(f"{v.model_version}{live}", v.total, extra + f"  awaiting {v.awaiting}"))
        if cli.option(args, "weeks"):
            lines.extend(_realised_row(f"  week of {w.week}", w.realised) for w in v.weeks)
    if not report.versions:
        lines = ["no predictions logged yet: serve predictions or run scripts/score_fleet.py"]
    else:
        lines.append(
            f"outcomes: device-days whose {report.horizon_days}-day horizon has passed, as of "
            f"{report.as_of:%Y-%m-%d %H:%M} UTC; fails: those followed by a recorded failure"
        )
    cli.emit(args, report.to_dict(), "\n".join(lines))
    return cli.EXIT_OK


def _attempt_line(a: Any) -> str:
    code = f"HTTP {a.http_status}" if a.http_status else "no answer"
    return f"event {a.event_id} ({a.kind}) -> {a.target}: {a.status} after attempt {a.attempt} ({a.error or code})"


def notify(ops: ModelOps, args: argparse.Namespace) -> int:
    """Deliver notifications: --test sends a test now, --once one pass, else a dispatcher until Ctrl-C."""
    setup = ops.notification_setup()
    if not setup.targets:
        cli.emit(
            args, setup.to_dict(), "no webhook configured: set WEBHOOK_URLS (e.g. ops=https://hooks.example.com/x)"
        )
        return cli.EXIT_FAILED if args.test else cli.EXIT_OK
    if args.test:
        attempts = ops.send_test_notification(actor=cli.principal(args, ops))
        cli.emit(args, [a.to_dict() for a in attempts], "\n".join(_attempt_line(a) for a in attempts))
        return cli.EXIT_OK if all(a.status == "delivered" for a in attempts) else cli.EXIT_FAILED
    if not args.once:
        logging.getLogger("core.notify").setLevel(logging.INFO)  # a daemon's log: one line per attempt
        ops.start_notifications()
        threading.Event().wait()  # the dispatcher thread works; Ctrl-C ends the process
    report = ops.dispatch_notifications()
    summary = ", ".join(f"{report.count(s)} {s}" for s in ("delivered", "pending", "failed"))
    lines = [*(_attempt_line(a) for a in report.attempts), f"{report.enqueued} new deliveries; attempts: {summary}"]
    cli.emit(args, report.to_dict(), "\n".join(lines))
    return cli.EXIT_FAILED if report.count("failed") else cli.EXIT_OK


def _alert_line(a: Any, now: dt.datetime) -> str:
    state = a.state(now)
    note = ""
    if state == "acknowledged":
        note = f" by {a.acknowledged_by}: {a.acknowledge_reason}"
    elif state == "silenced":
        note = f" until {a.silenced_until:%Y-%m-%d %H:%M} UTC by {a.silenced_by}: {a.silence_reason}"
    when = f"since {a.fired_at:%Y-%m-%d %H:%M}" if a.resolved_at is None else f"resolved {a.resolved_at:%Y-%m-%d %H:%M}"
    return f"#{a.id:<5} {state.upper():<12} {a.level:<5} {a.rule} ({when} UTC){note}\n       {a.message}"


def alerts(ops: ModelOps, args: argparse.Namespace) -> int:
    action = cli.option(args, "alert_action")
    if action is not None:
        who = cli.principal(args, ops)
        now = dt.datetime.now(dt.UTC)
        if action == "ack":
            done = ops.acknowledge_alert(args.alert_id, actor=who, reason=args.reason)
            text = f"acknowledged alert {done.id} ({done.rule}) as {who.name}"
        else:
            if not 1 <= args.minutes <= 30 * 24 * 60:
                raise InvalidInput("--minutes must be from 1 to 43200 (30 days)")
            until = now + dt.timedelta(minutes=args.minutes)
            done = ops.silence_alert(args.alert_id, until=until, actor=who, reason=args.reason, now=now)
            text = f"silenced alert {done.id} ({done.rule}) until {until:%Y-%m-%d %H:%M} UTC as {who.name}"
        cli.emit(args, {"alert": done.to_dict(now), "actor": who.name}, text)
        return cli.EXIT_OK
    evaluation = ops.evaluate_alerts()
    board = ops.alerts(include_resolved=True)
    lines = [_alert_line(a, board.now) for a in board.open] or ["no open alerts"]
    if board.resolved:
        lines.append("recently resolved:")
        lines.extend(_alert_line(a, board.now) for a in board.resolved[:10])
    if evaluation.unknown:
        lines.append(f"not judged this time (their input could not be read): {', '.join(evaluation.unknown)}")
    cli.emit(args, {**board.to_dict(), "evaluation": evaluation.to_dict()}, "\n".join(lines))
    return cli.EXIT_FAILED if board.firing else cli.EXIT_OK


def schedule(ops: ModelOps, args: argparse.Namespace) -> int:
    if args.crontab or args.k8s:  # no database needed: the line comes from the setting alone
        print(ops.schedule_recipes()["crontab" if args.crontab else "k8s"])
        return cli.EXIT_OK
    report = ops.schedule()
    recipes = ops.schedule_recipes() if report.expression else {}
    run = report.last_run
    lines = [
        f"schedule: {report.expression} (UTC)" + (f", {report.description}" if report.description else "")
        if report.expression
        else "schedule: off (TRAINING_SCHEDULE=off): training only by hand, nothing is due",
        "next runs: " + ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in report.next_runs) if report.next_runs else "",
        f"last due: {report.last_due:%Y-%m-%d %H:%M} UTC (grace {report.grace_minutes} min)" if report.last_due else "",
        f"last scheduled run: {run.started_at:%Y-%m-%d %H:%M} UTC by {run.actor}: {run.status}"
        + (f" ({run.version})" if run.version else "")
        + (f": {run.error}" if run.error else "")
        if run
        else "last scheduled run: none recorded (runs with --trigger schedule)",
    ]
    if report.history_error:
        lines.append(f"runs unknown: {report.history_error}")
    if report.missed:
        lines.append(
            f"MISSED: the run due {report.deciding_due:%Y-%m-%d %H:%M} UTC did not start (x{report.missed_count})"
        )
    if report.failed:
        lines.append("FAILED: the last scheduled run failed")
    if recipes:
        lines += [f"crontab: {recipes['crontab']}", f"k8s:     {recipes['k8s']}"]
    cli.emit(args, {**report.to_dict(), "recipes": recipes or None}, "\n".join(line for line in lines if line))
    return cli.EXIT_FAILED if args.check and (report.missed or report.failed) else cli.EXIT_OK


def auto_rollback(ops: ModelOps, args: argparse.Namespace) -> int:
    decision = ops.evaluate_auto_rollback()
    cli.emit(args, decision.to_dict(), f"auto-rollback ({decision.mode}): {decision.decision}: {decision.message}")
    return cli.EXIT_OK


COMMANDS: dict[str, Callable[[ModelOps, argparse.Namespace], int]] = {
    "status": status,
    "versions": versions,
    "backups": backups,
    "restore": restore,
    "delete-backup": delete_backup,
    "cleanup": cleanup,
    "backup": backup,
    "compare": compare,
    "hold": hold,
    "candidates": candidates,
    "approve": approve,
    "discard": discard,
    "history": history,
    "drift": drift,
    "performance": performance,
    "notify": notify,
    "alerts": alerts,
    "schedule": schedule,
    "auto-rollback": auto_rollback,
}


def main(args: argparse.Namespace) -> int:
    return COMMANDS[args.command](cli.ops_from(args), args)


def run() -> int:
    return cli.run_cli(main, build_parser())


if __name__ == "__main__":
    sys.exit(run())
