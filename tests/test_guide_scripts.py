"""The guide's monitoring scripts and curl | jq commands against the REAL server (streamlit run dashboard/server.py)."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from core import constants as C
from core import prediction_log as P
from core.db import Database, PredictionError
from core.registry import Registry
from core.simulator import simulate_fleet
from tests.api.conftest import promote_feature_model
from tests.factories import promote
from tests.server import free_port, launch, stop, wait_until
from tests.server import http_get as get
from tests.server import http_post as post

ROOT = Path(__file__).resolve().parent.parent
KEY = "guide-test-key"
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
pytestmark = pytest.mark.skipif(not all(shutil.which(t) for t in ("curl", "jq", "bc")), reason="needs curl, jq and bc")


def server_command(port: int) -> list[str]:
    """deploy/Dockerfile's CMD, on loopback and a free port, with this venv's python."""
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    cmd[cmd.index("--server.address") + 1] = "127.0.0.1"
    cmd[cmd.index("--server.port") + 1] = str(port)
    return [sys.executable, "-m", *cmd]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("guide")
    models = tmp / "models"
    models.mkdir()
    db_url = f"sqlite:///{tmp / 'telemetry.db'}"
    db = Database(db_url)
    registry = Registry(models, db)
    promote(registry, seed=1, accuracy=0.65)
    port = free_port()
    env = {
        "DATABASE_URL": db_url,
        "MODELS_DIR": str(models),
        "API_KEY": KEY,
        "API_KEY_NAME": "guide-test",
        "DASHBOARD_BOOTSTRAP": "0",
        "TRAINING_LOG": str(tmp / "training.log"),
        "ALERT_EVALUATE_SECONDS": "2",  # a read evaluates the alert rules when the last evaluation is older
        "TRAINING_SCHEDULE": "* * * * *",  # the compose trainer's next run is within a minute
    }
    # the log must stay open for the server process's lifetime (closed in the finally below)
    log = open(tmp / "server.log", "wb")  # noqa: SIM115
    proc = launch(env, log, server_command(port))
    base = f"http://127.0.0.1:{port}"
    try:
        up = wait_until(
            proc,
            lambda: get(f"{base}/_stcore/health")[0] == 200 and get(f"{base}/api/predictions/models/status")[0] == 200,
            timeout=60,
        )
        if not up:
            pytest.fail(f"server did not start: {(tmp / 'server.log').read_text()[-3000:]}")
        yield {"base": base, "port": port, "registry": registry, "models": models, "env": env, "tmp": tmp}
    finally:
        stop(proc)
        log.close()
        db.dispose()


def script(name: str, base: str, **env: str) -> subprocess.CompletedProcess:
    full = {"PATH": os.environ["PATH"], "MODEL_API_URL": base, **env}
    return subprocess.run([str(ROOT / "scripts" / name)], env=full, capture_output=True, text=True, timeout=30)


def shell(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=30)


def test_openapi_and_docs_are_served_under_api(server):
    status, body = get(f"{server['base']}/api/openapi.json")
    assert status == 200 and "/predictions/models/status" in json.loads(body)["paths"]
    status, body = get(f"{server['base']}/api/docs")
    assert status == 200 and b"/api/openapi.json" in body


def test_low_accuracy_raises_the_alert_and_the_warning(server):
    check = script("check_model_performance.sh", server["base"])
    assert check.returncode == 1, check.stderr
    assert check.stdout.strip() == "ALERT: Model accuracy (0.65) below threshold (0.7)"
    monitor = script("monitor_models.sh", server["base"])
    assert monitor.returncode == 0, monitor.stderr
    lines = monitor.stdout.splitlines()
    assert (
        lines[0] == "Model Version: 1.0.0" and lines[1].startswith("Training Date: 20") and lines[2] == "Accuracy: 0.65"
    )
    assert lines[3:] == [
        "WARNING: Model accuracy below recommended threshold",
        "Status: red",
        "WARNING: accuracy is 0.650, not above its threshold 0.7.",
    ]
    relaxed = script("check_model_performance.sh", server["base"], THRESHOLD="0.6")
    assert relaxed.returncode == 0 and "ALERT" not in relaxed.stdout


def test_the_guides_curl_jq_commands(server):
    status = shell(f"curl {server['base']}/api/predictions/models/status | jq")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["model_metadata"]["version"] == "1.0.0"
    for path, expected in (
        (".model_metadata.model_performance.accuracy", "0.65"),
        (".model_metadata.version", "1.0.0"),
        (".is_trained", "true"),
    ):
        out = shell(f"curl -s {server['base']}/api/predictions/models/status | jq -r '{path}'")
        assert out.stdout.strip() == expected
    compare = shell(f"curl {server['base']}/api/predictions/models/compare | jq")
    assert compare.returncode == 0 and json.loads(compare.stdout)["comparison_available"] is False


def test_after_a_better_model_no_alert(server):
    promote(server["registry"], seed=2, accuracy=0.82)
    check = script("check_model_performance.sh", server["base"])
    assert check.returncode == 0 and "ALERT" not in check.stdout, check.stdout + check.stderr
    monitor = script("monitor_models.sh", server["base"])
    assert (
        "Model Version: 1.0.1" in monitor.stdout
        and "Accuracy: 0.82" in monitor.stdout
        and "WARNING" not in monitor.stdout
    )
    compare = json.loads(shell(f"curl -s {server['base']}/api/predictions/models/compare | jq").stdout)
    assert compare["version_change"] == {"from": "1.0.0", "to": "1.0.1"}
    assert compare["performance"]["changes"]["accuracy"]["improved"] is True


def firing(base: str) -> list[dict]:
    return [a for a in json.loads(get(f"{base}/api/predictions/alerts")[1])["alerts"] if a["state"] == "firing"]


def acknowledge_all(base: str) -> list[str]:
    """Acknowledge every firing alert through the API (as an operator would); the rules acknowledged."""
    done = []
    for alert in firing(base):
        body = json.dumps({"reason": "seen by the guide test"}).encode()
        answer = json.loads(post(f"{base}/api/predictions/alerts/{alert['id']}/acknowledge", body, HEADERS))
        done.append(answer["alert"]["rule"])
    return done


def check_py(base: str, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "MODEL_API_URL": base}
    cmd = [sys.executable, str(ROOT / "scripts" / "check_model_performance.py"), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)


def test_a_firing_alert_the_status_does_not_show_makes_every_script_alert_until_acknowledged(server):
    """Failed predict requests over the error-rate threshold: only the alert engine knows; all three scripts say so."""
    db = Database(server["env"]["DATABASE_URL"])
    now = dt.datetime.now(dt.UTC)
    P.insert_errors(db, [{"at": now, "device_id": f"dev-{i}", "code": "unavailable"} for i in range(25)])
    try:
        time.sleep(2.1)  # older than ALERT_EVALUATE_SECONDS: the next read evaluates
        check = script("check_model_performance.sh", server["base"])
        assert check.returncode == 1, check.stdout + check.stderr
        assert re.search(r"^ALERT: prediction_error_rate \(red, firing since .*: 25 of 25 predict", check.stdout, re.M)
        monitor = script("monitor_models.sh", server["base"])
        assert monitor.returncode == 1 and "WARNING: alert firing: prediction_error_rate (red" in monitor.stdout
        cron = check_py(server["base"])
        assert cron.returncode == 1 and cron.stdout.startswith("ALERT: prediction_error_rate (red"), cron.stderr
        as_json = json.loads(check_py(server["base"], "--json").stdout)
        assert as_json["ok"] is False and [a["kind"] for a in as_json["firing"]] == ["prediction_error_rate"]

        logged = (server["tmp"] / "server.log").read_text()
        assert re.search(r"^\S+Z INFO alert: prediction_error_rate fired \(red, alert \d+\): 25 of 25", logged, re.M)
        assert acknowledge_all(server["base"]) == ["prediction_error_rate"]
        logged = (server["tmp"] / "server.log").read_text()
        assert "INFO alert: prediction_error_rate acknowledged by guide-test" in logged
        assert script("check_model_performance.sh", server["base"]).returncode == 0
        assert script("monitor_models.sh", server["base"]).returncode == 0
        quiet = check_py(server["base"])
        assert quiet.returncode == 0 and quiet.stdout.strip() == "OK: no alert firing (1 acknowledged, 0 silenced)"
    finally:
        with db.engine.begin() as conn:
            conn.execute(PredictionError.__table__.delete())
        db.dispose()
    time.sleep(2.1)
    assert not [a for a in json.loads(get(f"{server['base']}/api/predictions/alerts")[1])["alerts"]]


def test_the_server_evaluates_the_rules_in_the_background_without_a_read_of_alerts(server):
    """Only History is polled (it never evaluates): the server's own evaluator fires and later resolves."""

    def transitions(kind: str) -> list[dict]:
        body = json.loads(get(f"{server['base']}/api/predictions/models/events?kind={kind}&limit=50")[1])
        return [e for e in body["events"] if e["details"]["rule"] == "prediction_error_rate"]

    before = len(transitions("alert_fired")), len(transitions("alert_resolved"))
    db = Database(server["env"]["DATABASE_URL"])
    now = dt.datetime.now(dt.UTC)
    P.insert_errors(db, [{"at": now, "device_id": f"bg-{i}", "code": "error"} for i in range(30)])
    try:
        deadline = time.monotonic() + 15
        while len(transitions("alert_fired")) == before[0] and time.monotonic() < deadline:
            time.sleep(0.3)
        assert len(transitions("alert_fired")) == before[0] + 1
    finally:
        with db.engine.begin() as conn:
            conn.execute(PredictionError.__table__.delete())
        db.dispose()
    deadline = time.monotonic() + 15
    while len(transitions("alert_resolved")) == before[1] and time.monotonic() < deadline:
        time.sleep(0.3)
    assert len(transitions("alert_resolved")) == before[1] + 1
    assert len(transitions("alert_fired")) == before[0] + 1  # fired once in its episode, however many rounds ran


def test_check_py_cannot_reach_is_exit_2(server):
    closed = check_py(f"http://127.0.0.1:{free_port()}")
    assert closed.returncode == 2 and "cannot reach" in closed.stderr
    assert json.loads(check_py(f"http://127.0.0.1:{free_port()}", "--json").stdout)["reachable"] is False


def test_the_scripts_alert_on_a_damaged_model_whatever_its_accuracy(server):
    """A file that no longer matches the metadata: accuracy looks fine, the service says red, the scripts alert."""
    target = server["models"] / C.ANOMALY_MODEL_FILE
    good = target.read_bytes()
    target.write_bytes(b"truncated")
    try:
        check = script("check_model_performance.sh", server["base"], THRESHOLD="0.5")
        assert check.returncode == 1, check.stdout + check.stderr
        assert "ALERT: Model accuracy" not in check.stdout
        assert f"PROBLEM: {C.ANOMALY_MODEL_FILE} does not match {C.METADATA_FILE}" in check.stdout
        monitor = script("monitor_models.sh", server["base"], THRESHOLD="0.5")
        assert "Status: red" in monitor.stdout and f"WARNING: {C.ANOMALY_MODEL_FILE} does not match" in monitor.stdout
    finally:
        target.write_bytes(good)


def test_scripts_fail_clearly_when_unreachable_or_untrained(server):
    closed = f"http://127.0.0.1:{free_port()}"
    for name in ("check_model_performance.sh", "monitor_models.sh"):
        r = script(name, closed)
        assert (
            r.returncode == 2
            and "cannot get the model status" in r.stderr
            and "syntax error" not in r.stderr + r.stdout
        )
        r = script(name, server["base"], THRESHOLD="abc")
        assert r.returncode == 2 and "THRESHOLD" in r.stderr
    meta = server["models"] / C.METADATA_FILE
    aside = meta.with_name("aside.json")
    meta.rename(aside)
    try:
        for name in ("check_model_performance.sh", "monitor_models.sh"):
            r = script(name, server["base"])
            assert r.returncode == 3 and "no trained model" in r.stderr and "syntax error" not in r.stderr + r.stdout
    finally:
        aside.rename(meta)


def test_the_compose_trainer_curl_reaches_train_with_the_key(server, tmp_path):
    trainer = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())["services"]["model-trainer"][
        "command"
    ][2]
    once = (
        trainer.replace("$$", "$")
        .replace("device-intelligence-service:8028", f"127.0.0.1:{server['port']}")
        .replace("while true; do", "for _ in once; do")
    )
    (tmp_path / "sleep").write_text("#!/bin/sh\nexit 0\n")  # the trainer's waits, without the waiting
    (tmp_path / "sleep").chmod(0o755)
    path = f"{tmp_path}:{os.environ['PATH']}"
    wrong = subprocess.run(
        ["sh", "-c", once], env={"PATH": path, "API_KEY": "wrong"}, capture_output=True, text=True, timeout=30
    )
    assert json.loads(wrong.stdout)["code"] == "forbidden"  # in `docker compose logs`, and no run is started
    right = subprocess.run(
        ["sh", "-c", once], env={"PATH": path, "API_KEY": KEY}, capture_output=True, text=True, timeout=30
    )
    started = json.loads(right.stdout)
    assert started["status"] == "started" and started["force_retrain"] is True and started["days_back"] == 180
    # The database has no telemetry: the job ends (failed) without touching the model; wait so the server stops idle.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run = json.loads(get(f"{server['base']}/api/predictions/train/{started['job_id']}")[1])
        if run["finished"]:
            break
        time.sleep(0.3)
    assert run["finished"] and run["outcome"] == "failed" and run["actor"] == "guide-test"
    assert run["trigger"] == "schedule"
    assert json.loads(get(f"{server['base']}/api/predictions/models/version")[1])["version"] == "1.0.1"


def test_keep_alive_requests_do_not_wait_for_delayed_acks(server):
    # Streamlit leaves Nagle's algorithm on; without api.nodelay every keep-alive request takes ~40 ms.
    conn = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=10)
    took = []
    for _ in range(15):
        t0 = time.perf_counter()
        conn.request("GET", "/api/predictions/models/version")
        response = conn.getresponse()
        response.read()
        took.append(time.perf_counter() - t0)
        assert response.status == 200
    conn.close()
    assert statistics.median(took[1:]) < 0.025, [round(t * 1000, 1) for t in took]


def test_the_guides_log_grep_finds_training_validation_and_model_lines(server):
    """`docker compose logs … | grep -i "training\\|model\\|validation"`, on the server's own output."""
    db = Database(server["env"]["DATABASE_URL"])
    simulate_fleet(db, devices=30, days=40, seed=5)
    db.dispose()
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    started = json.loads(
        post(f"{server['base']}/api/predictions/train", b'{"force_retrain": true, "days_back": 40}', headers)
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        run = json.loads(get(f"{server['base']}/api/predictions/train/{started['job_id']}")[1])
        if run["finished"]:
            break
        time.sleep(0.5)
    assert run["finished"], run
    grep = shell(f'cat {server["tmp"] / "server.log"} | grep -i "training\\|model\\|validation"')
    lines = grep.stdout.splitlines()
    job = started["job_id"][:8]
    stages = [line for line in lines if f"training run {job}" in line]
    assert any(": loading:" in line for line in stages) and any(": fitting:" in line for line in stages), lines
    assert any("validation passed" in line or "validation failed" in line for line in stages), lines
    if run["outcome"] == "promoted":
        assert any(f"model version {run['version']} promoted" in line for line in stages), lines
        assert any(line.split(" ", 2)[2].startswith("model registry: promote by guide-test") for line in lines)
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (INFO|WARNING|ERROR) ", line) for line in stages)
    # Runs started through the API also reach training.log, in the schedule script's format.
    training_log = (server["tmp"] / "training.log").read_text().splitlines()
    assert [line for line in training_log if f"training run {job}" in line] == stages


def test_the_guides_two_file_cp_restore_heals_and_serving_continues(server):
    """The guide's "Restore Models" commands verbatim: only the failure model and the metadata are copied."""
    registry, models = server["registry"], server["models"]
    # Two versions that can serve predictions (fitted on the service's features).
    earlier = promote_feature_model(registry, seed=21, accuracy=0.83).version
    live = promote_feature_model(registry, seed=22, accuracy=0.84).version
    backup = next(b for b in registry.backups() if b.version == earlier)
    shell(
        f"cd {models} && cp failure_prediction_model.pkl.backup_{backup.timestamp} failure_prediction_model.pkl"
        f" && cp model_metadata.json.backup_{backup.timestamp} model_metadata.json"
    )
    status = json.loads(shell(f"curl -s {server['base']}/api/predictions/models/status | jq").stdout)
    # Completed from the same backup by the very read that saw it: whole, serving, and recorded as done by hand.
    assert status["model_metadata"]["version"] == backup.version and status["is_trained"] is True
    kinds = {a["kind"] for a in status["alerts"]}
    assert status["level"] == "amber" and "external_change" in kinds and "integrity" not in kinds, status["alerts"]
    assert (models / C.ANOMALY_MODEL_FILE).read_bytes() == backup.files[C.ANOMALY_MODEL_FILE].read_bytes()
    # The hand-made change fires an alert (amber): the check says so until someone acknowledges it.
    check = script("check_model_performance.sh", server["base"], THRESHOLD="0.5")
    assert check.returncode == 1 and re.search(r"^ALERT: external_change \(amber, ", check.stdout, re.M), check.stdout
    assert "external_change" in acknowledge_all(server["base"])
    # Acknowledged: no longer reported (another rule, e.g. drift judged by the background evaluator meanwhile,
    # may fire on its own; then it is the only thing the check reports).
    again = script("check_model_performance.sh", server["base"], THRESHOLD="0.5")
    assert "external_change" not in again.stdout, again.stdout
    assert again.returncode == 0 or re.findall(r"^ALERT: (\w+)", again.stdout, re.M), again.stdout
    reading = {"device_id": "guide-dev", "metrics": {name: 1.0 for name in C.METRIC_NAMES}}
    reading["metrics"].update(battery_level=50.0, signal_strength=-60.0, error_rate=0.01)
    predicted = json.loads(post(f"{server['base']}/api/predictions/predict", json.dumps(reading).encode(), HEADERS))
    assert predicted["model_version"] == backup.version
    event = json.loads(get(f"{server['base']}/api/predictions/models/events?kind=external_change&limit=1")[1])
    assert event["events"][0]["details"]["completed_from"] == backup.timestamp
    # The version the copy overwrote lost nothing: its own backup has been there since it was promoted.
    assert any(b.version == live and b.complete for b in registry.backups())


def test_the_guides_cleanup_one_liner_splits_a_set_and_the_tools_say_so(server):
    """`ls -t *.backup_* | tail -n +11 | xargs rm -f`: it counts files, not sets; the service shows the damage."""
    registry, models = server["registry"], server["models"]
    while len(list(models.glob("*.backup_*"))) < 13:
        promote(registry, seed=len(registry.backups()) + 10, accuracy=0.8)
    for i, path in enumerate(sorted(models.glob("*.backup_*"))):  # `ls -t` order = the order they were made
        os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))
    done = shell(f"cd {models} && ls -t *.backup_* | tail -n +11 | xargs rm -f")
    assert done.returncode == 0 and len(list(models.glob("*.backup_*"))) == 10
    backups = json.loads(shell(f"curl -s {server['base']}/api/predictions/models/backups | jq").stdout)["backups"]
    split = [b for b in backups if not b["complete"]]
    assert split and all(not b["restorable"] and b["problems"] for b in split)
    status = json.loads(get(f"{server['base']}/api/predictions/models/status")[1])
    assert status["is_trained"] and status["level"] != "red"  # the live set is untouched


def test_status_replies_are_the_whole_servers_and_follow_a_promote_at_once(server):
    """api.rendered.RenderedReads answers plain status reads itself: byte for byte what Streamlit's and the API's
    middleware answered, and never a body from before a change to the files."""
    conn = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=10)

    def read(**headers: str) -> tuple[int, list[tuple[str, str]], bytes]:
        conn.request("GET", "/api/predictions/models/status", headers=headers)
        r = conn.getresponse()
        return r.status, [(k, v) for k, v in r.getheaders() if k.lower() != "date"], r.read()

    try:
        version = promote(server["registry"], seed=31, accuracy=0.86).version
        whole = read()  # the first read after the promote goes through the whole server, which records it
        assert json.loads(whole[2])["model_metadata"]["version"] == version
        assert all(read() == whole for _ in range(5))  # replayed
        assert ("vary", "Accept-Encoding") in whole[1]  # Streamlit's gzip middleware, replayed as it answered
        gzipped = read(**{"Accept-Encoding": "gzip"})
        assert ("content-encoding", "gzip") in gzipped[1]  # a client that wants gzip still gets it
        newer = promote(server["registry"], seed=32, accuracy=0.87).version
        assert json.loads(read()[2])["model_metadata"]["version"] == newer
    finally:
        conn.close()
