"""`manage_models.py drift` as operators run it: a real process on a drifted fleet, text, --json, --check, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.drift_world import SHIFTED, UNSHIFTED, DriftWorld, build_drift_world
from tests.test_manage_cli import run


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> DriftWorld:
    return build_drift_world(tmp_path_factory.mktemp("drift_cli"))


@pytest.fixture
def settings(world: DriftWorld, tmp_path: Path):
    return world.copy(tmp_path / "copy")


def test_drift_text_ranks_the_shifted_metrics_first(settings):
    done = run(settings, "drift", "--features", "3")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("version 1.0.0: training window ") and "vs the last 7 days" in lines[0]
    metric_lines = lines[2:13]
    assert {line.split()[0] for line in metric_lines[:5]} == SHIFTED
    assert all("significant" in line for line in metric_lines[:5])
    stable = {line.split()[0] for line in metric_lines if " stable " in line}
    assert stable >= UNSHIFTED
    assert lines[13] == "prediction score:" and lines[14].split()[0] == "failure_probability"
    assert lines[15].startswith("most drifted features (") and len(lines) >= 19


def test_drift_json_window_and_check(settings):
    done = run(settings, "--json", "drift", "--window-days", "5")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["window_days"] == 5 and {m["name"] for m in body["metrics"][:5]} == SHIFTED
    checked = run(settings, "drift", "--check")
    assert checked.returncode == 1 and "significant" in checked.stdout


@pytest.mark.parametrize("value", ["0", "ninety", "91"])
def test_a_bad_window_is_one_line_and_exit_2(settings, value):
    done = run(settings, "drift", "--window-days", value)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "whole number of days between 1 and 90" in done.stderr


def test_no_telemetry_recently_is_one_line(settings):
    import sqlite3

    db = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"))
    db.execute("DELETE FROM device_health_metrics WHERE timestamp >= datetime('now', '-9 days')")
    db.commit()
    db.close()
    done = run(settings, "drift")
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0
    assert "no telemetry in the last 7 days" in done.stderr and "Traceback" not in done.stderr
