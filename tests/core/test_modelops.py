"""The application layer's own rules: compare, actors and reasons, writes that wait for the database."""

from __future__ import annotations

import pytest

from core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from core.features import FEATURE_COLUMNS
from core.identity import local_principal
from core.modelops import ModelOps
from tests.factories import metadata_fields, promote, tiny_models


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
    ops.restore("1.0.0", actor=local_principal("op"), reason="test")  # live: 1.0.0; backups hold both
    ops.backup_now(actor=local_principal("op"))  # and the newest of all holds 1.0.0 again
    c = ops.compare()
    assert (c.a.version, c.b.version) == ("1.0.0", "1.0.1")


@pytest.mark.parametrize("name", ["", "   ", "a" * 129, "line\nbreak", "nul\x00"])
def test_every_change_needs_a_plain_actor(ops, name):
    promote(ops.registry, seed=1)
    before = ops.backups()
    with pytest.raises(InvalidInput):
        ops.backup_now(actor=local_principal(name))
    with pytest.raises(Forbidden, match="identified principal"):
        ops.backup_now(actor=name)  # a bare name is not an identity
    assert ops.backups() == before


@pytest.mark.parametrize(
    "role, allowed",
    [
        ("viewer", set()),
        ("operator", {"train", "restore", "backup"}),
        ("admin", {"train", "restore", "backup", "delete", "cleanup", "trust"}),
    ],
)
def test_roles_are_enforced_in_the_application_layer(ops, role, allowed):
    from core.identity import Principal
    from core.training_run import TrainingRequest

    promote(ops.registry, seed=1)
    promote(ops.registry, seed=2)
    who = Principal(f"{role}-1", role, "account")
    old = next(b.timestamp for b in ops.backups() if b.version == "1.0.0")
    attempts = {  # in this order: the last two remove backups the others use
        "backup": lambda: ops.backup_now(actor=who),
        "trust": lambda: ops.restore(old, actor=who, reason="r", trust_unrecorded=True),
        "restore": lambda: ops.restore(old, actor=who, reason="r"),
        "train": lambda: ops.start_training(TrainingRequest(30, force=True), actor=who, trigger="test"),
        "delete": lambda: ops.delete_backup(ops.backups()[-1].timestamp, actor=who, reason="r"),
        "cleanup": lambda: ops.cleanup(1, actor=who, reason="r"),
    }
    for action, attempt in attempts.items():
        events = len(ops.events())
        if action in allowed:
            attempt()
        else:
            with pytest.raises(Forbidden, match=f"{role}-1 \\({role}\\) may not"):
                attempt()
            assert len(ops.events()) == events, action  # refused before anything happened


@pytest.mark.parametrize("change", ["restore", "delete", "cleanup"])
def test_changes_that_undo_work_need_a_reason(ops, change):
    promote(ops.registry, seed=1)
    promote(ops.registry, seed=2)
    who = local_principal("alice")
    old = next(b.timestamp for b in ops.backups() if b.version == "1.0.0")
    call = {
        "restore": lambda reason: ops.restore(old, actor=who, reason=reason),
        "delete": lambda reason: ops.delete_backup(old, actor=who, reason=reason),
        "cleanup": lambda reason: ops.cleanup(0, actor=who, reason=reason),
    }[change]
    for missing in (None, "", "   "):
        with pytest.raises(InvalidInput, match="give a reason"):
            call(missing)
    call("because")


def test_changes_wait_for_the_database(settings, tmp_path):
    import dataclasses

    promote_ops = ModelOps(settings)
    promote(promote_ops.registry, seed=1)
    promote(promote_ops.registry, seed=2)
    promote_ops.dispose()
    down = ModelOps(dataclasses.replace(settings, database_url=f"sqlite:///{tmp_path}"))
    before = sorted(p.name for p in settings.models_dir.iterdir())
    for change in (
        lambda: down.restore("1.0.0", actor=local_principal("op"), reason="r"),
        lambda: down.backup_now(actor=local_principal("op")),
        lambda: down.cleanup(0, actor=local_principal("op"), reason="r"),
        lambda: down.delete_backup(down.backups()[0].timestamp, actor=local_principal("op"), reason="r"),
    ):
        with pytest.raises(Unavailable, match="audit trail"):
            change()
    assert sorted(p.name for p in settings.models_dir.iterdir()) == before


def test_undo_puts_the_replaced_set_back_only_while_the_restored_version_is_live(ops):
    op = local_principal("op")
    for seed in (1, 2, 3):
        promote(ops.registry, seed=seed)  # live 1.0.2; backups of 1.0.0, 1.0.1 and 1.0.2
    first = ops.restore("1.0.0", actor=op, reason="first")
    undone = ops.undo_restore(first, actor=op)
    assert (undone.restored.version, undone.replaced_version) == ("1.0.2", "1.0.0")
    event = ops.events(kinds=("restore",))[0]
    assert (event.actor, event.reason) == ("op", "undo: put v1.0.2 back after restoring v1.0.0")

    again = ops.restore("1.0.0", actor=op, reason="again")
    ops.restore("1.0.1", actor=op, reason="somebody else restores after")
    with pytest.raises(Conflict, match="version 1.0.0 is no longer live"):
        ops.undo_restore(again, actor=op)
    assert ops.current().version == "1.0.1"


@pytest.mark.parametrize(
    "difference, verdict",
    [(0.04, "better"), (-0.04, "worse"), (0.0004, "same"), (-0.0004, "same"), (0.0005, "better"), (None, "n/a")],
)
def test_every_interface_says_one_verdict_word_for_a_metric_change(difference, verdict):
    from core.domain import MetricChange

    change = MetricChange(0.8, None if difference is None else 0.8 - difference, difference, None, None)
    assert change.verdict == verdict


def test_warm_up_loads_the_live_set_before_the_first_prediction(ops, caplog):
    with caplog.at_level("INFO", logger="core.modelops"):
        ops.warm_up()  # nothing promoted yet: not an error, the first prediction will say so
        assert "no live set loaded" in caplog.text
        failure, anomaly = tiny_models(5, n_features=len(FEATURE_COLUMNS))
        meta = metadata_fields(feature_columns=list(FEATURE_COLUMNS))
        ops.registry.promote(failure, anomaly, meta, actor="t", trigger="t")
        ops.warm_up()
    assert "warm-up: live set 1.0.0 loaded" in caplog.text
    cached = ops.predictor()._cached
    assert cached is not None and cached.models.version == "1.0.0"
