"""scripts/score_fleet.py and `manage_models.py performance` / `candidates` on a real simulated fleet."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import prediction_log as P
from core.config import Settings
from core.db import Database
from core.registry import Registry
from core.simulator import simulate_fleet
from core.training import load_training_data, train_candidate
from tests.core.conftest import FIXED_END

ROOT = Path(__file__).resolve().parent.parent


def run(settings: Settings, script: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / script),
        "--database-url",
        settings.database_url,
        "--models-dir",
        str(settings.models_dir),
        *args,
    ]
    environ = {k: v for k, v in os.environ.items() if k != "MODEL_OPS_API_KEY"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT, env=environ)


@pytest.fixture
def fleet(settings: Settings) -> str:
    """40 devices over 60 days and a model trained on the first 40 of them; returns its version."""
    db = Database(settings.database_url)
    simulate_fleet(db, devices=40, days=60, seed=42, end=FIXED_END)
    features, _ = load_training_data(db, days_back=40, end=FIXED_END - dt.timedelta(days=20))
    trained = train_candidate(features, seed=42)
    registry = Registry.from_settings(settings, db)
    version = registry.promote(
        trained.failure_model, trained.anomaly_model, trained.metadata_fields(), actor="t", trigger="test"
    ).version
    registry.keep_candidate(
        trained.failure_model, trained.anomaly_model, trained.metadata_fields(), actor="t", trigger="t", because="held"
    )
    db.dispose()
    return version


def test_score_the_last_days_then_read_realised_performance_and_shadow_figures(settings, fleet):
    as_of = FIXED_END.isoformat()
    scored = run(settings, "score_fleet.py", "--as-of", as_of, "--days", "20", "--json")
    assert scored.returncode == 0, scored.stderr
    out = json.loads(scored.stdout)
    assert len(out["days"]) == 20 and out["days"][-1] == FIXED_END.date().isoformat()
    assert [m["role"] for m in out["models"]] == ["live", "shadow"] and out["device_days"] > 500

    text = run(settings, "manage_models.py", "performance", "--weeks")
    assert text.returncode == 0, text.stderr
    assert f"{fleet} (live)" in text.stdout and "(shadow)" in text.stdout and "week of" in text.stdout
    as_json = json.loads(run(settings, "manage_models.py", "--json", "performance").stdout)
    live = as_json["versions"][0]
    assert live["model_version"] == fleet and live["realised"]["outcomes"] > 300
    assert live["realised"]["outcomes"] == sum(w["outcomes"] for w in live["weeks"])

    listed = json.loads(run(settings, "manage_models.py", "--json", "candidates").stdout)
    shadow = listed[0]["shadow"]
    # The candidate holds the same model as the live version: on the same days, the same figures.
    assert shadow["shared_outcomes"] > 300 and shadow["candidate"] == shadow["live"]
    assert "shadow over" in run(settings, "manage_models.py", "candidates").stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--days", "0"], "must be at least 1"),
        (["--from", "2026-13-01"], "is not a date"),
        (["--days", "3", "--from", "2026-01-01"], "either --days or --from/--to"),
        (["--as-of", "2026-01-10", "--to", "2026-01-12"], "has not happened yet"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_and_write_nothing(settings, fleet, args, needle):
    out = run(settings, "score_fleet.py", *args)
    assert out.returncode == 2 and needle in out.stderr.splitlines()[-1], out.stderr
    assert "Traceback" not in out.stderr
    db = Database(settings.database_url)
    assert P.count(db) == 0
    db.dispose()


def test_no_model_says_what_to_do(settings):
    out = run(settings, "score_fleet.py", "--days", "1")
    assert out.returncode == 1 and "train" in out.stderr, out.stderr
