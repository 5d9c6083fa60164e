"""Every interface gives the same answer for the same registry state.

Each state is built once on real files and a real SQLite database; then GET models/status, GET models/health,
the Status page, the sidebar (AppTest through the real router) and `manage_models.py status --json` are asked,
each with a fresh application layer, and must report the same level and the same problems in the same order.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from core import constants as C
from core.config import Settings
from core.db import Database
from core.history import History
from core.modelops import reset_ops
from core.registry import Registry
from dashboard import identity
from dashboard import services as svc
from dashboard.pages import page_path
from scripts import manage_models
from tests.factories import promote

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from api.factory import create_api

ROUTER = str(Path(__file__).resolve().parent.parent / "dashboard" / "router.py")
P = "/predictions"
LEVEL_LABEL = {"green": "Healthy", "amber": "Needs attention", "red": "Action needed"}


def healthy(registry: Registry, settings: Settings) -> None:
    promote(registry, seed=1, accuracy=0.82)


def checksum_mismatch(registry: Registry, settings: Settings) -> None:
    promote(registry, seed=1)
    (settings.models_dir / C.ANOMALY_MODEL_FILE).write_bytes(b"planted, not the promoted model")


def two_file_cp_restore(registry: Registry, settings: Settings) -> None:
    """The operations guide's manual restore of 1.0.0 over 1.0.1: only the failure model and the metadata."""
    promote(registry, seed=1, accuracy=0.80)
    promote(registry, seed=2, accuracy=0.84)
    backup = next(s for s in registry.backups() if s.version == "1.0.0")
    for name in (C.FAILURE_MODEL_FILE, C.METADATA_FILE):
        shutil.copyfile(backup.files[name], settings.models_dir / name)


def partial_hand_restore(registry: Registry, settings: Settings) -> None:
    """The guide's two-file `cp` restore, as it leaves the directory: whichever interface reads first completes it
    from the same backup (audited as a hand-made change), so every interface sees it healthy and amber."""
    two_file_cp_restore(registry, settings)


def rejected_last_run(registry: Registry, settings: Settings) -> None:
    promote(registry, seed=1, trained_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    history = History(registry.db)
    run_id = history.start_run(trigger="cron", actor="scheduler", params={"days_back": 90})
    gate = {"valid": False, "reason": "Recall 0.410 below threshold 0.5", "checks": []}
    history.finish_run(run_id, status="rejected", metrics={"recall": 0.41}, gate=gate, message="rejected")


def restored_not_promoted(registry: Registry, settings: Settings) -> None:
    promote(registry, seed=1, accuracy=0.80)
    promote(registry, seed=2, accuracy=0.84)
    registry.restore("1.0.0", actor="bob", reason="1.0.1 misses gateway failures")


def database_down(registry: Registry, settings: Settings) -> None:
    promote(registry, seed=1)


STATES: dict[str, Callable[[Registry, Settings], None]] = {
    "healthy": healthy,
    "checksum mismatch": checksum_mismatch,
    "hand-made partial restore": partial_hand_restore,
    "rejected last run": rejected_last_run,
    "restored, not promoted": restored_not_promoted,
    "database down": database_down,
}
EXPECTED_LEVEL = {
    "healthy": "green",
    "checksum mismatch": "red",
    "hand-made partial restore": "amber",
    "rejected last run": "amber",
    "restored, not promoted": "green",
    "database down": "red",
}


@pytest.fixture(params=list(STATES))
def state(request: pytest.FixtureRequest, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The registry state built once; the settings every interface is then pointed at."""
    db = Database(settings.database_url)
    STATES[request.param](Registry.from_settings(settings, db), settings)
    db.dispose()
    if request.param == "database down":
        # A directory is not a database file: SQLite cannot open it, as if the server were unreachable.
        settings = dataclasses.replace(settings, database_url=f"sqlite:///{settings.models_dir.parent}")
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MODELS_DIR", str(settings.models_dir))
    monkeypatch.setenv("DASHBOARD_BOOTSTRAP", "0")
    monkeypatch.setenv("LOCK_TIMEOUT_SECONDS", str(settings.lock_timeout_seconds))
    svc.reset()
    yield settings
    svc.reset()


def _api(settings: Settings, path: str) -> dict[str, Any]:
    reset_ops()
    with TestClient(create_api(settings, predict_requires_key=False), base_url="http://localhost") as client:
        response = client.get(f"{P}/{path}")
    assert response.status_code == 200, response.text
    return response.json()


def _cli(settings: Settings, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    reset_ops()
    argv = ["--database-url", settings.database_url, "--models-dir", str(settings.models_dir), "status", "--json"]
    code = manage_models.cli.run_cli(manage_models.main, manage_models.build_parser(), argv)
    return code, json.loads(capsys.readouterr().out)


def _dashboard() -> AppTest:
    reset_ops()
    at = AppTest.from_file(ROUTER, default_timeout=30)  # local mode: no login configured
    at.switch_page(page_path("status"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_every_interface_reports_the_same_problems(state: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    status = _api(state, "models/status")
    health = _api(state, "models/health")
    code, cli = _cli(state, capsys)
    at = _dashboard()

    problems = status["problems"]
    assert status["level"] == health["level"] == cli["level"]
    assert problems == health["problems"] == cli["problems"], "API status, API health and the CLI disagree"
    assert code == (1 if status["level"] == "red" else 0)

    # The Status page shows each problem as an alert, and nothing else as one.
    shown = [e.value for e in (*at.main.error, *at.main.warning) if e.value in problems]
    assert sorted(shown) == sorted(problems), "the Status page shows other alerts than the API"
    # The sidebar: the same level and the count, with the most severe problem first.
    sidebar = " ".join(str(e.value) for e in (*at.sidebar.markdown, *at.sidebar.caption))
    assert LEVEL_LABEL[status["level"]] in sidebar
    assert f"act as **{identity.local_name()}**" in sidebar
    if problems:
        assert f"{len(problems)} problem(s): {problems[0]}" in sidebar
    else:
        assert "problem(s)" not in sidebar


@pytest.mark.parametrize("name", list(STATES))
def test_each_state_has_the_level_an_operator_expects(name: str, settings: Settings) -> None:
    """The level per state, from the application layer itself (what the shared test above compares)."""
    from core.modelops import ModelOps

    db = Database(settings.database_url)
    STATES[name](Registry.from_settings(settings, db), settings)
    db.dispose()
    if name == "database down":
        settings = dataclasses.replace(settings, database_url=f"sqlite:///{settings.models_dir.parent}")
    ops = ModelOps(settings)
    report = ops.status()
    assert report.level == EXPECTED_LEVEL[name], report.problems
    kinds = {a.kind for a in report.alerts}
    expected_kinds = {
        "healthy": set(),
        "checksum mismatch": {"integrity"},
        "hand-made partial restore": {"external_change"},
        "rejected last run": {"last_run_rejected"},
        "restored, not promoted": set(),
        "database down": {"database_unreachable"},
    }[name]
    assert kinds == expected_kinds, report.problems
    if name == "hand-made partial restore":
        # Healed: the anomaly model the `cp` left out was copied from the same backup, once, and audited.
        backup = next(s for s in ops.backups() if s.version == "1.0.0")
        assert report.current.version == "1.0.0" and report.health.ok
        for file in C.SET_FILES:
            assert (settings.models_dir / file).read_bytes() == backup.files[file].read_bytes(), file
        event = report.live_event
        assert (event.kind, event.actor, event.from_version, event.to_version) == (
            "external_change",
            "external",
            "1.0.1",
            "1.0.0",
        )
        assert event.reason == (
            f"hand-made restore of backup {backup.timestamp} completed: "
            f"{C.ANOMALY_MODEL_FILE} copied from the same backup"
        )
        assert event.details["completed_from"] == backup.timestamp
        assert event.details["completed_files"] == [C.ANOMALY_MODEL_FILE]
        assert set(event.details["changed_files"]) == {C.METADATA_FILE, C.FAILURE_MODEL_FILE}
        again = ops.status()
        assert again.level == "amber" and again.health.ok
        assert len(ops.events(kinds=("external_change",))) == 1
    if name == "restored, not promoted":
        assert report.current.version == "1.0.0"
        event = report.live_event
        assert (event.kind, event.actor, event.reason) == ("restore", "bob", "1.0.1 misses gateway failures")


def test_the_read_that_completes_a_hand_made_restore_reports_the_completed_set(settings: Settings) -> None:
    from core.modelops import ModelOps

    db = Database(settings.database_url)
    two_file_cp_restore(Registry.from_settings(settings, db), settings)
    db.dispose()
    ops = ModelOps(settings)
    report = ops.status()
    assert report.health.ok and report.level == "amber", report.problems
    assert {a.kind for a in report.alerts} == {"external_change"}
