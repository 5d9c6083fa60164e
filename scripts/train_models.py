#!/usr/bin/env python3
"""Train, validate and (if the gate passes) promote the device-failure models. Exit 0 promoted/skipped, 1 not, 2 usage."""
from __future__ import annotations

import argparse
import json
import sys

import _common as cli
from core import constants as C


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    cli.add_common_options(p)
    p.add_argument("--force", action="store_true", help="train even if the current model is younger than the retraining interval")
    p.add_argument("--days-back", default=C.DEFAULT_DAYS_BACK, help=f"days of telemetry to train on (1..{C.MAX_DAYS_BACK}, default {C.DEFAULT_DAYS_BACK})")
    p.add_argument("--allow-sample-data", action="store_true", help="train on generated sample data when the database has too little")
    p.add_argument("--classifier", choices=("hgb", "random_forest", "logistic"), help="failure classifier (default: $CLASSIFIER or the measured default)")
    p.add_argument("--actor", default=cli.default_actor(), help="who is training (recorded in history)")
    p.add_argument("--trigger", default="cli", help="why: cli, schedule, ... (recorded in history)")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    return p


def main(args: argparse.Namespace) -> int:
    from core.service import Trainer, validate_days_back

    days = validate_days_back(args.days_back)
    settings = cli.settings_from(args)
    db = cli.open_database(settings, required=True)

    def progress(stage: str, fraction: float, message: str) -> None:
        if args.verbose and message:
            print(f"[{fraction * 100:5.1f}%] {stage}: {message}", flush=True)

    outcome = Trainer(settings, db).run(
        days_back=days,
        force=args.force,
        trigger=args.trigger,
        actor=args.actor,
        allow_sample_data=args.allow_sample_data,
        classifier=args.classifier,
        progress=progress,
    )
    if args.json:
        print(json.dumps({"run_id": outcome.run_id, "status": outcome.status, "version": outcome.version, "message": outcome.message, "metrics": outcome.metrics, "gate": outcome.gate}, default=str))
    else:
        perf = outcome.metrics or {}
        figures = " ".join(f"{k}={perf[k]:.3f}" for k in C.PERFORMANCE_METRICS if isinstance(perf.get(k), (int, float)))
        line = f"{outcome.status}: {outcome.message}" + (f" ({figures}; {outcome.duration_seconds:.1f}s)" if figures else "")
        print(line, file=sys.stdout if outcome.exit_code == 0 else sys.stderr, flush=True)
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(cli.run_cli(main, build_parser()))
