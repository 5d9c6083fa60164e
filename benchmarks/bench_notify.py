#!/usr/bin/env python3
"""What webhook notifications cost: a dispatcher pass over a long history, and how soon a change is sent.

1. An idle pass (nothing new) after EVENTS History events (half of a notified kind) were delivered to 2 targets,
   on SQLite and, when it answers, PostgreSQL: the events settled (older than SETTLE: the cursor moved past them)
   and unsettled (all recent: every pass pages through them). Target: settled pass < 50 ms.
2. Latency from a promotion recorded in this process to the receiver's answer, the dispatcher polling only every
   30 s (so the wake-up is what is measured), median of REPEATS. Target: p50 < 500 ms.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import statistics
import sys
import tempfile
import time
import uuid

from sqlalchemy import create_engine, text, update

from core.config import Settings
from core.db import Database, NotificationDelivery, RegistryEvent, utcnow
from core.history import History
from core.notify import SETTLE, Dispatcher, Notifier
from tests.webhook_receiver import Receiver

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASS_TARGET_MS, WAKE_TARGET_MS = 50.0, 500.0


def idle_pass_ms(url: str, events: int, settled: bool) -> tuple[float, float]:
    """(seconds to enqueue the backlog, median ms of an idle pass afterwards)."""
    targets = (("a", "http://127.0.0.1:9/a"), ("b", "http://127.0.0.1:9/b"))
    settings = dataclasses.replace(Settings.from_env({}), database_url=url, webhook_urls=targets)
    db = Database(url)
    notifier = Notifier(db, settings)
    notifier.cursors()
    at = utcnow() - (SETTLE * 2 if settled else dt.timedelta())
    with db.session() as s:
        s.add_all(
            [RegistryEvent(kind="promote" if i % 2 else "backup", actor="x", at=at, details={}) for i in range(events)]
        )
    started = time.perf_counter()
    while notifier.enqueue():
        pass
    backlog = time.perf_counter() - started
    with db.session() as s:
        s.execute(update(NotificationDelivery).values(status="delivered"))
    passes = []
    for _ in range(5):
        started = time.perf_counter()
        notifier.dispatch()
        passes.append((time.perf_counter() - started) * 1000)
    db.dispose()
    return backlog, statistics.median(passes)


def wake_latency_ms(repeats: int) -> float:
    url = f"sqlite:///{tempfile.mkdtemp(prefix='bench-notify-')}/wake.db"
    with Receiver() as receiver:
        settings = dataclasses.replace(Settings.from_env({}), database_url=url, webhook_urls=(("r", receiver.url()),))
        db = Database(url)
        Notifier(db, settings).dispatch()
        dispatcher = Dispatcher(settings, interval=30)
        dispatcher.start()
        time.sleep(1)
        latencies = []
        try:
            for i in range(repeats):
                started = time.time()
                History(db).record_event("promote", actor="bench", to_version=f"1.0.{i}")
                while len(receiver.requests) <= i:
                    time.sleep(0.002)
                latencies.append((receiver.requests[i].at - started) * 1000)
        finally:
            dispatcher.stop()
            db.dispose()
    return statistics.median(latencies)


def postgres_url() -> str | None:
    name = f"bench_notify_{uuid.uuid4().hex[:8]}"
    try:
        with create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT").connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception:
        return None
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_postgres(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT").connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    ok = True
    for backend in ("sqlite", "postgresql"):
        for settled in (True, False):
            url = postgres_url() if backend == "postgresql" else f"sqlite:///{tempfile.mkdtemp()}/bench.db"
            if url is None:
                print("postgresql: not reachable on 127.0.0.1:5432, skipped")
                break
            backlog, idle = idle_pass_ms(url, args.events, settled)
            label = "settled" if settled else "recent"
            print(f"{backend:<10} {args.events:,} events ({label}): backlog {backlog:.1f} s, idle pass {idle:.1f} ms")
            if backend == "postgresql":
                drop_postgres(url)
            ok &= idle < PASS_TARGET_MS or not settled
    wake = wake_latency_ms(args.repeats)
    print(f"in-process change -> receiver: median {wake:.0f} ms (target < {WAKE_TARGET_MS:.0f} ms)")
    return 0 if ok and wake < WAKE_TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
