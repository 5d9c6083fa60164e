"""Seed the telemetry database with a simulated device fleet."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import traceback  # noqa: E402

from core.config import Settings  # noqa: E402
from core.db import Database, describe_url  # noqa: E402
from core.errors import Conflict, RegistryError  # noqa: E402
from core.simulator import MAX_INTERVAL_HOURS, delete_simulated, simulate_fleet, telemetry_counts  # noqa: E402


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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=_positive_int, default=150, help="number of devices (default 150)")
    parser.add_argument("--days", type=_positive_int, default=120, help="days of history up to now (default 120)")
    parser.add_argument("--interval-hours", type=_interval, default=6.0, help="hours between readings (default 6)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--drift-from", type=_date, default=None, help="firmware change shifts baselines from this date")
    parser.add_argument("--database-url", default=None, help="SQLAlchemy URL (default: DATABASE_URL or data/*.db)")
    parser.add_argument("--models-dir", default=None, help="model directory (accepted for symmetry with other scripts)")
    parser.add_argument("--replace", action="store_true", help="delete existing simulated telemetry first")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    return parser


def run(args: argparse.Namespace) -> str:
    """Seed the database and return the summary line."""
    settings = Settings.from_env(database_url=args.database_url, models_dir=args.models_dir)
    db = Database(settings.database_url)
    try:
        counts = telemetry_counts(db)
        if counts.has_telemetry and not args.replace:
            raise Conflict(
                f"{describe_url(settings.database_url)} already holds telemetry "
                f"({counts.simulated_metric_rows + counts.real_metric_rows:,} metric rows); "
                "pass --replace to delete the simulated rows and seed again"
            )
        if args.replace:
            delete_simulated(db)
            if telemetry_counts(db).has_real_telemetry:
                raise Conflict("the database holds real (non-simulated) telemetry; refusing to mix simulated data into it")
        summary = simulate_fleet(
            db,
            devices=args.devices,
            days=args.days,
            interval_hours=args.interval_hours,
            seed=args.seed,
            drift_from=args.drift_from,
        )
    finally:
        db.dispose()
    return (
        f"seeded {summary.devices} devices, {summary.metric_rows:,} metric rows, {summary.failures} failures "
        f"({summary.start:%Y-%m-%d} to {summary.end:%Y-%m-%d}) in {summary.seconds:.1f} s"
    )


def main(argv: list[str] | None = None) -> int:
    """Exit 0 on success, 1 on failure, 2 on bad arguments (argparse)."""
    args = build_parser().parse_args(argv)
    try:
        print(run(args))
    except RegistryError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - one readable line for anything unexpected, traceback on request
        if args.verbose:
            traceback.print_exc()
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
