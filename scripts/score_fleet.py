#!/usr/bin/env python3
"""Score the whole fleet for a day (default: today) or a range of days, as the daily job does; the scores go to
the prediction log, with every waiting candidate scored in the shadow beside the live model."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from scripts import common as cli


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-01") from None


def _moment(text: str) -> dt.datetime:
    """A date (its end) or an ISO 8601 time; UTC unless it says otherwise."""
    try:
        if len(text) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time.max, tzinfo=dt.UTC)
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date or time like 2026-11-01T06:00:00Z") from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, parents=[cli.common_options()])
    parser.add_argument("--as-of", type=_moment, default=None, help="score as of this time (default: now, UTC)")
    parser.add_argument("--from", dest="start", type=_date, default=None, help="first day to score (YYYY-MM-DD)")
    parser.add_argument("--to", dest="end", type=_date, default=None, help="last day to score (default: as-of's day)")
    parser.add_argument("--days", type=_days, default=None, help="score the N days up to as-of's day")
    parser.add_argument("--no-shadow", action="store_true", help="score with the live model only, not the candidates")
    parser.add_argument("--actor", default=None, help="who is acting, in local mode (default: the shell user)")
    return parser


def main(args: argparse.Namespace) -> int:
    ops = cli.ops_from(args)
    run = ops.score_fleet(
        actor=cli.principal(args, ops, training=True),
        as_of=args.as_of,
        start=args.start,
        end=args.end,
        days=args.days,
        shadow=not args.no_shadow,
    )
    models = ", ".join(f"{m.model_version} ({m.role})" for m in run.models)
    text = (
        f"scored {run.device_days} device-days from {run.days[0]} to {run.days[-1]} with {models} "
        f"in {run.seconds:.1f} s; pruned {run.pruned} old predictions"
    )
    for problem in run.skipped:
        text += f"\nskipped {problem}"
    if (decided := run.auto_rollback) is not None:
        text += f"\nauto-rollback ({decided['mode']}): {decided['decision']}: {decided['message']}"
    cli.emit(args, run.to_dict(), text)
    return cli.EXIT_OK


def run() -> int:
    return cli.run_cli(main, build_parser())


if __name__ == "__main__":
    sys.exit(run())
