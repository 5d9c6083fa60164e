#!/usr/bin/env python3
"""Inspect and manage the model registry: status, versions, backups, restore, delete, clean-up, compare."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

import _common as cli
from core import constants as C
from core.domain import BackupSet, Comparison
from core.registry import Registry
from core.reporting import backup_dict, comparison_dict, event_dict, health_dict, version_entry_dict


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    cli.add_common_options(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--actor", default=cli.default_actor(), help="who is acting (recorded in the audit trail)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="current version, metrics, integrity")
    sub.add_parser("versions", help="every version ever promoted")
    sub.add_parser("backups", help="backup sets on disk")
    r = sub.add_parser("restore", help="make a backup set current (by timestamp or version)")
    r.add_argument("target", help="backup timestamp YYYYMMDD_HHMMSS or version MAJOR.MINOR.PATCH")
    r.add_argument("--reason", help="why (recorded in the audit trail)")
    d = sub.add_parser("delete-backup", help="delete one backup set")
    d.add_argument("timestamp")
    d.add_argument("--reason")
    c = sub.add_parser("cleanup", help="keep only the newest N backup sets")
    c.add_argument("--keep", type=int, default=None, help="sets to keep (default: $KEEP_BACKUPS or 10)")
    c.add_argument("--dry-run", action="store_true", help="only show what would be removed")
    b = sub.add_parser("backup", help="back up the current set now")
    b.add_argument("--reason")
    cmp_ = sub.add_parser("compare", help="compare two versions (default: current vs newest backup)")
    cmp_.add_argument("a", nargs="?")
    cmp_.add_argument("b", nargs="?")
    h = sub.add_parser("history", help="the audit trail of registry events")
    h.add_argument("--limit", type=int, default=50)
    return p


def _emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    print(json.dumps(payload, indent=2, default=str) if args.json else text)


def _age(when: dt.datetime | None) -> str:
    if when is None:
        return "?"
    hours = (dt.datetime.now(dt.timezone.utc) - when).total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


def _backup_line(s: BackupSet) -> str:
    perf = s.performance
    acc = f"acc={perf['accuracy']:.3f} f1={perf.get('f1_score', float('nan')):.3f}" if "accuracy" in perf else "metrics=?"
    state = "complete" if s.complete else "INCOMPLETE"
    return f"{s.timestamp}  v{s.version or '?':<8} {acc:<24} {s.size_bytes / 1024:8.1f} KiB  {state:<10} {s.integrity}" + (
        f"  ({'; '.join(s.problems)})" if s.problems else ""
    )


def _comparison_text(c: Comparison) -> str:
    lines = [f"{'metric':<10} {c.a.version:>10} {c.b.version:>10} {'diff':>9} {'%':>8}"]
    for name, m in c.metrics.items():
        if m.difference is None:
            lines.append(f"{name:<10} {'-':>10} {'-':>10}")
            continue
        pct = f"{m.percent_change:+.2f}" if m.percent_change is not None else "n/a"
        lines.append(f"{name:<10} {m.current:>10.4f} {m.previous:>10.4f} {m.difference:>+9.4f} {pct:>8} {'better' if m.improved else 'worse/same'}")
    for key, (x, y) in {**c.differing("data"), **c.differing("parameters")}.items():
        lines.append(f"{key}: {c.a.version}={x}  {c.b.version}={y}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    settings = cli.settings_from(args)
    db = cli.open_database(settings, required=False)
    reg = Registry.from_settings(settings, db)
    cmd = args.command
    if cmd == "status":
        reg.reconcile()
        current = reg.current()
        health = reg.health()
        if current is None:
            _emit(args, {"is_trained": False, "health": health_dict(health)}, "no model yet: run `python scripts/train_models.py --force`")
            return cli.EXIT_FAILED
        perf = current.performance
        text = [
            f"version {current.version}  trained {current.training_date:%Y-%m-%d %H:%M} UTC ({_age(current.training_date)} ago)  source {current.data_source}",
            "  " + "  ".join(f"{k}={perf[k]:.3f}" for k in C.PERFORMANCE_METRICS if k in perf),
            f"  integrity: {'ok' if health.ok else '; '.join(health.problems)}",
        ]
        _emit(args, {"is_trained": True, "model_metadata": current.metadata, "health": health_dict(health)}, "\n".join(text))
        return cli.EXIT_OK if health.ok else cli.EXIT_FAILED
    if cmd == "versions":
        entries = reg.versions()
        rows = [
            f"{'*' if e.is_current else ' '} {e.version:<9} {e.trained_at.strftime('%Y-%m-%d %H:%M') if e.trained_at else '?':<16} "
            f"acc={e.performance.get('accuracy', float('nan')):.3f} f1={e.performance.get('f1_score', float('nan')):.3f} "
            f"backups={','.join(e.backup_timestamps) or '-'}"
            for e in entries
        ]
        _emit(args, [version_entry_dict(e) for e in entries], "\n".join(rows) or "no versions yet")
        return cli.EXIT_OK
    if cmd == "backups":
        sets = reg.backups()
        usage = reg.disk_usage()
        text = "\n".join(_backup_line(s) for s in sets) or "no backups yet (one is made before every promotion)"
        _emit(args, {"backups": [backup_dict(s) for s in sets], "disk_usage": usage}, text)
        return cli.EXIT_OK
    if cmd == "restore":
        restored = reg.restore(args.target, actor=args.actor, reason=args.reason)
        _emit(args, {"restored_version": restored.version}, f"restored version {restored.version}; the replaced set was backed up first")
        return cli.EXIT_OK
    if cmd == "delete-backup":
        gone = reg.delete_backup(args.timestamp, actor=args.actor, reason=args.reason)
        _emit(args, backup_dict(gone), f"deleted backup {gone.timestamp} ({len(gone.files)} files, {gone.size_bytes} bytes)")
        return cli.EXIT_OK
    if cmd == "cleanup":
        removed = reg.cleanup(args.keep, actor=args.actor, dry_run=args.dry_run)
        verb = "would remove" if args.dry_run else "removed"
        text = f"{verb} {len(removed)} backup set(s)" + "".join(f"\n  {_backup_line(s)}" for s in removed)
        _emit(args, {"dry_run": args.dry_run, "removed": [backup_dict(s) for s in removed]}, text)
        return cli.EXIT_OK
    if cmd == "backup":
        made = reg.backup_now(actor=args.actor, reason=args.reason)
        _emit(args, backup_dict(made), f"backed up version {made.version} as {made.timestamp}")
        return cli.EXIT_OK
    if cmd == "compare":
        comparison = reg.compare(args.a, args.b)
        _emit(args, comparison_dict(comparison), _comparison_text(comparison))
        return cli.EXIT_OK
    if cmd == "history":
        if reg.history is None:
            raise cli.DataError("history needs the database; check DATABASE_URL")
        events = reg.history.events(limit=args.limit)
        rows = [f"{e.at:%Y-%m-%d %H:%M:%S}  {e.kind:<16} {e.actor:<12} {e.from_version or '-'} -> {e.to_version or '-'}  {e.reason or ''}" for e in events]
        _emit(args, [event_dict(e) for e in events], "\n".join(rows) or "no events yet")
        return cli.EXIT_OK
    raise cli.InvalidInput(f"unknown command {cmd}")


if __name__ == "__main__":
    sys.exit(cli.run_cli(main, build_parser()))
