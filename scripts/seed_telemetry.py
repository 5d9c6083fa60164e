"""Seed the telemetry database with a simulated device fleet."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from core.constants import MAX_INTERVAL_HOURS
from scripts import common as cli


def _positive_int(text: str) -> int:
    """An integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _interval(text: str) -> float:
    """Hours between readings: > 0 and at most a week."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= MAX_INTERVAL_HOURS:
        raise argparse.ArgumentTypeError(f"must be > 0 and <= {MAX_INTERVAL_HOURS}, got {value:g}")
    return value


def _date(text: str) -> dt.date:
    """A YYYY-MM-DD date."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2025-11-01") from None


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__, parents=[cli.common_options()])
    parser.add_argument("--devices", type=_positive_int, default=150, help="number of devices (default 150)")
    parser.add_argument("--days", type=_positive_int, default=120, help="days of history up to now (default 120)")
    parser.add_argument("--interval-hours", type=_interval, default=6.0, help="hours between readings (default 6)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument(
        "--drift-from", type=_date, default=None, help="firmware change shifts baselines from this date"
    )
    parser.add_argument("--replace", action="store_true", help="delete existing simulated telemetry first")
    return parser


def main(args: argparse.Namespace) -> int:
    """Seed the database and print the summary line."""
    summary = cli.ops_from(args).seed(
        replace=args.replace,
        devices=args.devices,
        days=args.days,
        interval_hours=args.interval_hours,
        seed=args.seed,
        drift_from=args.drift_from,
    )
    print(
        f"seeded {summary.devices} devices, {summary.metric_rows:,} metric rows, {summary.failures} failures "
        f"({summary.start:%Y-%m-%d} to {summary.end:%Y-%m-%d}) in {summary.seconds:.1f} s"
    )
    return cli.EXIT_OK


def run() -> int:
    return cli.run_cli(main, build_parser())


if __name__ == "__main__":
    sys.exit(run())
