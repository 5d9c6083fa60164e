#!/usr/bin/env python3
"""What the prediction log costs, and how long realised performance takes to compute.

1. POST /api/predictions/predict p99 with the prediction log off (baseline) and on: two real servers
   (`streamlit run dashboard/server.py`, PREDICTION_LOG=0 and 1) on one database, measured alternately from a
   separate client process (benchmarks.bench_api's HTTP/1.1 client), REPEATS times each; the medians of the
   per-repeat p99s are compared. Target: the log adds at most 1 ms to p99.
2. Realised performance (ModelOps.realised_performance) over a daily-scored fleet: 150 devices x 120 days
   (baseline) and 1,500 devices x 120 days, the live version and one shadow candidate each; median of REPEATS
   runs, and the ratio to the baseline. Fleet scoring (score_fleet over the 120 days) is timed once per fleet.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_api import _free_port, prepare, run_client, wait_ready
from tests.server import stop

ROOT = Path(__file__).resolve().parent.parent
P99_BUDGET_MS = 1.0


def p99(latencies: list[float]) -> float:
    ms = sorted(x * 1000 for x in latencies)
    return ms[min(len(ms) - 1, int(len(ms) * 0.99))]


def start_server(url: str, models: Path, log_on: bool, workdir: Path) -> tuple[subprocess.Popen, int, object]:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "MODELS_DIR": str(models),
        "DASHBOARD_BOOTSTRAP": "0",
        "PREDICTION_LOG": "1" if log_on else "0",
    }
    env.pop("API_KEY", None)
    cmd = [sys.executable, "-m", "streamlit", "run", "dashboard/server.py", "--server.address", "127.0.0.1"]
    cmd += ["--server.port", str(port), "--server.headless", "true"]
    log = open(workdir / f"server-log-{'on' if log_on else 'off'}.log", "wb")  # noqa: SIM115 (closed in main)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_ready(f"http://127.0.0.1:{port}", proc)
    return proc, port, log


def bench_predict(workdir: Path, repeats: int, requests: int) -> bool:
    url, models, devices = prepare(workdir)
    servers = {}
    try:
        for log_on in (False, True):
            servers[log_on] = start_server(url, models, log_on, workdir)
        for _, port, _ in servers.values():  # warm-up: model load, caches, the writer thread
            run_client("predict", str(port), "100", json.dumps(devices[:5]), timeout=120)
        p99s: dict[bool, list[float]] = {False: [], True: []}
        medians: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(repeats):
            for log_on, (_, port, _) in servers.items():  # alternate, so drifting machine load hits both alike
                result = run_client("predict", str(port), str(requests), json.dumps(devices), timeout=600)
                assert result["errors"] == 0, result["errors"]
                p99s[log_on].append(p99(result["latencies"]))
                medians[log_on].append(statistics.median(result["latencies"]) * 1000)
    finally:
        for proc, _, log in servers.values():
            stop(proc)
            log.close()
    from core.db import Database
    from core.prediction_log import count

    db = Database(url)
    logged = count(db)
    db.dispose()
    off, on = statistics.median(p99s[False]), statistics.median(p99s[True])
    print(f"POST predict, {repeats} repeats x {requests} requests each, log off / on alternately:")
    print(f"  p99 per repeat, log off: {', '.join(f'{x:.2f}' for x in p99s[False])} ms")
    print(f"  p99 per repeat, log on:  {', '.join(f'{x:.2f}' for x in p99s[True])} ms")
    print(
        f"  median latency off {statistics.median(medians[False]):.2f} ms, on {statistics.median(medians[True]):.2f} ms"
    )
    ok = on - off <= P99_BUDGET_MS
    print(
        f"  median p99: off {off:.2f} ms, on {on:.2f} ms, difference {on - off:+.2f} ms, ratio {on / off:.2f} "
        f"(budget +{P99_BUDGET_MS:g} ms): {'PASS' if ok else 'MISS'}; {logged:,} predictions logged"
    )
    return ok


def scored_fleet(root: Path, devices: int, interval_hours: float) -> object:
    """A fleet of `devices` over 120 days, a model trained on its first 60 days, one candidate kept beside it,
    and all 120 days scored by both (as a daily job would have)."""
    from core.config import Settings
    from core.identity import local_principal
    from core.modelops import ModelOps
    from core.simulator import simulate_fleet
    from core.training import load_training_data, train_candidate

    root.mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(exist_ok=True)
    ops = ModelOps(Settings.from_env({}, database_url=f"sqlite:///{root / 'fleet.db'}", models_dir=root / "models"))
    end = dt.datetime(2026, 1, 15, 12, tzinfo=dt.UTC)
    started = time.perf_counter()
    simulate_fleet(ops.db, devices=devices, days=120, interval_hours=interval_hours, seed=42, end=end)
    seeded = time.perf_counter() - started
    features, _ = load_training_data(ops.db, days_back=60, end=end - dt.timedelta(days=60))
    trained = train_candidate(features, seed=42)
    fields = trained.metadata_fields()
    ops.registry.promote(trained.failure_model, trained.anomaly_model, fields, actor="bench", trigger="benchmark")
    ops.registry.keep_candidate(
        trained.failure_model, trained.anomaly_model, fields, actor="b", trigger="b", because="b"
    )
    started = time.perf_counter()
    run = ops.score_fleet(actor=local_principal("bench"), as_of=end, start=(end - dt.timedelta(days=119)).date())
    print(
        f"  {devices} devices x 120 days ({interval_hours:g} h readings): seeded in {seeded:.1f} s; "
        f"scored {run.device_days:,} device-days x {len(run.models)} models in {time.perf_counter() - started:.1f} s"
    )
    return ops, end


def bench_realised(workdir: Path, repeats: int, large_devices: int) -> None:
    print(f"Realised performance, median of {repeats} runs:")
    results = {}
    for name, devices, interval in (("baseline", 150, 6.0), ("large", large_devices, 24.0)):
        ops, end = scored_fleet(workdir / name, devices, interval)
        times, rows = [], 0
        for _ in range(repeats):
            started = time.perf_counter()
            report = ops.realised_performance(as_of=end)
            times.append(time.perf_counter() - started)
            rows = sum(v.predictions for v in report.versions)
        live = report.versions[0]
        results[name] = statistics.median(times)
        print(
            f"  {devices:5d} devices: {rows:,} logged device-days, {len(report.versions)} versions, "
            f"live realised f1 {live.total.f1_score} over {live.total.outcomes:,} outcomes; "
            f"median {results[name] * 1000:.0f} ms (runs: {', '.join(f'{t * 1000:.0f}' for t in times)} ms)"
        )
        ops.dispose()
    print(f"  ratio {large_devices} / 150 devices: {results['large'] / results['baseline']:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, help="keep the databases here (default: a temp dir)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--predictions", type=int, default=1000, help="requests per client run")
    parser.add_argument("--large-devices", type=int, default=1500)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-realised", action="store_true")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at start")
        if not args.skip_http:
            ok = bench_predict(workdir / "http", args.repeats, args.predictions)
        if not args.skip_realised:
            bench_realised(workdir, args.repeats, args.large_devices)
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
