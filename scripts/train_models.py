#!/usr/bin/env python3
"""Train, validate and (if the gate passes) promote the failure models. Exit 0 promoted/skipped, 1 not, 2 usage."""

from __future__ import annotations

import argparse
import sys

from core import constants as C
from core import serialize as S
from core.training_run import TrainingRequest
from scripts import common as cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, parents=[cli.common_options()])
    p.add_argument("--force", action="store_true", help="train even if the current model is younger than the interval")
    p.add_argument(
        "--days-back",
        default=C.DEFAULT_DAYS_BACK,
        help=f"days of telemetry to train on (1..{C.MAX_DAYS_BACK}, default {C.DEFAULT_DAYS_BACK})",
    )
    p.add_argument(
        "--allow-sample-data",
        action="store_true",
        help="train on generated sample data when the database has too little",
    )
    p.add_argument("--classifier", choices=C.CLASSIFIERS, help="failure classifier (default: $CLASSIFIER or logistic)")
    p.add_argument("--actor", default=None, help="who is training, in local mode (default: the shell user)")
    p.add_argument("--trigger", default="cli", help="why: cli, schedule, ... (recorded in history)")
    return p


def main(args: argparse.Namespace) -> int:
    request = TrainingRequest.parse(
        days_back=args.days_back,
        force=args.force,
        classifier=args.classifier,
        allow_sample_data=args.allow_sample_data,
        settings=cli.settings_from(args),
    )
    ops = cli.ops_from(args)
    verbose = cli.option(args, "verbose")

    def progress(stage: str, fraction: float, message: str) -> None:
        if verbose and message:
            print(f"[{fraction * 100:5.1f}%] {stage}: {message}", flush=True)

    outcome = ops.train(request, actor=cli.principal(args, ops, training=True), trigger=args.trigger, progress=progress)
    if cli.option(args, "json"):
        payload = {
            "run_id": outcome.run_id,
            "status": outcome.status,
            "version": outcome.version,
            "message": outcome.message,
            "metrics": outcome.metrics,
            "gate": outcome.gate,
        }
        cli.emit(args, S.json_safe(payload), "")
        return outcome.exit_code
    perf = outcome.metrics or {}
    figures = " ".join(f"{k}={perf[k]:.3f}" for k in C.PERFORMANCE_METRICS if isinstance(perf.get(k), (int, float)))
    line = f"{outcome.status}: {outcome.message}"
    if figures:
        line += f" ({figures}; {outcome.duration_seconds:.1f}s)"
    if outcome.status == "skipped":
        line += "; use --force to train anyway"
    print(line, file=sys.stdout if outcome.exit_code == 0 else sys.stderr, flush=True)
    return outcome.exit_code


def run() -> int:
    return cli.run_cli(main, build_parser())


if __name__ == "__main__":
    sys.exit(run())
