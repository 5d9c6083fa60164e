#!/usr/bin/env python3
"""Dashboard render time per page (AppTest); server start to healthy.

Pages render with 1,000 versions in history and 10,000 backup files. Per page: the first render in a fresh
process (empty caches), warm reruns (the same-process baseline), and the first render after each kind of change
(promote, restore, clean-up) made by another process: what an operator waits for after a change.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from core import constants as C
from core.db import Database, RegistryEvent, TrainingRun
from core.registry import Registry
from dashboard.pages import PAGE_NAMES
from tests.factories import metadata_fields, promote, tiny_models

ROOT = Path(__file__).resolve().parent.parent

PAGE_TARGET_MS = 300.0
CHANGES: tuple[str, ...] = ("promote", "restore", "cleanup")
HEALTH_TARGET_S = 3.0
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def seed_history(db: Database, versions: int) -> None:
    """`versions` promoted runs with their metadata and promote events, plus one rejected run and one restore per 20."""
    runs, events = [], []
    for i in range(versions):
        at = NOW - dt.timedelta(hours=6 * (versions - i))
        version = f"1.{i}.0"
        meta = metadata_fields(accuracy=0.74 + 0.1 * (i % 17) / 17, trained_at=at)
        meta.update(version=version, promoted_at=at.isoformat(), trigger="cron", actor="scheduler")
        runs.append(
            dict(
                id=uuid.uuid4().hex,
                status="promoted",
                trigger="cron",
                actor="scheduler",
                version=version,
                stage="done",
                progress=1.0,
                params={"days_back": 180, "force": True},
                metrics=meta["model_performance"],
                gate=meta["validation"],
                data_stats=meta["training_data_stats"],
                model_metadata=meta,
                log=[],
                duration_seconds=1.5,
                error=None,
                started_at=at - dt.timedelta(seconds=2),
                finished_at=at,
            )
        )
        events.append(
            dict(
                kind="promote",
                actor="scheduler",
                at=at,
                from_version=f"1.{i - 1}.0" if i else None,
                to_version=version,
                reason=None,
                details={"trigger": "cron", "run_id": runs[-1]["id"], "metadata": meta},
            )
        )
        if i % 20 == 10:
            runs.append(
                dict(
                    id=uuid.uuid4().hex,
                    status="rejected",
                    trigger="cron",
                    actor="scheduler",
                    version=None,
                    stage="done",
                    progress=1.0,
                    params={"days_back": 180},
                    metrics={"accuracy": 0.62},
                    gate={"valid": False, "reason": "accuracy 0.62 not above 0.7"},
                    data_stats={"sample_count": 800},
                    model_metadata={"model_performance": {"accuracy": 0.62}},
                    log=[],
                    duration_seconds=1.2,
                    error=None,
                    started_at=at + dt.timedelta(hours=1),
                    finished_at=at + dt.timedelta(hours=1, seconds=2),
                )
            )
            events.append(
                dict(
                    kind="restore",
                    actor="alice",
                    at=at + dt.timedelta(hours=2),
                    from_version=version,
                    to_version=f"1.{i - 1}.0",
                    reason="benchmark",
                    details={},
                )
            )
    with db.session() as s:
        s.execute(insert(TrainingRun), runs)
        s.execute(insert(RegistryEvent), events)


def seed_backup_files(models_dir: Path, files: int, versions: int) -> None:
    """Backup sets of three files each (tiny model files, real metadata with matching sizes) until `files` exist."""
    payload = b"\x80\x04benchmark-model" * 8
    for n in range(files // len(C.SET_FILES) + 1):
        ts = (NOW - dt.timedelta(days=400, minutes=7 * n)).strftime(C.BACKUP_TS_FORMAT)
        meta = metadata_fields(accuracy=0.75 + (n % 13) / 100)
        meta.update(
            version=f"1.{n % versions}.0",
            artifacts={f: {"sha256": "0" * 64, "bytes": len(payload)} for f in C.MODEL_FILES},
        )
        for f in C.MODEL_FILES:
            (models_dir / f"{f}{C.BACKUP_MARKER}{ts}").write_bytes(payload)
        (models_dir / f"{C.METADATA_FILE}{C.BACKUP_MARKER}{ts}").write_text(json.dumps(meta))


CPU_MS: dict[str, list[float]] = {}  # CPU time of this process per timed run, by kind of run (any thread: the page's
# script thread and the database threads it waits on), next to the wall clock that other load on the machine inflates
AFTER_CPU_MS: dict[tuple[str, str], float] = {}  # (page, change) -> CPU ms of its first run after that change


def run_timed(at: Any, kind: str = "") -> float:
    """One AppTest run (ms of wall clock; its CPU time goes to CPU_MS[kind]); an exception on the page ends the
    benchmark."""
    start, cpu = time.perf_counter(), time.process_time()
    at.run()
    elapsed = (time.perf_counter() - start) * 1000
    CPU_MS.setdefault(kind, []).append((time.process_time() - cpu) * 1000)
    if at.exception:
        raise SystemExit(f"page raised: {at.exception[0].value}")
    return elapsed


def time_pages(repeats: int) -> tuple[dict[str, Any], dict[str, list[float]], dict[str, float]]:
    """Each page through the router: the first (cold) run, then `repeats` timed reruns (ms)."""
    import streamlit.logger
    from streamlit.testing.v1 import AppTest

    from dashboard.pages import page_path

    streamlit.logger.set_log_level("error")
    apps: dict[str, Any] = {}
    results: dict[str, list[float]] = {}
    cold: dict[str, float] = {}
    for name in PAGE_NAMES:
        at = apps[name] = AppTest.from_file(str(ROOT / "dashboard" / "router.py"), default_timeout=120)
        at.switch_page(page_path(name))
        cold[name] = run_timed(at, "fresh")
        results[name] = [run_timed(at, "warm") for _ in range(repeats)]
    return apps, results, cold


def change(kind: str, models: Path, url: str, n: int) -> None:
    """One registry change made by another process (a fork, as the CLI or cron would make it)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            db = Database(url)
            registry = Registry(models, db)
            if kind == "promote":
                failure, anomaly = tiny_models(100 + n)
                fields = metadata_fields(accuracy=0.8 + (n % 9) / 100)
                registry.promote(failure, anomaly, fields, actor="bench", trigger="bench", respect_hold=False)
            elif kind == "restore":
                live = registry.current()
                chosen = next(s for s in registry.backups() if s.restorable and live and s.version != live.version)
                registry.restore(chosen.timestamp, actor="bench", reason="bench", hold=False)
            else:
                registry.cleanup(len(registry.backups()) - 1, actor="bench", reason="bench")
            db.dispose()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the {kind} failed in the child process")


def time_after_changes(apps: dict[str, Any], models: Path, url: str) -> dict[str, dict[str, float]]:
    """Each page's first render after each kind of change (ms): the page is the first to read after the change."""
    out: dict[str, dict[str, float]] = {}
    n = 0
    for name, at in apps.items():
        out[name] = {}
        for kind in CHANGES:
            n += 1
            change(kind, models, url, n)
            out[name][kind] = run_timed(at, "after a change")
            AFTER_CPU_MS[(name, kind)] = CPU_MS["after a change"][-1]
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_server_health(env: dict[str, str]) -> float:
    """Seconds from starting `streamlit run dashboard/server.py` to a 200 from its health check."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "dashboard" / "server.py"),
        "--server.port",
        str(port),
        "--server.headless",
        "true",
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while time.perf_counter() - start < 60:
            if proc.poll() is not None:
                raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as resp:
                    if resp.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        raise SystemExit("server did not answer its health check within 60 s")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--backup-files", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--skip-server", action="store_true")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_dashboard_"))
    models = tmp / "models"
    models.mkdir()
    url = f"sqlite:///{tmp / 'bench.db'}"
    os.environ.update(DATABASE_URL=url, MODELS_DIR=str(models), DASHBOARD_BOOTSTRAP="0")
    db = Database(url)
    t0 = time.perf_counter()
    seed_history(db, args.versions)
    registry = Registry(models, db)
    promote(registry, seed=1, accuracy=0.81)
    promote(registry, seed=2, accuracy=0.83)
    seed_backup_files(models, args.backup_files, args.versions)
    # The seeded sets stand for months of writes, each of which saved the backup index: save it once.
    registry.index.refresh(save=True)
    files = sum(1 for p in models.iterdir() if C.BACKUP_MARKER in p.name)
    db.dispose()
    print(
        f"setup: {args.versions} versions in history, {files} backup files on disk ({time.perf_counter() - t0:.1f} s)"
    )

    apps, results, cold = time_pages(args.repeats)
    after = time_after_changes(apps, models, url)
    failed = False
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores, shared)")
    print(
        f"\nAppTest run per page (ms): warm = median of {args.repeats} reruns (the same-process baseline); "
        "fresh = first run in this process (empty caches); after promote / restore / clean-up = the page's first "
        "run after that change, made by another process; ratio = worst after-change / warm"
    )
    print(
        f"{'page':<10} {'warm':>7} {'fresh':>7} {'promote':>8} {'restore':>8} {'cleanup':>8} {'ratio':>6} "
        f"{'target':>7}  result  CPU of the slowest after-change run"
    )
    for name, times in results.items():
        median = statistics.median(times)
        worst = max(after[name].values())
        ok = median < PAGE_TARGET_MS and worst <= PAGE_TARGET_MS
        failed |= not ok
        print(
            f"{name:<10} {median:>7.1f} {cold[name]:>7.1f} "
            + " ".join(f"{after[name][k]:>8.1f}" for k in CHANGES)
            + f" {worst / median:>5.1f}x {'<=' + str(int(PAGE_TARGET_MS)):>7}  {'ok' if ok else 'OVER TARGET'}"
            + f"  {AFTER_CPU_MS[(name, max(CHANGES, key=lambda k: after[name][k]))]:.1f}"
        )
    every = [v for page in after.values() for v in page.values()]
    print(f"after any change, all pages: median {statistics.median(every):.1f} ms, max {max(every):.1f} ms")
    cpu = CPU_MS["after a change"]
    print(
        f"CPU time of those runs: median {statistics.median(cpu):.1f} ms, max {max(cpu):.1f} ms "
        f"(warm runs: median {statistics.median(CPU_MS['warm']):.1f} ms)"
    )
    worst_page, worst_kind = max(((p, k) for p in after for k in CHANGES), key=lambda pk: after[pk[0]][pk[1]])
    print(f"slowest after a change: {worst_page} after {worst_kind}")
    if not args.skip_server:
        seconds = time_server_health(dict(os.environ))
        ok = seconds < HEALTH_TARGET_S
        failed |= not ok
        print(
            f"\nserver start → /_stcore/health 200: {seconds:.2f} s "
            f"(target < {HEALTH_TARGET_S:g} s)  {'ok' if ok else 'OVER TARGET'}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
