"""The deploy recipes follow TRAINING_SCHEDULE: generated lines, the files' defaults, and the compose trainer run for
real (its own shell script, curl and sed) against the API on loopback, recording a run as scheduled."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.routing import Mount

from api.factory import create_api
from api.schemas import TrainRequest
from core.config import Settings
from core.db import Database
from core.history import History
from core.modelops import reset_ops
from core.schedule import DEFAULT_SCHEDULE, SCHEDULE_TRIGGER
from tests.server import free_port
from tests.test_deploy import crontab_lines, k8s_docs, trainer_script

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SERVICE = "http://device-intelligence-service:8028"


def manage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("TRAINING_SCHEDULE", "MODEL_OPS_API_KEY")}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "manage_models.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=environ | (env or {}),
    )


def test_the_files_carry_the_default_schedule_the_cli_generates(tmp_path):
    where = ["--database-url", f"sqlite:///{tmp_path / 'x.db'}", "--models-dir", str(tmp_path / "m")]
    crontab = manage(*where, "schedule", "--crontab")
    assert crontab.returncode == 0, crontab.stderr
    assert crontab.stdout.strip() == f"{DEFAULT_SCHEDULE} {ROOT / 'scripts' / 'schedule_model_training.sh'}"
    weekly = next(s for s, c in crontab_lines() if c.endswith("/scripts/schedule_model_training.sh"))
    assert weekly == DEFAULT_SCHEDULE == Settings.from_env({}).training_schedule
    k8s = manage(*where, "schedule", "--k8s").stdout.strip()
    assert k8s == f'schedule: "{DEFAULT_SCHEDULE}"' and k8s in (DEPLOY / "k8s-cronjob.yaml").read_text()
    cron = next(d for d in k8s_docs() if d["kind"] == "CronJob" and d["metadata"]["name"] == "model-training")
    assert cron["spec"]["schedule"] == DEFAULT_SCHEDULE and cron["spec"]["timeZone"] == "Etc/UTC"
    service = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]["device-intelligence-service"]
    assert service["environment"]["TRAINING_SCHEDULE"] == f"${{TRAINING_SCHEDULE:-{DEFAULT_SCHEDULE}}}"
    # Another schedule: the generated lines follow it; a bad one is refused with one line, exit 2.
    other = manage(*where, "schedule", "--crontab", env={"TRAINING_SCHEDULE": "0 3 * * 1"})
    assert other.stdout.startswith("0 3 * * 1 ")
    bad = manage(*where, "schedule", "--k8s", env={"TRAINING_SCHEDULE": "0 3 * *"})
    assert bad.returncode == 2 and "TRAINING_SCHEDULE='0 3 * *' is not a cron expression" in bad.stderr


def test_the_compose_trainer_marks_its_runs_as_scheduled():
    body = json.loads(re.search(r"-d '([^']+)'", trainer_script()).group(1))
    assert TrainRequest.model_validate(body).trigger == SCHEDULE_TRIGGER


@pytest.fixture
def api_on_loopback(settings: Settings, request: pytest.FixtureRequest) -> Iterator[tuple[str, Settings]]:
    """The API over a real socket, keyed as compose runs it, with the schedule the test asks for."""
    reset_ops()
    schedule = getattr(request, "param", "* * * * *")
    keyed = dataclasses.replace(settings, api_key="compose-key", api_key_name="compose", training_schedule=schedule)
    port = free_port()
    app = Starlette(routes=[Mount("/api", app=create_api(keyed))])  # mounted as dashboard/server.py serves it
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}", keyed
    server.should_exit = True
    thread.join(10)
    reset_ops()


def run_trainer(url: str, tmp_path: Path) -> tuple[list[str], subprocess.CompletedProcess]:
    """The trainer's shell after compose's interpolation ($$ -> $), pointed at `url`, until its second sleep."""
    script = trainer_script().replace("$$", "$").replace(SERVICE, url)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "sleeps"
    # A `sleep` that records its argument; its second call ends the trainer's loop.
    (bin_dir / "sleep").write_text(
        f'#!/bin/sh\necho "$1" >> {calls}\n[ "$(wc -l < {calls})" -ge 2 ] && kill "$PPID"\nexit 0\n'
    )
    (bin_dir / "sleep").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "API_KEY": "compose-key"}
    done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    return calls.read_text().split(), done


def recorded_runs(settings: Settings) -> list[tuple[str, str]]:
    db = Database(settings.database_url)
    try:
        return [(r.trigger, r.actor) for r in History(db).runs()]
    finally:
        db.dispose()


def test_the_compose_trainer_script_sleeps_until_the_next_run_then_starts_a_scheduled_run(api_on_loopback, tmp_path):
    url, settings = api_on_loopback
    sleeps, done = run_trainer(url, tmp_path)
    assert 1 <= int(sleeps[0]) <= 60, sleeps  # "* * * * *": the next run is within a minute
    assert '"status":"started"' in done.stdout.replace(" ", ""), done.stdout + done.stderr
    assert recorded_runs(settings) == [(SCHEDULE_TRIGGER, "compose")]


@pytest.mark.parametrize("api_on_loopback", [None], indirect=True)
def test_with_the_schedule_off_the_compose_trainer_waits_quietly_and_starts_nothing(api_on_loopback, tmp_path):
    url, settings = api_on_loopback
    sleeps, done = run_trainer(url, tmp_path)
    assert sleeps == ["3600", "3600"] and done.stdout == "" and recorded_runs(settings) == []
