#!/usr/bin/env python3
"""What marking inserted readings' device-days costs on PostgreSQL: bulk loads and the refreshes after them.

The insert trigger (core/daily_aggregates.py) writes the device-days of every insert statement into
device_day_pending, so readings whose transaction commits late are still folded in. Per fleet, in one process,
alternating, REPEAT times each (medians of wall-clock seconds and of CPU seconds: this process plus the server
backends serving this database, read from /proc, since the machine is shared):
  without  the trigger dropped (what a load cost before it): COPY the fleet into the empty readings table, full build;
  with     the trigger: the same COPY (it marks every device-day), the same full build (it clears those marks);
  with, refreshed incrementally: the same COPY, then the refresh seeding runs on a database refreshed before
           (every marked device-day recomputed, instead of a full build);
then one more day for every device (append_readings: COPY + refresh), with the trigger.
Target: with the trigger, load + build <= 1.10 x without. Run from the repository root:
    python -m benchmarks.bench_insert_marks [--fleets 150x120,1500x120] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import text

from benchmarks.bench_training import POSTGRES_ADMIN_URL as PG_ADMIN
from benchmarks.bench_training import SCALING_END as END
from benchmarks.bench_training import drop_url, fresh_url, one_new_day
from core.daily_aggregates import INSERT_TRIGGER, refresh_daily_aggregates
from core.db import Base, Database
from core.simulator import _bulk_load, _write_part, iter_fleet_parts

RATIO_TARGET = 1.10
# A large fleet's load or full build outlasts the interactive statement timeout.
DB_TIMEOUT = 1800.0
MEDIANS = ("write_s", "write_cpu", "refresh_s", "refresh_cpu", "total_s", "total_cpu")
VARIANTS = ("without", "with", "with, refreshed incrementally")


def empty_and_refreshed(db: Database, trigger: bool) -> None:
    """Every table emptied, then one refresh (installs the triggers): a database that was refreshed before."""
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    refresh_daily_aggregates(db)
    if not trigger:
        with db.engine.begin() as conn:
            conn.execute(text(f"DROP TRIGGER {INSERT_TRIGGER} ON device_health_metrics"))


def cpu_seconds(db: Database) -> float:
    """CPU seconds used so far by this process and by the server backends connected to the database."""
    with db.engine.connect() as conn:
        pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")).scalars()
        pids = list(pids)
    ticks = os.sysconf("SC_CLK_TCK")
    used = time.process_time()
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # not on this machine, or gone
            continue
        used += (int(fields[11]) + int(fields[12])) / ticks
    return used


def pending_marks(db: Database) -> int:
    """Rows in device_day_pending."""
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM device_day_pending")).scalar_one())


def load_once(db: Database, parts: list[tuple[pd.DataFrame, ...]], variant: str) -> Run:
    """Write the fleet into the emptied database as simulate_fleet does (one COPY a part), then refresh."""
    empty_and_refreshed(db, trigger=variant != "without")
    cpu, started = cpu_seconds(db), time.perf_counter()
    with _bulk_load(db) as conn:
        for metrics, failures, devices in parts:
            _write_part(conn, db.dialect, metrics, failures, devices)
    cpu_written, written = cpu_seconds(db), time.perf_counter()
    marks = pending_marks(db)
    cpu_written_marks = cpu_seconds(db)
    refresh_daily_aggregates(db, full=variant != "with, refreshed incrementally")
    cpu_done, done = cpu_seconds(db), time.perf_counter()
    return Run(written - started, done - written, cpu_written - cpu, cpu_done - cpu_written_marks, marks)


@dataclass(frozen=True)
class Run:
    """One load: wall-clock and CPU seconds of the write and of the refresh, and the marks the write made."""

    write_s: float
    refresh_s: float
    write_cpu: float
    refresh_cpu: float
    marks: int

    @property
    def total_s(self) -> float:
        """Write and refresh, wall-clock."""
        return self.write_s + self.refresh_s

    @property
    def total_cpu(self) -> float:
        """Write and refresh, CPU."""
        return self.write_cpu + self.refresh_cpu


def fleet(devices: int, days: int, repeat: int) -> None:
    """Every variant REPEAT times, alternating, then one new day; medians printed next to the target."""
    url = fresh_url("postgresql", Path("."), "marks", PG_ADMIN)
    if url is None:
        raise SystemExit("PostgreSQL is not reachable: this benchmark measures its insert trigger")
    db = Database(url, timeout=DB_TIMEOUT)
    try:
        parts = list(iter_fleet_parts(devices=devices, days=days, end=END))
        runs: dict[str, list[Run]] = {v: [] for v in VARIANTS}
        for _ in range(repeat):
            for variant in VARIANTS:
                runs[variant].append(load_once(db, parts, variant))
        readings = sum(len(metrics) for metrics, _, _ in parts)
        print(f"  {devices:,} devices x {days} days ({readings:,} readings), medians of {repeat}:")
        wall, cpu = {}, {}
        for variant, results in runs.items():
            med = {name: statistics.median(getattr(r, name) for r in results) for name in MEDIANS}
            wall[variant], cpu[variant] = med["total_s"], med["total_cpu"]
            print(
                f"    {variant:30} write {med['write_s']:6.2f} s (cpu {med['write_cpu']:6.2f}), "
                f"refresh {med['refresh_s']:6.2f} s (cpu {med['refresh_cpu']:6.2f}), "
                f"total {med['total_s']:6.2f} s (cpu {med['total_cpu']:6.2f}); {results[0].marks:,} marks; "
                f"totals {[round(r.total_s, 1) for r in results]}"
            )
        for name, figures in (("wall-clock", wall), ("cpu", cpu)):
            ratio = figures["with"] / figures["without"]
            verdict = "ok" if ratio <= RATIO_TARGET else "MISS"
            print(f"    with / without the trigger, {name}: {ratio:.2f} x (target <= {RATIO_TARGET:.2f} x) {verdict}")
        write_s, summary = one_new_day(db, devices)
        print(
            f"    one new day: written in {write_s:.2f} s, refreshed in {summary.seconds:.2f} s "
            f"({summary.device_days:,} device-days)"
        )
    finally:
        db.dispose()
        drop_url(url, PG_ADMIN)


def main() -> int:
    """Measure each fleet and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fleets", default="150x120,1500x120", help="devices x days, default %(default)s")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each variant, default %(default)s")
    args = parser.parse_args()
    print(f"insert marks on PostgreSQL (host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f})")
    for item in args.fleets.split(","):
        devices, days = (int(x) for x in item.lower().split("x"))
        fleet(devices, days, max(1, args.repeat))
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
