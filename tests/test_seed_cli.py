"""scripts/seed_telemetry.py as operators run it: exit codes, messages, refusing a database that has telemetry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.db import Database, Device
from core.simulator import telemetry_counts

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "seed_telemetry.py"


def seed(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MODELS_DIR")}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'seed.db'}"


def test_seeds_a_fresh_database_and_prints_one_summary_line(url, tmp_path):
    result = seed(
        "--devices",
        "8",
        "--days",
        "10",
        "--interval-hours",
        "12",
        "--seed",
        "3",
        "--database-url",
        url,
        "--drift-from",
        "2025-01-01",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("seeded 8 devices, ")
        and "metric rows" in lines[0]
        and "failures" in lines[0]
    )
    db = Database(url)
    counts = telemetry_counts(db)
    assert counts.simulated_devices == 8 and not counts.has_real_telemetry
    # 20 or 21 readings of 11 metrics per device, fewer while a device waits for repair.
    assert 0.8 * 8 * 21 * 11 < counts.simulated_metric_rows <= 8 * 21 * 11 and counts.simulated_metric_rows % 11 == 0
    with db.session() as s:
        assert {d.firmware for d in s.query(Device)} == {"2.0.1"}  # drift rolled out before the data starts
    db.dispose()


def test_refuses_a_database_with_telemetry_unless_replace_traceback_only_if_verbose(url):
    assert seed("--devices", "3", "--days", "5", "--database-url", url).returncode == 0
    again = seed("--devices", "4", "--days", "5", "--database-url", url)
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.count("\n") == 1 and "already holds telemetry" in again.stderr and "--replace" in again.stderr
    assert "Traceback" not in again.stderr
    verbose = seed("--devices", "4", "--days", "5", "--database-url", url, "--verbose")
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr and "already holds telemetry" in verbose.stderr
    replaced = seed("--devices", "4", "--days", "5", "--database-url", url, "--replace")
    assert replaced.returncode == 0, replaced.stderr
    db = Database(url)
    assert telemetry_counts(db).simulated_devices == 4
    db.dispose()


@pytest.mark.parametrize(
    "args",
    [
        ["--devices", "0"],
        ["--interval-hours", "169"],
        ["--drift-from", "yesterday"],
        ["--unknown-flag"],
    ],
)
def test_bad_arguments_exit_2(args, url, tmp_path):
    result = seed(*args, "--database-url", url)
    assert result.returncode == 2 and "usage:" in result.stderr
    assert not (tmp_path / "seed.db").exists()
