"""Holds and candidates: a restore holds its version, a run that was already training never undoes it.

Real SQL (SQLite and PostgreSQL), real training on a simulated fleet, real files; the in-flight run is paused
in its own progress callback at the "promoting" stage (the gate passed, nothing promoted yet).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import shutil
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core import constants as C
from core import serialize as S
from core.artifacts import load_checked
from core.config import Settings
from core.db import Database, RegistryHold
from core.domain import artifact_checksums
from core.errors import Conflict, Forbidden, Held, IntegrityError, InvalidInput, NotFound, Unavailable
from core.identity import Principal, local_principal
from core.modelops import ModelOps
from core.simulator import simulate_fleet
from core.training_run import TrainingRequest, TrainOutcome
from tests.factories import metadata_fields, promote, tiny_models

RUN = TrainingRequest(60, force=True)
# What SQL does not decide runs on SQLite only (the any_db fixture's params, overridden), to stay fast.
SQLITE_ONLY = pytest.mark.parametrize("any_db", ["sqlite"], indirect=True)
REASON = "rollback after a regression"
ADMIN = local_principal("ada")
OPERATOR = Principal("olivia", "operator", "api_key")
VIEWER = Principal("victor", "viewer", "api_key")


# ----------------------------------------------------------------------------------------------- helpers
@pytest.fixture
def make_ops(any_db: Database, settings: Settings):
    """ModelOps on this test's database (SQLite or PostgreSQL) and models directory, with settings changes."""
    made: list[ModelOps] = []

    def make(**changes: Any) -> ModelOps:
        ops = ModelOps(dataclasses.replace(settings, database_url=any_db.url, **changes))
        made.append(ops)
        return ops

    yield make
    for ops in made:
        ops.dispose()


@pytest.fixture
def ops(make_ops) -> ModelOps:
    return make_ops()


@pytest.fixture
def two_versions(ops: ModelOps) -> ModelOps:
    """Versions 1.0.0 and 1.0.1 (1.0.1 live), each in its backup."""
    promote(ops.registry, seed=1, accuracy=0.80)
    promote(ops.registry, seed=2, accuracy=0.84)
    assert ops.current().version == "1.0.1"
    return ops


@pytest.fixture
def seeded(two_versions: ModelOps, any_db: Database) -> ModelOps:
    """The same, with a simulated fleet's telemetry to train on for real."""
    simulate_fleet(any_db, devices=40, days=60, seed=23)  # F1 0.69-0.79 at any hour: see test_training_run
    return two_versions


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def disk(ops: ModelOps) -> dict[str, str]:
    """Every file under the models directory (relative path -> sha256)."""
    root = ops.settings.models_dir
    return {str(p.relative_to(root)): sha(p) for p in sorted(root.rglob("*")) if p.is_file()}


def state(ops: ModelOps) -> tuple[dict[str, str], int, Any, str | None]:
    """Files, number of events, the active hold and the live version: 'nothing changed' means all equal."""
    return disk(ops), ops.history.count_events(), ops.hold(), ops.current().version if ops.current() else None


def live_files(ops: ModelOps) -> dict[str, str]:
    return {n: sha(ops.settings.models_dir / n) for n in C.MODEL_FILES}


def hold_rows(ops: ModelOps) -> list[RegistryHold]:
    with ops.db.session() as s:
        rows = list(s.scalars(select(RegistryHold).order_by(RegistryHold.id)))
        s.expunge_all()
        return rows


def kinds(ops: ModelOps) -> list[str]:
    """The registry's own events in order (alert transitions, recorded after runs and restores, left out)."""
    return [e.kind for e in ops.history.events(ascending=True) if not e.kind.startswith("alert_")]


def keep_tiny_candidate(ops: ModelOps, seed: int = 7) -> str:
    """A candidate kept by the registry itself (real files, provenance and event) without training."""
    failure, anomaly = tiny_models(seed)
    kept = ops.registry.keep_candidate(
        failure,
        anomaly,
        metadata_fields(accuracy=0.9),
        actor="nightly",
        trigger="schedule",
        because="held for the test",
        run_id=uuid.uuid4().hex,
    )
    return kept.id


class PausedRun:
    """A real training run (ModelOps.train, as the CLI and the schedule run it) in a thread, paused in its
    progress callback when it reaches `stage`: for "promoting" the gate has passed and nothing is promoted."""

    def __init__(self, ops: ModelOps, *, stage: str = "promoting", actor: Principal | None = None) -> None:
        self.ops, self.stage = ops, stage
        self.actor = actor or Principal("nightly", "operator", "cli")
        self.reached, self.go = threading.Event(), threading.Event()
        self.outcome: TrainOutcome | None = None
        self.error: BaseException | None = None
        self.stages: list[str] = []
        self.thread = threading.Thread(target=self._work, name="paused-training", daemon=True)

    def _progress(self, stage: str, fraction: float, message: str) -> None:
        self.stages.append(stage)
        if stage == self.stage and not self.reached.is_set():
            self.reached.set()
            if not self.go.wait(60):
                raise TimeoutError("the test never let the paused run go on")

    def _work(self) -> None:
        try:
            self.outcome = self.ops.train(RUN, actor=self.actor, trigger="schedule", progress=self._progress)
        except BaseException as exc:  # reported by finish()
            self.error = exc
        finally:
            self.reached.set()

    def __enter__(self) -> PausedRun:
        self.thread.start()
        assert self.reached.wait(60), "the training run never reached its pause point"
        if self.error is not None:
            raise self.error
        assert self.outcome is None, f"the run ended before {self.stage!r}: {self.stages}"
        assert self.ops.training_holder() is not None, "the paused run holds the training lock"
        return self

    def finish(self) -> TrainOutcome:
        self.go.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the training run did not finish"
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return self.outcome

    def __exit__(self, *exc: object) -> None:
        self.go.set()
        self.thread.join(60)


# ------------------------------------------------------------------------------------------------ the race
def test_a_restore_during_an_in_flight_run_holds_its_version_and_the_run_becomes_a_candidate(seeded):
    """The issue's acceptance test: the run passed its gate before the restore and finishes after it."""
    ops = seeded
    with PausedRun(ops) as run:
        assert run.stages[-1] == "promoting" and "validating" in run.stages  # the gate passed
        before = state(ops)
        # Without saying so, an operator may not restore under a run that is in flight: nothing changes.
        with pytest.raises(Conflict, match="in flight") as refused:
            ops.restore("1.0.0", actor=OPERATOR, reason=REASON)
        assert "nightly" in refused.value.message and "--during-training" in refused.value.message
        assert state(ops) == before and before[2] is None

        result = ops.restore("1.0.0", actor=OPERATOR, reason=REASON, during_training=True)
        assert (result.restored.version, result.replaced_version, result.audit_pending) == ("1.0.0", "1.0.1", None)
        restored_files = live_files(ops)
        outcome = run.finish()

    # The restored version is still live, file for file.
    assert ops.current().version == "1.0.0" and live_files(ops) == restored_files
    assert ops.registry.health(load=True).ok
    # The run is a candidate, not a failure.
    assert (outcome.status, outcome.version, outcome.exit_code) == ("candidate", None, 0), outcome.message
    record = ops.run(outcome.run_id)
    assert (record.status, record.version, record.finished) == ("candidate", None, True)
    assert record.gate["valid"] is True and "held by olivia" in record.log[-1]["message"]
    # Its three files are kept whole in models/candidates/<id>, and they are the files the registry recorded.
    [candidate] = ops.candidates()
    folder = ops.settings.models_dir / C.CANDIDATES_DIR / candidate.id
    assert candidate.id == outcome.run_id[:12] and candidate.run_id == outcome.run_id
    assert sorted(p.name for p in folder.iterdir()) == sorted(C.SET_FILES)
    checksums = artifact_checksums(candidate.metadata)
    for name in C.MODEL_FILES:
        data = (folder / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == checksums[name]["sha256"]
        load_checked(name, data, checksums[name]["sha256"], ops.registry.provenance)  # IntegrityError otherwise
    assert "version 1.0.0 is held by olivia" in candidate.kept_because
    # History: the restore, then the candidate (and no promotion after the restore).
    assert kinds(ops) == ["promote", "promote", "restore", "candidate"]
    restore_event, candidate_event = ops.history.events(ascending=True)[-2:]
    assert (restore_event.actor, restore_event.reason, restore_event.to_version) == ("olivia", REASON, "1.0.0")
    assert restore_event.details["hold"] is True
    assert candidate_event.details == {
        "candidate_id": candidate.id,
        "run_id": outcome.run_id,
        "action": "kept",
    }
    assert candidate_event.actor == "nightly"
    # Status shows the hold, the candidate and the version that is no longer live.
    report = ops.status()
    assert report.hold is not None and (report.hold.version, report.hold.placed_by) == ("1.0.0", "olivia")
    assert [c.id for c in report.candidates] == [candidate.id]
    assert report.newer_versions == ("1.0.1",)
    assert report.live_event.kind == "restore" and report.current.version == "1.0.0"
    assert report.last_run.status == "candidate" and report.running is None
    body = S.status_dict(report)
    assert body["hold"]["version"] == "1.0.0" and [c["id"] for c in body["candidates"]] == [candidate.id]


@SQLITE_ONLY
def test_a_refused_restore_leaves_no_hold_and_the_run_goes_live(seeded):
    ops = seeded
    with PausedRun(ops) as run:
        before = state(ops)
        with pytest.raises(Conflict):
            ops.restore("1.0.0", actor=ADMIN, reason=REASON)  # even an admin must say so
        assert state(ops) == before
        outcome = run.finish()
    assert (outcome.status, outcome.version) == ("promoted", "2.0.0"), outcome.message
    assert ops.current().version == "2.0.0" and ops.hold() is None and ops.candidates() == []
    assert "restore" not in kinds(ops)


# ------------------------------------------------------------------------------------------- hold lifecycle
def test_a_restore_holds_its_version_naming_who_when_and_why(two_versions):
    ops = two_versions
    before = dt.datetime.now(dt.UTC)
    ops.restore("1.0.0", actor=OPERATOR, reason=REASON)
    hold = ops.hold()
    assert (hold.version, hold.placed_by, hold.reason) == ("1.0.0", "olivia", REASON)
    assert before - dt.timedelta(seconds=1) <= hold.placed_at <= dt.datetime.now(dt.UTC)
    [event] = ops.events(kinds=["restore"])
    assert event.at == hold.placed_at  # written in the restore event's own transaction
    report = ops.status()
    for body in (S.status_dict(report), S.version_dict(report)):
        assert body["hold"] == {
            "version": "1.0.0",
            "placed_by": "olivia",
            "placed_at": hold.placed_at.isoformat(),
            "reason": REASON,
        }
        assert body["newer_versions"] == ["1.0.1"] and body["candidates"] == []
    assert S.version_dict(report)["became_live"]["kind"] == "restore"


def test_only_an_admin_with_a_reason_releases_or_places_a_hold(two_versions):
    ops = two_versions
    ops.restore("1.0.0", actor=OPERATOR, reason=REASON)
    before = state(ops)
    for who in (VIEWER, OPERATOR):
        with pytest.raises(Forbidden, match=f"{who.name} \\({who.role}\\) may not manage holds: .* admin"):
            ops.release_hold(actor=who, reason="ship it")
        with pytest.raises(Forbidden, match="may not manage holds"):
            ops.place_hold(actor=who, reason="freeze")
    for reason in (None, "", "   ", "x" * 1001, "nul\x00"):
        with pytest.raises(InvalidInput, match="reason"):
            ops.release_hold(actor=ADMIN, reason=reason)
        with pytest.raises(InvalidInput, match="reason"):
            ops.place_hold(actor=ADMIN, reason=reason)
    with pytest.raises(Forbidden, match="identified principal"):
        ops.release_hold(actor="ada", reason="a bare name is not an identity")
    assert state(ops) == before and ops.hold().version == "1.0.0"


def test_a_release_is_recorded_and_the_next_gate_passing_run_goes_live(seeded):
    ops = seeded
    ops.restore("1.0.0", actor=OPERATOR, reason=REASON)
    held = ops.train(RUN, actor=OPERATOR, trigger="test")
    assert held.status == "candidate" and ops.current().version == "1.0.0"

    released = ops.release_hold(actor=ADMIN, reason="1.0.1's regression is fixed upstream")
    assert (released.version, released.placed_by) == ("1.0.0", "olivia")
    assert ops.hold() is None
    [event] = ops.events(kinds=["hold"])
    assert (event.actor, event.reason, event.from_version) == ("ada", "1.0.1's regression is fixed upstream", "1.0.0")
    assert event.details["action"] == "released" and event.details["placed_by"] == "olivia"
    [row] = hold_rows(ops)
    assert (row.released_by, row.release_reason, row.released_at) == ("ada", event.reason, event.at)
    assert S.status_dict(ops.status())["hold"] is None
    with pytest.raises(NotFound, match="nothing is held"):
        ops.release_hold(actor=ADMIN, reason="again")

    outcome = ops.train(RUN, actor=OPERATOR, trigger="test")
    assert (outcome.status, outcome.version) == ("promoted", "2.0.0"), outcome.message
    assert ops.current().version == "2.0.0"
    assert kinds(ops)[-4:] == ["restore", "candidate", "hold", "promote"]


@SQLITE_ONLY
def test_an_admin_holds_the_live_version_and_a_run_is_kept_as_a_candidate(seeded):
    ops = seeded
    hold = ops.place_hold(actor=ADMIN, reason="release freeze")
    assert (hold.version, hold.placed_by, hold.reason) == ("1.0.1", "ada", "release freeze")
    assert ops.hold() == hold
    [event] = ops.events(kinds=["hold"])
    assert (event.actor, event.to_version, event.details["action"]) == ("ada", "1.0.1", "placed")
    outcome = ops.train(RUN, actor=OPERATOR, trigger="test")
    assert outcome.status == "candidate" and "release freeze" in outcome.message
    assert ops.current().version == "1.0.1" and len(ops.candidates()) == 1


def test_holding_needs_a_live_version(ops):
    with pytest.raises(NotFound, match="no live version"):
        ops.place_hold(actor=ADMIN, reason="freeze")
    assert ops.hold() is None and ops.history.count_events() == 0


def test_a_second_restore_replaces_the_hold(two_versions):
    ops = two_versions
    ops.restore("1.0.0", actor=OPERATOR, reason=REASON)
    ops.restore("1.0.1", actor=ADMIN, reason="1.0.0 was worse")
    hold = ops.hold()
    assert (hold.version, hold.placed_by, hold.reason) == ("1.0.1", "ada", "1.0.0 was worse")
    first, second = hold_rows(ops)
    assert (first.version, first.released_by) == ("1.0.0", "ada") and "replaced" in first.release_reason
    assert (second.version, second.released_at) == ("1.0.1", None)
    assert ops.status().hold.version == "1.0.1"


# --------------------------------------------------------------------------------- manual promotion, approval
@SQLITE_ONLY
def test_with_manual_promotion_every_gate_passing_run_waits_for_an_admin(make_ops, any_db):
    ops = make_ops(promotion="manual")
    simulate_fleet(any_db, devices=40, days=60, seed=23)
    first = ops.train(RUN, actor=OPERATOR, trigger="test")
    assert (first.status, first.exit_code) == ("candidate", 0) and "PROMOTION=manual" in first.message
    assert ops.current() is None and ops.hold() is None  # not even the first model goes live by itself
    [candidate] = ops.candidates()
    assert candidate.run_id == first.run_id and ops.run(first.run_id).status == "candidate"
    # A run the gate rejects is rejected, not kept.
    strict = make_ops(promotion="manual", thresholds=dataclasses.replace(ops.settings.thresholds, f1_score=0.99))
    assert strict.train(RUN, actor=OPERATOR, trigger="test").status == "rejected"
    assert [c.id for c in ops.candidates()] == [candidate.id]
    promoted = ops.approve_candidate(candidate.id, actor=ADMIN, reason="first model, reviewed")
    assert promoted.version == "1.0.0" and ops.current().version == "1.0.0" and ops.candidates() == []
    assert ops.events(kinds=["promote"])[0].details["candidate_id"] == candidate.id


def test_approval_promotes_the_candidates_exact_files_and_releases_the_hold(seeded):
    ops = seeded
    ops.restore("1.0.0", actor=OPERATOR, reason=REASON)
    kept = ops.train(RUN, actor=OPERATOR, trigger="test")
    [candidate] = ops.candidates()
    files = {n: sha(candidate.files[n]) for n in C.MODEL_FILES}
    assert ops.compare_candidate(candidate.id).b.version == "1.0.0"

    promoted = ops.approve_candidate(candidate.id, actor=ADMIN, reason="better than 1.0.0 on the holdout")
    assert ops.current().version == promoted.version == "2.0.0"
    assert live_files(ops) == files  # the very files that were kept, not a retrained model
    assert ops.registry.health(load=True).ok
    meta = ops.current().metadata
    assert (meta["actor"], meta["trigger"], meta["previous_version"]) == ("ada", "approval", "1.0.0")
    assert {n: a["sha256"] for n, a in meta["artifacts"].items()} == files
    # Who and why, in the promotion's event; the hold was released in that same transaction.
    promote_event = ops.events(kinds=["promote"])[0]
    assert (promote_event.actor, promote_event.reason) == ("ada", "better than 1.0.0 on the holdout")
    assert promote_event.details["candidate_id"] == candidate.id and promote_event.details["run_id"] == kept.run_id
    assert ops.hold() is None
    [row] = hold_rows(ops)
    assert (row.released_by, row.released_at) == ("ada", promote_event.at)
    assert kinds(ops)[-3:] == ["restore", "candidate", "promote"]  # no separate release event
    # The candidate is gone; the approved set has its backup like every promoted set.
    assert ops.candidates() == [] and not (ops.settings.models_dir / C.CANDIDATES_DIR / candidate.id).exists()
    assert "2.0.0" in [b.version for b in ops.backups()]
    with pytest.raises(NotFound):
        ops.candidate(candidate.id)


def test_discarding_removes_the_files_and_is_recorded(ops):
    promote(ops.registry, seed=1)
    candidate_id = keep_tiny_candidate(ops)
    folder = ops.settings.models_dir / C.CANDIDATES_DIR / candidate_id
    assert folder.is_dir()
    gone = ops.discard_candidate(candidate_id, actor=ADMIN, reason="trained on a bad week")
    assert gone.id == candidate_id and not folder.exists() and ops.candidates() == []
    event = ops.events(kinds=["candidate"])[0]
    assert (event.actor, event.reason) == ("ada", "trained on a bad week")
    assert event.details["action"] == "discarded" and event.details["candidate_id"] == candidate_id
    assert ops.current().version == "1.0.0"


@SQLITE_ONLY
def test_an_operator_may_not_approve_or_discard(ops):
    promote(ops.registry, seed=1)
    candidate_id = keep_tiny_candidate(ops)
    before = state(ops)
    with pytest.raises(Forbidden, match="olivia \\(operator\\) may not approve candidates"):
        ops.approve_candidate(candidate_id, actor=OPERATOR, reason="looks fine")
    with pytest.raises(Forbidden, match="may not discard candidates"):
        ops.discard_candidate(candidate_id, actor=OPERATOR, reason="looks bad")
    assert state(ops) == before and [c.id for c in ops.candidates()] == [candidate_id]


def attempts(ops: ModelOps, candidate_id: str) -> list[Any]:
    return [
        lambda: ops.candidate(candidate_id),
        lambda: ops.compare_candidate(candidate_id),
        lambda: ops.approve_candidate(candidate_id, actor=ADMIN, reason="r"),
        lambda: ops.discard_candidate(candidate_id, actor=ADMIN, reason="r"),
    ]


def test_unknown_or_malformed_candidate_ids_change_nothing(ops):
    promote(ops.registry, seed=1)
    keep_tiny_candidate(ops)
    before = state(ops)
    cases = [
        ("0123456789ab", NotFound),
        ("ffffffffffff", NotFound),
        ("", InvalidInput),
        ("../candidates", InvalidInput),
        ("..", InvalidInput),
        ("ABCDEF012345", InvalidInput),
        ("0123 456", InvalidInput),
        ("ab/cd", InvalidInput),
    ]
    for candidate_id, error in cases:
        for attempt in attempts(ops, candidate_id):
            with pytest.raises(error):
                attempt()
    assert state(ops) == before


@SQLITE_ONLY
def test_an_overlong_hex_candidate_id_is_refused_like_any_unknown_id(ops):
    promote(ops.registry, seed=1)
    keep_tiny_candidate(ops)  # models/candidates exists, as it does once any run was kept
    before = state(ops)
    for attempt in attempts(ops, "a" * 300):
        with pytest.raises((InvalidInput, NotFound)):
            attempt()
    assert state(ops) == before


@SQLITE_ONLY
def test_a_tampered_candidate_is_not_approved(ops):
    promote(ops.registry, seed=1)
    candidate_id = keep_tiny_candidate(ops)
    folder = ops.settings.models_dir / C.CANDIDATES_DIR / candidate_id
    shutil.copyfile(ops.settings.models_dir / C.FAILURE_MODEL_FILE, folder / C.FAILURE_MODEL_FILE)
    before = state(ops)
    with pytest.raises(IntegrityError):
        ops.approve_candidate(candidate_id, actor=ADMIN, reason="r")
    assert state(ops) == before


# ------------------------------------------------------------------------------------------------- atomicity
@pytest.fixture
def sqlite_ops(settings: Settings):
    ops = ModelOps(dataclasses.replace(settings, db_timeout_seconds=0.5))
    yield ops
    ops.dispose()


@pytest.fixture
def write_locked(settings: Settings):
    """Another writer holds the SQLite database: reads work, writes wait and fail (call .release())."""
    blocker = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"))

    class Lock:
        held = False

        def take(self) -> None:
            blocker.execute("BEGIN IMMEDIATE")
            self.held = True

        def release(self) -> None:
            if self.held:
                blocker.rollback()
                self.held = False

    lock = Lock()
    yield lock
    lock.release()
    blocker.close()


def test_a_promotion_never_overtakes_a_restore_whose_event_is_pending(sqlite_ops, write_locked):
    ops = sqlite_ops
    simulate_fleet(ops.db, devices=40, days=60, seed=23)
    promote(ops.registry, seed=1)
    promote(ops.registry, seed=2)
    write_locked.take()
    result = ops.restore("1.0.0", actor=OPERATOR, reason=REASON)
    assert result.audit_pending and ops.current().version == "1.0.0"
    restored = live_files(ops)
    # Before the event (and the hold it carries) is recorded, a promotion is refused ...
    with pytest.raises(Unavailable, match="audit event cannot be recorded"):
        promote(ops.registry, seed=5)
    assert ops.current().version == "1.0.0" and live_files(ops) == restored
    write_locked.release()
    # ... and once the database answers, the next promotion records the restore with its hold first, then is held.
    assert ops.registry.pending() is not None  # nobody has recorded it yet
    with pytest.raises(Held, match="version 1.0.0 is held by olivia"):
        promote(ops.registry, seed=6)
    assert ops.registry.pending() is None and ops.hold().version == "1.0.0"
    # A real training run that finishes now is kept as a candidate.
    outcome = ops.train(RUN, actor=OPERATOR, trigger="test")
    assert outcome.status == "candidate", outcome.message
    assert ops.current().version == "1.0.0" and live_files(ops) == restored
    restores = ops.events(kinds=["restore"])
    assert len(restores) == 1 and restores[0].actor == "olivia" and restores[0].details["hold"] is True
    assert kinds(ops)[-2:] == ["restore", "candidate"] and "promote" not in kinds(ops)[-2:]


def test_a_training_run_that_meets_a_pending_restore_is_kept_as_a_candidate(sqlite_ops, write_locked):
    """The race and the pending event together: the run had passed its gate when the restore was applied."""
    ops = sqlite_ops
    simulate_fleet(ops.db, devices=40, days=60, seed=23)
    promote(ops.registry, seed=1)
    promote(ops.registry, seed=2)
    with PausedRun(ops) as run:
        write_locked.take()
        result = ops.restore("1.0.0", actor=OPERATOR, reason=REASON, during_training=True)
        assert result.audit_pending
        restored = live_files(ops)
        write_locked.release()
        outcome = run.finish()
    assert outcome.status == "candidate", outcome.message
    assert ops.current().version == "1.0.0" and live_files(ops) == restored
    assert ops.hold().version == "1.0.0" and kinds(ops)[-2:] == ["restore", "candidate"]


def test_a_discard_whose_event_cannot_be_recorded_is_refused_or_recorded_later(sqlite_ops, write_locked):
    ops = sqlite_ops
    promote(ops.registry, seed=1)
    candidate_id = keep_tiny_candidate(ops)
    folder = ops.settings.models_dir / C.CANDIDATES_DIR / candidate_id
    write_locked.take()
    with contextlib.suppress(Unavailable):
        ops.discard_candidate(candidate_id, actor=ADMIN, reason="trained on a bad week")
    write_locked.release()
    ops.status()  # the next read records whatever is pending
    discarded = [e for e in ops.events(kinds=["candidate"]) if e.details.get("action") == "discarded"]
    # Either nothing happened, or it happened and is recorded (once): never gone without a trace.
    assert (folder.is_dir() and discarded == []) or (not folder.exists() and len(discarded) == 1)
