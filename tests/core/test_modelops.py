"""The application layer's own rules: compare, actors and reasons, writes that wait for the database."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput, NotFound, Unavailable
from core.modelops import ModelOps
from tests.factories import promote


@pytest.fixture
def ops(settings):
    ops = ModelOps(settings)
    yield ops
    ops.dispose()


def test_compare_reports_difference_percent_and_improved(ops):
    promote(ops.registry, seed=1, accuracy=0.80, f1_score=0.70, days_back=90)
    promote(ops.registry, seed=2, accuracy=0.84, f1_score=0.63, days_back=180)
    c = ops.compare()
    assert (c.a.version, c.b.version) == ("1.0.1", "1.0.0")
    acc = c.metrics["accuracy"]
    assert acc.difference == pytest.approx(0.04) and acc.percent_change == pytest.approx(5.0) and acc.improved is True
    assert c.metrics["f1_score"].improved is False
    assert c.differing("data")["days_back"] == (180, 90)
    assert ops.compare("1.0.0", "1.0.1").metrics["accuracy"].difference == pytest.approx(-0.04)
    with pytest.raises(NotFound):
        ops.compare("1.0.0", "3.0.0")
    with pytest.raises(InvalidInput, match="two different versions"):
        ops.compare("1.0.0", "1.0.0")


def test_compare_defaults_to_a_backup_of_another_version(ops):
    promote(ops.registry, seed=1)
    with pytest.raises(NotFound, match="second model is promoted"):
        ops.compare()
    promote(ops.registry, seed=2)
    ops.restore("1.0.0", actor="op")  # now the newest backup holds 1.0.1, an older one 1.0.0 (the live one)
    ops.backup_now(actor="op")  # and the newest of all holds 1.0.0 again
    c = ops.compare()
    assert (c.a.version, c.b.version) == ("1.0.0", "1.0.1")


@pytest.mark.parametrize("actor", [None, "", "   ", "a" * 129, "line\nbreak", "nul\x00"])
def test_every_change_needs_a_plain_actor(ops, actor):
    promote(ops.registry, seed=1)
    before = ops.backups()
    with pytest.raises(InvalidInput):
        ops.backup_now(actor=actor)
    assert ops.backups() == before


def test_changes_wait_for_the_database(settings, tmp_path):
    import dataclasses

    promote_ops = ModelOps(settings)
    promote(promote_ops.registry, seed=1)
    promote(promote_ops.registry, seed=2)
    promote_ops.dispose()
    down = ModelOps(dataclasses.replace(settings, database_url=f"sqlite:///{tmp_path}"))
    before = sorted(p.name for p in settings.models_dir.iterdir())
    for change in (
        lambda: down.restore("1.0.0", actor="op"),
        lambda: down.backup_now(actor="op"),
        lambda: down.cleanup(0, actor="op"),
        lambda: down.delete_backup(down.backups()[0].timestamp, actor="op"),
    ):
        with pytest.raises(Unavailable, match="audit trail"):
            change()
    assert sorted(p.name for p in settings.models_dir.iterdir()) == before
