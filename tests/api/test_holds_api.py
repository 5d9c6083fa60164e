"""Holds and candidates over HTTP: restore during training (409 unless confirmed), hold/release, candidates.

A TestClient over create_api on a real SQLite file; real training on a simulated fleet; real files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from api.factory import create_api
from core import constants as C
from core.config import Settings
from core.identity import Principal
from core.locking import training_lock
from core.modelops import ModelOps, get_ops
from core.simulator import simulate_fleet
from core.training_run import TrainingRequest, TrainOutcome
from tests.api.conftest import REASON, P, TestClient, error_of, make_key, snapshot

HOLD = f"{P}/models/hold"
CANDIDATES = f"{P}/models/candidates"


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def candidate_files(settings: Settings) -> dict[str, str]:
    root = settings.models_dir / C.CANDIDATES_DIR
    return {str(p.relative_to(root)): sha(p) for p in sorted(root.rglob("*")) if p.is_file()} if root.exists() else {}


def everything(settings: Settings) -> tuple[Any, ...]:
    """The models directory (with candidates), the history counts and the hold: equal means nothing changed."""
    return snapshot(settings), candidate_files(settings), get_ops(settings).hold()


def seed(settings: Settings) -> None:
    simulate_fleet(get_ops(settings).db, devices=40, days=60, seed=23)


def fresh(client: TestClient, path: str, ready: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict:
    """GET a status-like body until it shows the database's latest state (they are cached for up to 1 s)."""
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(path).json()
        if ready(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def wait_run(client: TestClient, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"{P}/train/{job_id}").json()
        if run["finished"]:
            return run
        time.sleep(0.1)
    raise AssertionError(f"training job {job_id} did not finish")


class PausedRun:
    """A real training run of the API's own ModelOps, in a thread, paused in its progress callback once the
    gate has passed ("promoting") and before anything is promoted."""

    def __init__(self, ops: ModelOps) -> None:
        self.ops = ops
        self.reached, self.go = threading.Event(), threading.Event()
        self.outcome: TrainOutcome | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, daemon=True)

    def _progress(self, stage: str, fraction: float, message: str) -> None:
        if stage == "promoting" and not self.reached.is_set():
            self.reached.set()
            self.go.wait(60)

    def _work(self) -> None:
        try:
            actor = Principal("nightly", "operator", "cli")
            request = TrainingRequest(60, force=True)
            self.outcome = self.ops.train(request, actor=actor, trigger="schedule", progress=self._progress)
        except BaseException as exc:
            self.error = exc
        finally:
            self.reached.set()

    def __enter__(self) -> PausedRun:
        self.thread.start()
        assert self.reached.wait(60) and self.error is None and self.outcome is None, self.error
        return self

    def finish(self) -> TrainOutcome:
        self.go.set()
        self.thread.join(60)
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return self.outcome

    def __exit__(self, *exc: object) -> None:
        self.go.set()
        self.thread.join(60)


# ------------------------------------------------------------------------------------------------ the race
def test_restore_during_training_is_409_unless_confirmed_then_the_run_becomes_a_candidate(
    client, settings, two_versions
):
    seed(settings)
    ops = get_ops(settings)
    with PausedRun(ops) as run:
        before = everything(settings)
        detail = error_of(client.post(f"{P}/models/restore", json={"version": "1.0.0", "reason": REASON}), 409)
        assert "in flight" in detail and '"during_training": true' in detail
        assert everything(settings) == before
        r = client.post(f"{P}/models/restore", json={"version": "1.0.0", "reason": REASON, "during_training": True})
        assert r.status_code == 200, r.text
        assert (r.json()["version"], r.json()["held"], r.json()["from_version"]) == ("1.0.0", True, "1.0.1")
        outcome = run.finish()
    assert outcome.status == "candidate", outcome.message

    job = client.get(f"{P}/train/{outcome.run_id}").json()
    assert (job["outcome"], job["finished"], job["version"]) == ("candidate", True, None)
    version = fresh(client, f"{P}/models/version", lambda b: bool(b["candidates"]))
    assert version["version"] == "1.0.0" and version["became_live"]["kind"] == "restore"
    assert (version["hold"]["version"], version["hold"]["placed_by"]) == ("1.0.0", "anonymous-localhost")
    assert version["hold"]["reason"] == REASON and version["newer_versions"] == ["1.0.1"]
    [listed] = version["candidates"]
    assert listed["run_id"] == outcome.run_id and listed["validation"]["valid"] is True
    status = fresh(client, f"{P}/models/status", lambda b: bool(b["candidates"]))
    assert status["model_metadata"]["version"] == "1.0.0" and status["hold"]["version"] == "1.0.0"
    assert [c["id"] for c in status["candidates"]] == [listed["id"]]

    assert client.get(HOLD).json()["hold"]["version"] == "1.0.0"
    body = client.get(CANDIDATES).json()
    assert body["count"] == 1 and body["candidates"][0]["id"] == listed["id"]
    one = client.get(f"{CANDIDATES}/{listed['id']}").json()
    assert one["candidate"]["id"] == listed["id"]
    assert one["compared_with_live"]["current_version"] == "1.0.0"
    events = client.get(f"{P}/models/events").json()["events"]
    assert [e["kind"] for e in events] == ["candidate", "restore", "promote", "promote"]
    assert events[0]["details"]["run_id"] == outcome.run_id and events[1]["details"]["hold"] is True


def test_during_training_must_be_a_boolean(client, settings, two_versions):
    with training_lock(settings.models_dir).hold("training (days_back=60)", "nightly-cron"):
        before = everything(settings)
        for bad in ("yes", 1, None):
            payload = {"version": "1.0.0", "reason": REASON, "during_training": bad}
            assert "during_training" in error_of(client.post(f"{P}/models/restore", json=payload), 422)
        assert "nightly-cron" in error_of(
            client.post(f"{P}/models/restore", json={"version": "1.0.0", "reason": REASON}), 409, "conflict"
        )
        assert everything(settings) == before


# ------------------------------------------------------------------------------------------- hold lifecycle
def test_hold_release_and_place_need_an_admin_key_and_a_reason(client, settings, two_versions):
    viewer = make_key(settings, "auditor", "viewer")
    operator = make_key(settings, "release-bot", "operator")
    admin = make_key(settings, "head-of-ops", "admin")
    r = client.post(f"{P}/models/restore", json={"version": "1.0.0", "reason": REASON}, headers=operator)
    assert r.status_code == 200, r.text
    hold = client.get(HOLD, headers=viewer).json()["hold"]
    assert (hold["version"], hold["placed_by"], hold["reason"]) == ("1.0.0", "release-bot", REASON)
    assert client.get(f"{P}/models/status").json()["hold"] == hold

    before = everything(settings)
    for who, key in (("auditor (viewer)", viewer), ("release-bot (operator)", operator)):
        for path in (f"{HOLD}/release", HOLD):
            detail = error_of(client.post(path, json={"reason": "ship it"}, headers=key), 403, "forbidden")
            assert who in detail and "admin" in detail
    error_of(client.post(f"{HOLD}/release", json={"reason": "ship it"}), 401, "unauthorized")
    for body in ({}, {"reason": ""}, {"reason": "   "}):
        assert "give a reason" in error_of(client.post(f"{HOLD}/release", json=body, headers=admin), 422)
    error_of(client.post(f"{HOLD}/release", json={"reason": 5}, headers=admin), 422, "invalid_input")
    error_of(client.post(f"{HOLD}/release", json={"reason": "x", "force": True}, headers=admin), 422)
    assert everything(settings) == before

    r = client.post(f"{HOLD}/release", json={"reason": "the fix is deployed"}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["released"]["version"] == "1.0.0"
    assert client.get(HOLD).json() == {"hold": None}
    assert fresh(client, f"{P}/models/status", lambda b: b["hold"] is None)["hold"] is None
    event = client.get(f"{P}/models/events", params={"kind": "hold"}).json()["events"][0]
    assert (event["actor"], event["reason"], event["details"]["action"]) == (
        "head-of-ops",
        "the fix is deployed",
        "released",
    )
    error_of(client.post(f"{HOLD}/release", json={"reason": "again"}, headers=admin), 404, "not_found")

    r = client.post(HOLD, json={"reason": "quarter-end freeze"}, headers=admin)
    assert r.status_code == 200, r.text
    assert (r.json()["hold"]["version"], r.json()["hold"]["placed_by"]) == ("1.0.0", "head-of-ops")
    assert client.get(HOLD).json()["hold"]["reason"] == "quarter-end freeze"


# ----------------------------------------------------------------------------- manual promotion, candidates
@pytest.fixture
def manual(settings: Settings, two_versions: str) -> Iterator[tuple[TestClient, Settings]]:
    # A lenient gate: this test is about where passing runs wait, not about which window trains better.
    lenient = dataclasses.replace(settings.thresholds, f1_score=0.3, recall=0.3, regression_tolerance=1.0)
    manual = dataclasses.replace(settings, promotion="manual", thresholds=lenient)
    seed(manual)
    with TestClient(create_api(manual, predict_requires_key=False), base_url="http://localhost") as c:
        yield c, manual


def test_manual_promotion_keeps_runs_until_an_admin_approves_or_discards(manual):
    client, settings = manual
    operator = make_key(settings, "release-bot", "operator")
    admin = make_key(settings, "head-of-ops", "admin")

    def train(days_back: int) -> dict[str, Any]:
        # Windows unlike the live version's: the same data would make the same model, recorded "unchanged".
        r = client.post(f"{P}/train", json={"force_retrain": True, "days_back": days_back}, headers=operator)
        assert r.status_code == 202, r.text
        return wait_run(client, r.json()["job_id"])

    run = train(59)
    assert (run["outcome"], run["version"]) == ("candidate", None), run
    assert client.get(f"{P}/models/version").json()["version"] == "1.0.1"
    assert client.get(HOLD).json() == {"hold": None}  # no hold needed
    [listed] = client.get(CANDIDATES).json()["candidates"]
    assert listed["run_id"] == run["job_id"] and "PROMOTION=manual" in listed["kept_because"]
    assert (listed["actor"], listed["trigger"]) == ("release-bot", "api")
    cid = listed["id"]
    kept = {n: sha(settings.models_dir / C.CANDIDATES_DIR / cid / n) for n in C.MODEL_FILES}

    before = everything(settings)
    for verb in ("approve", "discard"):
        detail = error_of(client.post(f"{CANDIDATES}/{cid}/{verb}", json={}, headers=operator), 403, "forbidden")
        assert f"release-bot (operator) may not {verb} candidates" in detail
        error_of(client.post(f"{CANDIDATES}/0123456789ab/{verb}", json={}, headers=admin), 404, "not_found")
        error_of(client.post(f"{CANDIDATES}/NOT-AN-ID/{verb}", json={}, headers=admin), 422, "invalid_input")
        error_of(client.post(f"{CANDIDATES}/..%2F..%2Fmodels/{verb}", json={}, headers=admin), 404)
    error_of(client.get(f"{CANDIDATES}/0123456789ab"), 404, "not_found")
    error_of(client.get(f"{CANDIDATES}/xyz"), 422, "invalid_input")
    assert everything(settings) == before

    r = client.post(f"{CANDIDATES}/{cid}/approve", json={"reason": "reviewed the gate checks"}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json() == {"promoted": "2.0.0", "candidate_id": cid, "actor": "head-of-ops"}
    live = {n: sha(settings.models_dir / n) for n in C.MODEL_FILES}
    assert live == kept  # the candidate's exact files went live
    version = client.get(f"{P}/models/version").json()
    assert (version["version"], version["actor"], version["trigger"]) == ("2.0.0", "head-of-ops", "approval")
    event = client.get(f"{P}/models/events", params={"kind": "promote"}).json()["events"][0]
    assert (event["actor"], event["reason"], event["details"]["candidate_id"]) == (
        "head-of-ops",
        "reviewed the gate checks",
        cid,
    )
    assert client.get(CANDIDATES).json()["count"] == 0 and candidate_files(settings) == {}
    error_of(client.get(f"{CANDIDATES}/{cid}"), 404)

    second = train(58)
    assert second["outcome"] == "candidate"
    [other] = client.get(CANDIDATES).json()["candidates"]
    r = client.post(f"{CANDIDATES}/{other['id']}/discard", json={"reason": "bad week of data"}, headers=admin)
    assert r.status_code == 200 and r.json() == {"discarded": other["id"], "actor": "head-of-ops"}
    assert candidate_files(settings) == {} and client.get(CANDIDATES).json()["count"] == 0
    event = client.get(f"{P}/models/events", params={"kind": "candidate"}).json()["events"][0]
    assert (event["actor"], event["reason"], event["details"]["action"]) == (
        "head-of-ops",
        "bad week of data",
        "discarded",
    )
    assert client.get(f"{P}/models/version").json()["version"] == "2.0.0"


def test_an_overlong_candidate_id_is_a_client_error(settings, two_versions):
    (settings.models_dir / C.CANDIDATES_DIR).mkdir()  # as after the first kept run
    app = create_api(settings, predict_requires_key=False)
    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as client:
        r = client.get(f"{CANDIDATES}/{'a' * 300}")
        assert r.status_code in (404, 422), f"{r.status_code} {r.text}"
