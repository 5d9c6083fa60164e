"""Status shows the automatic-rollback setting and the last decision any process recorded."""

from __future__ import annotations

import dataclasses

import pytest

from core.config import Settings
from core.modelops import ModelOps
from core.registry import Registry
from tests.dashboard.test_pages import _dashboard_env, page, texts  # noqa: F401 (the autouse fixture)
from tests.factories import promote


def test_status_shows_the_setting_and_the_last_decision(
    registry: Registry, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = promote(registry, seed=1, accuracy=0.8).version
    assert "Automatic rollback: off (AUTO_ROLLBACK=dry-run or on" in texts(page("status"))

    monkeypatch.setenv("AUTO_ROLLBACK", "dry-run")
    ops = ModelOps(dataclasses.replace(settings, auto_rollback="dry-run"))  # e.g. the fleet-scoring job
    try:
        decided = ops.evaluate_auto_rollback()
    finally:
        ops.dispose()
    said = texts(page("status"))
    assert f"Automatic rollback: dry-run; last decision ({decided.decided_at:%Y-%m-%d %H:%M} UTC)" in said
    assert f"nothing to roll back to: v{version} replaced no other version" in said
