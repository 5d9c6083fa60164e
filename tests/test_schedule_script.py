"""scripts/schedule_model_training.sh as cron runs it: timestamped log, rotation, and train_models.py's exit status."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "schedule_model_training.sh"
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z ")


def run(env: dict[str, str], *args: str, script: Path = SCRIPT) -> subprocess.CompletedProcess:
    # cron starts from $HOME with a minimal environment: so do we.
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": env.get("HOME", "/tmp")}
    return subprocess.run(
        [str(script), *args], env={**base, **env}, cwd="/", capture_output=True, text=True, timeout=120
    )


def log_lines(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    assert lines and all(STAMP.match(line) for line in lines), lines
    return [STAMP.sub("", line) for line in lines]


def test_a_failed_training_is_logged_with_its_exit_status(tmp_path):
    log = tmp_path / "logs" / "training.log"
    env = {
        "TRAINING_LOG": str(log),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}",
        "MODELS_DIR": str(tmp_path / "models"),
    }
    result = run(env)
    assert result.returncode == 1
    lines = log_lines(log)
    assert (
        lines[0].startswith("scheduled training started: ")
        and ".venv/bin/python scripts/train_models.py --force --days-back 180" in lines[0]
    )
    assert any(line.startswith(("error: ", "failed: ")) for line in lines[1:-1])  # train_models.py says why
    assert lines[-1] == "scheduled training finished with exit status 1"
    assert not (tmp_path / "models" / "model_metadata.json").exists()


def test_usage_errors_exit_2_and_extra_arguments_reach_train_models(tmp_path):
    log = tmp_path / "training.log"
    result = run({"TRAINING_LOG": str(log), "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}, "--days-back", "0")
    assert result.returncode == 2
    lines = log_lines(log)
    assert any("days_back must be" in line for line in lines)
    assert lines[-1] == "scheduled training finished with exit status 2"


def test_the_log_is_appended_and_rotated_above_5_mb_keeping_5(tmp_path):
    log = tmp_path / "training.log"
    log.write_text("small previous run\n")
    env = {"TRAINING_LOG": str(log), "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    run(env, "--days-back", "0")
    assert log.read_text().startswith("small previous run\n") and not Path(f"{log}.1").exists()

    with open(log, "ab") as fh:
        fh.write(b"x" * (5 * 1024 * 1024))
    big = log.stat().st_size
    for i in range(1, 6):
        Path(f"{log}.{i}").write_text(f"old {i}\n")
    run(env, "--days-back", "0")
    assert Path(f"{log}.1").stat().st_size == big
    assert [Path(f"{log}.{i}").read_text() for i in range(2, 6)] == ["old 1\n", "old 2\n", "old 3\n", "old 4\n"]
    assert not Path(f"{log}.6").exists()
    assert log_lines(log)[-1] == "scheduled training finished with exit status 2"


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    """A checkout without .venv whose train_models.py records how it was called (to see python3 and the exit code)."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(SCRIPT, repo / "scripts" / SCRIPT.name)
    (repo / "scripts" / "train_models.py").write_text(
        "import os, sys\n"
        "print('cwd', os.getcwd())\n"
        "print('args', ' '.join(sys.argv[1:]))\n"
        "print('to stderr', file=sys.stderr)\n"
        "sys.exit(int(os.environ.get('FAKE_EXIT', '0')))\n"
    )
    return repo


@pytest.mark.parametrize("code", [0, 1, 3])
def test_without_a_venv_python3_runs_from_the_repo_and_its_status_is_the_scripts(fake_repo, code):
    result = run({"FAKE_EXIT": str(code)}, script=fake_repo / "scripts" / SCRIPT.name)
    assert result.returncode == code
    lines = log_lines(fake_repo / "training.log")
    assert lines[0].startswith("scheduled training started: python3 scripts/train_models.py")
    assert f"cwd {fake_repo}" in lines and "to stderr" in lines
    assert "args --force --days-back 180 --trigger schedule" in lines
    assert lines[-1] == f"scheduled training finished with exit status {code}"


def test_powershell_twin_runs_the_same_command_and_propagates_lastexitcode(tmp_path):
    ps1 = (ROOT / "scripts" / "schedule_model_training.ps1").read_text()
    assert '@("scripts/train_models.py", "--force", "--days-back", "180", "--trigger", "schedule")' in ps1
    assert "$status = $LASTEXITCODE" in ps1 and re.search(r"^exit \$status$", ps1, re.M)
    assert "5MB" in ps1 and "$Keep = 5" in ps1 and "TRAINING_LOG" in ps1
    if shutil.which("pwsh"):
        result = subprocess.run(
            ["pwsh", "-NoProfile", "-File", str(ROOT / "scripts" / "schedule_model_training.ps1"), "--days-back", "0"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "TRAINING_LOG": str(tmp_path / "training.log")},
        )
        assert result.returncode == 2
