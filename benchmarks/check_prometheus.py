#!/usr/bin/env python3
"""Real Prometheus against the real server: every PromQL expression of the Grafana dashboard returns data.

Needs `prometheus` and `promtool` on PATH (Debian: `apt-get install prometheus`); not a unit test.

1. A default fleet (150 devices, 120 days, a firmware change 10 days ago) seeded, a model trained and promoted,
   a second run rejected by a strict gate, the fleet scored 30 to 9 days ago (realised figures): all with the CLIs.
2. `streamlit run dashboard/server.py` on loopback with API_KEY set; a client posts predictions (a few invalid).
3. Prometheus from deploy/prometheus.yml (its job, path and Bearer authorization; the target and key file
   rewritten for loopback, a 2 s scrape interval), checked with `promtool check config` first.
4. Every panel target of deploy/grafana/model-ops-dashboard.json through Prometheus's HTTP API ($__rate_interval
   as 30s): each must return at least one series. The prediction counter must equal what the client sent.
5. Scrape time: Prometheus's `scrape_duration_seconds` for the job, and 50 timed GETs of /api/metrics.

`python -m benchmarks.check_prometheus [--seconds 60]`; exit 0 when every expression returned data and the
slowest scrape stayed under 1 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from tests.api.test_predict import READING  # the readings the API tests predict on
from tests.server import free_port, http_get, launch, server_command, stop, wait_until

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "model-ops-dashboard.json"
KEY = "check-prometheus-key-5d1c"
SCRAPE_TARGET_SECONDS = 1.0
GRAFANA_VARIABLES = {"$__rate_interval": "30s", "$__interval": "2s", "$__range": "5m"}


def run_cli(env: dict[str, str], *args: str, ok: tuple[int, ...] = (0,)) -> None:
    started = time.monotonic()
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True)
    print(f"  {' '.join(args)[:90]}: exit {done.returncode} in {time.monotonic() - started:.1f} s")
    if done.returncode not in ok:
        raise SystemExit(f"{args[0]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def prepare(env: dict[str, str]) -> None:
    """The world, made with the CLIs the operations guide uses."""
    today = dt.datetime.now(dt.UTC).date()
    drift_from = (today - dt.timedelta(days=10)).isoformat()
    run_cli(env, "scripts/seed_telemetry.py", "--drift-from", drift_from)
    run_cli(env, "scripts/train_models.py", "--force", "--days-back", "180")
    run_cli({**env, "GATE_F1": "0.99"}, "scripts/train_models.py", "--force", "--days-back", "180", ok=(1,))
    start, end = (today - dt.timedelta(days=30)).isoformat(), (today - dt.timedelta(days=9)).isoformat()
    run_cli({**env, "MODEL_OPS_API_KEY": KEY}, "scripts/score_fleet.py", "--from", start, "--to", end)


class Client(threading.Thread):
    """Posts predictions until stopped (every tenth one invalid), counting what it sent."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base, self.sent, self.errors = base, 0, 0
        self.halt = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.halt.is_set():
            i += 1
            metrics = {**READING, "temperature": "hot"} if i % 10 == 0 else {**READING, "temperature": 20 + i % 15}
            body = json.dumps({"device_id": f"device_{i % 150:03d}", "metrics": metrics}).encode()
            request = urllib.request.Request(
                f"{self.base}/api/predictions/predict", data=body, headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    response.read()
            except urllib.error.HTTPError as exc:
                exc.read()
                self.errors += 1
            self.sent += 1
            time.sleep(0.05)


def prometheus_config(workdir: Path, port: int) -> Path:
    """deploy/prometheus.yml with the target on loopback, a local key file and a 2 s scrape interval."""
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "2s"
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    key_file = workdir / "api_key"
    key_file.write_text(KEY)
    job["authorization"]["credentials_file"] = str(key_file)
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    check = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True)
    print(f"  promtool check config: exit {check.returncode} {check.stdout.strip().splitlines()[-1:]}")
    if check.returncode != 0:
        raise SystemExit(check.stdout + check.stderr)
    return path


def query(prom: str, expr: str) -> list[dict]:
    url = f"{prom}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.loads(response.read())
    if answer["status"] != "success":
        raise RuntimeError(f"{expr}: {answer}")
    return answer["data"]["result"]


def grafana_to_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def check_panels(prom: str) -> int:
    """Print every panel target's answer; the number of targets that returned no series."""
    board = json.loads(DASHBOARD.read_text())
    empty = 0
    for panel in board["panels"]:
        for target in panel["targets"]:
            result = query(prom, grafana_to_promql(target["expr"]))
            shown = ", ".join(
                f"{','.join(f'{k}={v}' for k, v in r['metric'].items() if k not in ('job', 'instance')) or '-'}"
                f"={float(r['value'][1]):.4g}"
                for r in result[:4]
            )
            more = f" (+{len(result) - 4} more)" if len(result) > 4 else ""
            print(f"  [{'ok' if result else 'NO DATA'}] {panel['title']} / {target['refId']}: {shown}{more}")
            empty += not result
    return empty


def time_scrapes(base: str, count: int) -> list[float]:
    request = urllib.request.Request(f"{base}/api/metrics", headers={"Authorization": f"Bearer {KEY}"})
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
        seconds.append(time.perf_counter() - started)
        time.sleep(0.1)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long Prometheus scrapes under load")
    args = parser.parse_args(argv)
    for tool in ("prometheus", "promtool"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (Debian: apt-get install prometheus)")
            return 2
    workdir = Path(tempfile.mkdtemp(prefix="check-prometheus-"))
    (workdir / "models").mkdir()
    env = {
        "DATABASE_URL": f"sqlite:///{workdir / 'telemetry.db'}",
        "MODELS_DIR": str(workdir / "models"),
        "API_KEY": KEY,
        "DASHBOARD_BOOTSTRAP": "0",
        "TRAINING_LOG": str(workdir / "training.log"),
        "METRICS_REFRESH_SECONDS": "20",  # so the drift refresh also runs while Prometheus scrapes
    }
    print(f"world in {workdir}:")
    prepare(env)
    port, prom_port = free_port(), free_port()
    base, prom = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{prom_port}"
    server_log = open(workdir / "server.log", "wb")  # noqa: SIM115 (open while the server runs)
    prom_log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115
    server = launch(env, server_log, server_command(port))
    prometheus = None
    client = Client(base)
    try:
        if not wait_until(server, lambda: http_get(f"{base}/api/predictions/models/status")[0] == 200, timeout=90):
            raise SystemExit(f"server did not start: {(workdir / 'server.log').read_text()[-2000:]}")
        config = prometheus_config(workdir, port)
        prometheus = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=prom_log,
            stderr=subprocess.STDOUT,
        )
        up = 'up{job="model-ops"}'
        if not wait_until(prometheus, lambda: any(r["value"][1] == "1" for r in query(prom, up)), timeout=60):
            raise SystemExit(f"prometheus never scraped the server: {(workdir / 'prometheus.log').read_text()[-2000:]}")
        client.start()
        print(f"Prometheus scraping {base}/api/metrics every 2 s for {args.seconds:.0f} s under a prediction load")
        direct = time_scrapes(base, 50)
        time.sleep(max(0.0, args.seconds - sum(direct) - 5))
        client.halt.set()
        client.join(15)
        time.sleep(6)  # at least two more scrapes after the last request
        print("every panel of the dashboard, through Prometheus:")
        empty = check_panels(prom)
        counted = sum(float(r["value"][1]) for r in query(prom, "sum(model_ops_prediction_requests_total)"))
        errors = sum(float(r["value"][1]) for r in query(prom, "sum(model_ops_prediction_errors_total)"))
        print(
            f"  client sent {client.sent} predictions ({client.errors} invalid); Prometheus counted {counted:.0f}"
            f" ({errors:.0f} errors)"
        )
        window = f"{int(args.seconds + 30)}s"
        durations = {
            name: float(
                query(prom, f'{name}_over_time(scrape_duration_seconds{{job="model-ops"}}[{window}])')[0]["value"][1]
            )
            for name in ("avg", "max")
        }
        samples = float(
            query(prom, f'count_over_time(scrape_duration_seconds{{job="model-ops"}}[{window}])')[0]["value"][1]
        )
        direct_ms = sorted(s * 1000 for s in direct)
        print("scrape time of /api/metrics (default fleet, drift recomputed every 20 s in the background):")
        print(
            f"  Prometheus scrape_duration_seconds over {samples:.0f} scrapes: mean {durations['avg'] * 1000:.1f} ms,"
            f" max {durations['max'] * 1000:.1f} ms (target < {SCRAPE_TARGET_SECONDS * 1000:.0f} ms)"
        )
        print(
            f"  50 timed GETs: median {statistics.median(direct_ms):.1f} ms, p90 {direct_ms[44]:.1f} ms,"
            f" max {direct_ms[-1]:.1f} ms"
        )
        log_lines = (workdir / "server.log").read_text().splitlines()
        refreshes = [line.rsplit(" in ", 1)[-1] for line in log_lines if "metrics: drift and realised" in line]
        print(f"  background refreshes (drift + realised) in the server log: {', '.join(refreshes) or 'none'}")
        ok = (
            empty == 0
            and counted == client.sent
            and errors == client.errors
            and max(durations["max"], direct_ms[-1] / 1000) < SCRAPE_TARGET_SECONDS
        )
        print("RESULT:", "every expression returned data, counts match, scrapes fast" if ok else "FAILED")
        return 0 if ok else 1
    finally:
        client.halt.set()
        if prometheus is not None:
            stop(prometheus)
        stop(server)
        server_log.close()
        prom_log.close()


if __name__ == "__main__":
    sys.exit(main())
