#!/usr/bin/env python3
"""HTTP API latency against the real server, with a real trained model, loopback only.

The server is `streamlit run dashboard/server.py`.

1. GET  /api/predictions/models/status: 20 concurrent keep-alive clients for 10 s; target p99 <= 10 ms
   (issue 14; was 20 ms).
2. POST /api/predictions/predict: one sequential client with varied readings and devices with history;
   target p99 <= 5 ms (issue 14; was 10 ms).
Both clients run in a separate process from the server (and from this driver), with a minimal asyncio
HTTP/1.1 client so that client overhead stays small next to what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.server import stop

ROOT = Path(__file__).resolve().parent.parent

STATUS_TARGET_P99_MS = 10.0
PREDICT_TARGET_P99_MS = 5.0
MAX_REQUESTS = 1_000_000
LENGTH = re.compile(rb"content-length:\s*(\d+)", re.I)


# ----------------------------------------------------------------- client side (runs in its own process)
async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(int(LENGTH.search(head).group(1)))
    return int(head[9:12])


def _request(method: str, port: int, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: keep-alive\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def _status_clients(port: int, clients: int, seconds: float) -> dict:
    raw = _request("GET", port, "/api/predictions/models/status")
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    errors = 0

    async def one() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline and len(latencies) < MAX_REQUESTS:
                t0 = time.perf_counter()
                status = await _exchange(reader, writer, raw)
                latencies.append(time.perf_counter() - t0)
                errors += status != 200
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(clients)))
    return {"latencies": latencies, "errors": errors, "seconds": seconds}


async def _predict_client(port: int, requests: int, devices: list[str], seed: int) -> dict:
    from core.constants import METRIC_RANGES

    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies: list[float] = []
    errors = 0
    try:
        for i in range(requests):
            metrics = {m: lo + (hi - lo) * rng.uniform(0.05, 0.3) for m, (lo, hi) in METRIC_RANGES.items()}
            metrics["signal_strength"] = rng.uniform(-90, -50)
            body = json.dumps({"device_id": devices[i % len(devices)], "metrics": metrics}).encode()
            raw = _request("POST", port, "/api/predictions/predict", body)
            t0 = time.perf_counter()
            status = await _exchange(reader, writer, raw)
            latencies.append(time.perf_counter() - t0)
            errors += status != 200
    finally:
        writer.close()
    return {"latencies": latencies, "errors": errors}


def client_main(argv: list[str]) -> None:
    """Client process entry point: prints JSON.

    `bench_api.py --client status PORT CLIENTS SECONDS` or `--client predict PORT REQUESTS DEVICES_JSON`.
    """
    kind, port = argv[0], int(argv[1])
    if kind == "status":
        result = asyncio.run(_status_clients(port, int(argv[2]), float(argv[3])))
    else:
        result = asyncio.run(_predict_client(port, int(argv[2]), json.loads(argv[3]), seed=1))
    print(json.dumps(result))


# ----------------------------------------------------------------- driver
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(workdir: Path) -> tuple[str, Path, list[str]]:
    """A database with a simulated fleet and a promoted real model (reused when workdir already has one)."""
    from sqlalchemy import select

    from core.db import Database, Device
    from core.registry import Registry

    models = workdir / "models"
    models.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{workdir / 'bench.db'}"
    db = Database(url)
    registry = Registry(models, db)
    if registry.current() is None:
        from core.simulator import simulate_fleet
        from core.training import load_training_data, train_candidate

        print("preparing: simulating 60 devices x 60 days and training the default model ...", flush=True)
        simulate_fleet(db, devices=60, days=60)
        features, source = load_training_data(db, days_back=60)
        candidate = train_candidate(features, data_source=source)
        # The benchmark needs a real model whatever the validation gate would say about it.
        registry.promote(
            candidate.failure_model,
            candidate.anomaly_model,
            candidate.metadata_fields(),
            actor="bench",
            trigger="benchmark",
        )
    with db.session() as s:
        devices = list(s.scalars(select(Device.id).order_by(Device.id)))
    db.dispose()
    return url, models, devices


def wait_ready(base: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{base}/api/predictions/models/status", timeout=2) as r:
                if json.loads(r.read())["is_trained"]:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the server did not become ready (exit code {proc.poll()})")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), to report server cost independent of other load."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_client(*args: str, timeout: float) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_api", "--client", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return json.loads(out.stdout)


def report(name: str, result: dict, target_p99_ms: float) -> bool:
    ms = sorted(x * 1000 for x in result["latencies"])
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    ok = p99 <= target_p99_ms and result["errors"] == 0
    rate = f", {len(ms) / result['seconds']:.0f} req/s" if "seconds" in result else ""
    cpu = (
        f", server CPU {result['server_cpu_s'] * 1000 / len(ms):.2f} ms/req"
        if result.get("server_cpu_s") is not None
        else ""
    )
    print(
        f"{name:30s} n={len(ms):6d}{rate}{cpu}\n"
        f"{'':30s} median {statistics.median(ms):6.2f} ms  p99 {p99:6.2f} ms  "
        f"max {ms[-1]:7.2f} ms  errors {result['errors']}  "
        f"target p99 <= {target_p99_ms:g} ms: {'PASS' if ok else 'MISS'}"
    )
    return ok


def measured(pid: int, *client_args: str, timeout: float) -> dict:
    """Run a client process and add the server's CPU time spent meanwhile."""
    before = cpu_seconds(pid)
    result = run_client(*client_args, timeout=timeout)
    after = cpu_seconds(pid)
    result["server_cpu_s"] = after - before if before is not None and after is not None else None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--workdir", type=Path, help="keep the database and model here and reuse them next time (default: a temp dir)"
    )
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--predictions", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        url, models, devices = prepare(workdir)
        port = _free_port()
        env = {**os.environ, "DATABASE_URL": url, "MODELS_DIR": str(models), "DASHBOARD_BOOTSTRAP": "0"}
        env.pop("API_KEY", None)
        cmd = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "dashboard/server.py",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
        ]
        # the log must stay open for the server process's lifetime (closed in the finally below)
        log = open(workdir / "server.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(f"http://127.0.0.1:{port}", proc)
            print(
                f"server pid {proc.pid} on 127.0.0.1:{port}; {os.cpu_count()} CPUs; "
                f"load average {os.getloadavg()[0]:.2f} before the runs"
            )
            run_client("predict", str(port), "50", json.dumps(devices[:5]), timeout=120)  # warm-up: model load, caches
            status = measured(
                proc.pid, "status", str(port), str(args.clients), str(args.seconds), timeout=args.seconds + 120
            )
            predict = measured(proc.pid, "predict", str(port), str(args.predictions), json.dumps(devices), timeout=600)
            print(f"load average after the runs: {os.getloadavg()[0]:.2f}")
            ok = report(f"GET models/status x{args.clients} clients", status, STATUS_TARGET_P99_MS)
            ok &= report("POST predict (1 client)", predict, PREDICT_TARGET_P99_MS)
        finally:
            stop(proc)
            log.close()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(sys.argv[2:])
    else:
        main()
