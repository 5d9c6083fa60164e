"""`manage_models.py auto-rollback` and fleet scoring with AUTO_ROLLBACK set, as operators run them: real processes
on a simulated fleet whose newly promoted version degrades."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import autorollback as AR
from core.modelops import ModelOps
from tests.autorollback_world import END, World, build_world, settings_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("autorollback_cli"))


@pytest.fixture
def root(world: World, tmp_path: Path) -> Path:
    world.copy(tmp_path).dispose()
    return tmp_path


def run(root: Path, mode: str, script: str, *args: str) -> subprocess.CompletedProcess:
    settings = settings_for(root)
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / script),
        "--database-url",
        settings.database_url,
        "--models-dir",
        str(settings.models_dir),
        *args,
    ]
    environ = {k: v for k, v in os.environ.items() if k != "MODEL_OPS_API_KEY"} | {"AUTO_ROLLBACK": mode}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT, env=environ)


def _live(root: Path) -> str:
    ops = ModelOps(settings_for(root))
    try:
        return ops.current().version
    finally:
        ops.dispose()


def test_the_cli_prints_each_decision(root: Path, world: World) -> None:
    off = run(root, "off", "manage_models.py", "auto-rollback")
    assert off.returncode == 0, off.stderr
    assert off.stdout.strip().endswith("auto-rollback (off): off: automatic rollback is off (AUTO_ROLLBACK=off)")

    dry = json.loads(run(root, "dry-run", "manage_models.py", "--json", "auto-rollback").stdout)
    assert dry["decision"] == AR.WOULD_ACT and dry["figures"]["previous_source"] == "same-data"
    assert dry["figures"]["live_f1"] < dry["figures"]["previous_f1"] - 0.05 and _live(root) == world.bad

    acted = run(root, "on", "manage_models.py", "auto-rollback")
    assert acted.returncode == 0, acted.stderr
    assert f"auto-rollback (on): acted: restored v{world.good}" in acted.stdout and _live(root) == world.good
    again = json.loads(run(root, "on", "manage_models.py", "--json", "auto-rollback").stdout)
    assert again["decision"] == AR.ALREADY and _live(root) == world.good


def test_fleet_scoring_rolls_back_and_says_so_in_one_line(root: Path, world: World) -> None:
    out = run(root, "on", "score_fleet.py", "--as-of", END.isoformat(), "--days", "1")
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if "auto-rollback (on)" in line]
    assert len(lines) == 1 and lines[0].startswith(f"auto-rollback (on): acted: restored v{world.good}"), out.stdout
    assert _live(root) == world.good
    history = run(root, "on", "manage_models.py", "--json", "history", "--limit", "5")
    kinds = [e["kind"] for e in json.loads(history.stdout)]
    assert kinds[:2] == ["auto_rollback", "restore"], kinds
