"""scripts/train_models.py as cron runs it: exit codes, one-line errors, sample-data refusal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.registry import Registry
from core.simulator import simulate_fleet

ROOT = Path(__file__).resolve().parent.parent


def train(settings, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "train_models.py"),
        "--database-url",
        settings.database_url,
        "--models-dir",
        str(settings.models_dir),
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.mark.parametrize("days", ["0", "-5", "100000", "abc"])
def test_bad_days_back_exits_2_with_one_line(settings, days):
    out = train(settings, "--force", "--days-back", days)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: days_back must be") and len(out.stderr.strip().splitlines()) == 1
    assert not any(settings.models_dir.iterdir())


def test_empty_database_exits_1_and_says_what_to_do(settings, db):
    out = train(settings, "--force", "--days-back", "180")
    assert out.returncode == 1
    assert "seed_telemetry.py" in out.stderr and "--allow-sample-data" in out.stderr and "Traceback" not in out.stderr
    assert not any(p.name.endswith(".pkl") for p in settings.models_dir.iterdir())


def test_sample_data_only_when_allowed_and_labelled(settings, db):
    out = train(settings, "--force", "--allow-sample-data", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "promoted"
    assert Registry(settings.models_dir, db).current().data_source == "sample"


def test_guide_command_trains_then_skips_without_force(settings, db):
    simulate_fleet(db, devices=40, days=60, seed=23)  # F1 0.69-0.79 at any hour: see test_training_run
    out = train(settings, "--force", "--days-back", "180", "--verbose")
    assert out.returncode == 0, out.stderr
    assert "promoted version 1.0.0" in out.stdout and "fitting" in out.stdout
    again = train(settings, "--days-back", "180")
    assert again.returncode == 0 and again.stdout.startswith("skipped")
