"""manage_models.py compare --same-data as operators run it: a real process on real files and telemetry."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from core.config import Settings
from core.modelops import ModelOps
from tests.samedata_world import World, build_world
from tests.test_manage_cli import run


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("samedata_cli"))


@pytest.fixture
def settings(world: World, tmp_path: Path) -> Settings:
    shutil.copy(world.root / "world.db", tmp_path / "world.db")
    shutil.copytree(world.root / "models", tmp_path / "models")
    return world.settings(tmp_path)


def test_plain_compare_notes_the_different_windows(settings: Settings, world: World) -> None:
    out = run(settings, "compare")
    assert out.returncode == 0, out.stderr
    assert re.search(r"^f1_score .* worse$", out.stdout, re.M)  # the stored figures' verdict
    assert "note: These holdout figures come from different windows" in out.stdout
    assert "score both on the same window" in out.stdout


def test_same_data_shows_window_samples_and_figures(settings: Settings, world: World) -> None:
    out = run(settings, "compare", "--same-data")
    assert out.returncode == 0, out.stderr
    said = re.search(r"scored on the same window (\S+) to (\S+) \((\d+) days\): ([\d,]+) samples", out.stdout)
    assert said and said.group(3) == "14" and int(said.group(4).replace(",", "")) > 100
    f1 = re.search(r"^f1_score\s+([\d.]+)\s+([\d.]+)\s+([+-][\d.]+) (\w+)$", out.stdout, re.M)
    assert f1 and f1.group(4) in ("better", "same"), out.stdout

    as_json = json.loads(run(settings, "--json", "compare", "--same-data").stdout)
    same = as_json["same_data"]
    assert same["window"]["start"] == said.group(1) and same["a"]["version"] == world.new and as_json["holdout_notice"]
    assert f"{same['a']['metrics']['f1_score']:.4f}" == f1.group(1)
    week = json.loads(run(settings, "--json", "compare", "--same-data", "--days", "7").stdout)["same_data"]
    assert week["window"]["days"] == 7 and week["window"]["end"] == said.group(2)
    ops = ModelOps(settings)  # the application layer in this process agrees with the CLI's figures
    try:
        direct = ops.compare_same_data(world.new, world.old)
    finally:
        ops.dispose()
    assert direct.a.metrics == same["a"]["metrics"] and direct.b.metrics == same["b"]["metrics"]
    assert direct.sample_count == same["sample_count"] and direct.window.start.isoformat() == same["window"]["start"]


def test_the_same_artifact_and_bad_input(settings: Settings, world: World) -> None:
    backups = json.loads(run(settings, "--json", "backups").stdout)["backups"]
    ts = next(b["timestamp"] for b in backups if b["version"] == world.new)
    out = run(settings, "compare", world.new, ts, "--same-data")
    assert out.returncode == 0, out.stderr
    assert "both are the same model file" in out.stdout
    scored = out.stdout.split("scored on the same window", 1)[1]
    verdicts = re.findall(r"^(accuracy|precision|recall|f1_score|roc_auc)\s.*\s(\w+)$", scored, re.M)
    assert [v for _, v in verdicts] == ["same"] * 5, scored

    bad = run(settings, "compare", "--same-data", "--window-start", "May 1")
    assert bad.returncode == 2 and "is not a date; use YYYY-MM-DD" in bad.stderr
    late = run(settings, "compare", "--same-data", "--window-end", "2030-01-01")
    assert late.returncode == 2 and late.stderr.count("\n") == 1 and "too recent" in late.stderr
