"""scripts/manage_models.py as operators run it: real processes, real files, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.history import History
from core.identity import local_principal
from core.modelops import ModelOps
from tests.factories import promote

ROOT = Path(__file__).resolve().parent.parent


def run(settings, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "manage_models.py"),
        "--database-url",
        settings.database_url,
        "--models-dir",
        str(settings.models_dir),
        "--actor",
        "ops",
        *args,
    ]
    environ = {k: v for k, v in os.environ.items() if k != "MODEL_OPS_API_KEY"} | (env or {})
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT, env=environ)


def snapshot(settings, registry) -> tuple[list[str], int]:
    """The models directory's file names and the number of History events."""
    return sorted(p.name for p in settings.models_dir.iterdir()), History(registry.db).count_events()


@pytest.fixture
def three_versions(registry):
    for seed, acc in ((1, 0.80), (2, 0.83), (3, 0.86)):
        promote(registry, seed=seed, accuracy=acc)
    return registry


def test_status_versions_backups_json(settings, three_versions):
    status = run(settings, "--json", "status")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["model_metadata"]["version"] == "1.0.2"
    versions = json.loads(run(settings, "--json", "versions").stdout)
    assert [v["version"] for v in versions] == ["1.0.2", "1.0.1", "1.0.0"]
    backups = json.loads(run(settings, "--json", "backups").stdout)
    assert [b["version"] for b in backups["backups"]] == ["1.0.2", "1.0.1", "1.0.0"]
    assert all(b["complete"] for b in backups["backups"])


def test_restore_then_history_shows_reason(settings, three_versions):
    out = run(settings, "restore", "1.0.0", "--reason", "regression in prod")
    assert out.returncode == 0, out.stderr
    assert "restored version 1.0.0" in out.stdout
    history = json.loads(run(settings, "--json", "history").stdout)
    restore = next(e for e in history if e["kind"] == "restore")
    assert (restore["actor"], restore["reason"], restore["to_version"]) == ("ops", "regression in prod", "1.0.0")


def test_compare_json_has_the_guides_shape(settings, three_versions):
    data = json.loads(run(settings, "--json", "compare").stdout)
    assert data["version_change"] == {"from": "1.0.1", "to": "1.0.2"}
    change = data["performance"]["changes"]["accuracy"]
    assert change["difference"] == pytest.approx(0.03) and change["improved"] is True


def test_cleanup_dry_run_then_real(settings, three_versions):
    dry = run(settings, "cleanup", "--keep", "1", "--dry-run")
    assert dry.returncode == 0 and "would remove 2 backup set" in dry.stdout
    assert "v1.0.1" in dry.stdout and "v1.0.0" in dry.stdout and "v1.0.2" not in dry.stdout
    assert len(three_versions.backups()) == 3
    real = run(settings, "cleanup", "--keep", "1", "--reason", "disk almost full")
    assert real.returncode == 0 and "removed 2 backup set" in real.stdout
    assert [b.version for b in three_versions.backups()] == ["1.0.2"]
    # The backup holding the live set is never removed, even when asked to keep none.
    none = run(settings, "cleanup", "--keep", "0", "--reason", "disk almost full")
    assert none.returncode == 0 and "removed 0 backup set" in none.stdout
    assert [b.version for b in three_versions.backups()] == ["1.0.2"]


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (("restore", "../x", "--reason", "r"), 2, "neither a backup timestamp"),
        (("restore", "20200101_000000", "--reason", "r"), 1, "no backup with timestamp"),
        (("delete-backup", "bogus", "--reason", "r"), 2, "not a backup timestamp"),
        (("compare", "1.0.0", "7.7.7"), 1, "version 7.7.7 is not known"),
        (("cleanup", "--keep", "-3", "--reason", "r"), 2, "keep must be"),
        # A reason is required for what undoes work or removes backups.
        (("restore", "1.0.0"), 2, "give a reason"),
        (("restore", "1.0.0", "--reason", "   "), 2, "give a reason"),
        (("delete-backup", "OLDEST"), 2, "give a reason"),
        (("cleanup", "--keep", "1"), 2, "give a reason"),
    ],
)
def test_bad_input_one_line_error_and_nothing_changes(settings, three_versions, args, code, needle):
    oldest = three_versions.backups()[-1].timestamp
    args = tuple(oldest if a == "OLDEST" else a for a in args)
    before = snapshot(settings, three_versions)
    out = run(settings, *args)
    assert out.returncode == code, out.stderr
    assert needle in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert snapshot(settings, three_versions) == before
    assert three_versions.current().version == "1.0.2"


def test_a_viewer_key_may_not_restore_and_an_operator_key_may(settings, three_versions):
    ops = ModelOps(settings)
    admin = local_principal("setup")
    _, viewer = ops.create_api_key("auditor", "viewer", actor=admin)
    _, operator = ops.create_api_key("release-bot", "operator", actor=admin)
    ops.dispose()
    before = snapshot(settings, three_versions)
    refused = run(settings, "restore", "1.0.0", "--reason", "r", env={"MODEL_OPS_API_KEY": viewer})
    assert refused.returncode == 1 and "auditor (viewer) may not restore" in refused.stderr
    assert snapshot(settings, three_versions) == before
    done = run(settings, "restore", "1.0.0", "--reason", "regression", env={"MODEL_OPS_API_KEY": operator})
    assert done.returncode == 0, done.stderr
    event = History(three_versions.db).events(kinds=["restore"])[0]
    assert (event.actor, event.reason, event.to_version) == ("release-bot", "regression", "1.0.0")


def test_status_with_no_model_says_what_to_do(settings):
    out = run(settings, "status")
    assert out.returncode == 1 and "train_models.py --force" in out.stdout


def test_works_when_the_database_is_unreachable(settings, three_versions):
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "manage_models.py"),
        "--database-url",
        "postgresql+psycopg://nobody@127.0.0.1:1/none",
        "--models-dir",
        str(settings.models_dir),
        "backups",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "database is unreachable" in out.stderr and "1.0.1" in out.stdout


def test_global_options_work_after_the_subcommand_and_a_closed_pipe_is_quiet(settings, three_versions):
    cmd = [sys.executable, str(ROOT / "scripts" / "manage_models.py"), "status", "--json"]
    cmd += ["--models-dir", str(settings.models_dir), "--database-url", settings.database_url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["model_metadata"]["version"] == "1.0.2"
    for _ in range(30):
        promote(three_versions, seed=9)
    history = " ".join(
        [sys.executable, str(ROOT / "scripts" / "manage_models.py"), "--models-dir", str(settings.models_dir)]
        + ["--database-url", settings.database_url, "--json", "history", "--limit", "1000"]
    )
    piped = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{history} | head -2"], capture_output=True, text=True, timeout=60
    )
    # Far more than a pipe holds (each promote event carries its metadata), so `head` closes it mid-write.
    assert len(piped.stdout.splitlines()) == 2 and "Error" not in piped.stderr, piped.stderr
    assert piped.returncode == 0
