"""A PostgreSQL server that stops answering (a freezing proxy): bounded waits, no late writes, files still served."""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from core.config import Settings
from core.db import Database
from core.errors import Unavailable
from core.identity import local_principal
from core.modelops import ModelOps, get_ops, reset_ops
from core.registry import Registry
from tests.conftest import fresh_postgres
from tests.factories import promote
from tests.freezing_proxy import FreezingProxy

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from api.factory import create_api

pytestmark = pytest.mark.postgres
TIMEOUT = 1.0  # DB_TIMEOUT_SECONDS for these tests
DEADLINE = 3.0  # WRITE_DEADLINE_SECONDS
ALICE = local_principal("alice")
API_KEY = "sick-db-key"


@pytest.fixture
def sick(postgres_url: str, settings: Settings):
    """Two promoted versions on the real server; settings that reach it through a proxy the test can freeze."""
    db = fresh_postgres(postgres_url)
    registry = Registry(settings.models_dir, db)
    promote(registry, seed=1)
    promote(registry, seed=2)
    db.dispose()
    url = make_url(postgres_url)
    proxy = FreezingProxy((url.host, url.port))
    through = url.set(port=proxy.port).render_as_string(hide_password=False)
    yield (
        proxy,
        dataclasses.replace(
            settings, database_url=through, db_timeout_seconds=TIMEOUT, write_deadline_seconds=DEADLINE
        ),
    )
    proxy.close()


def wait_until_answering(ops: ModelOps, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while ops.database_error is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ops.database_error is None, ops.database_error


def test_reads_are_bounded_then_fail_fast_and_the_files_are_still_served(sick):
    proxy, settings = sick
    ops = ModelOps(settings)
    assert ops.status().level == "green"
    proxy.freeze()
    try:
        started = time.monotonic()
        report = ops.status()
        took = time.monotonic() - started
        # The first read waits its deadline, then answers from the files, saying why.
        assert took < TIMEOUT * 3 + 2, took
        print(f"\nfrozen database: the first read answered from the files after {took:.2f} s")
        assert report.current.version == "1.0.1" and report.health.ok
        assert report.level == "red" and "not answering" in report.problems[0]
        # Everything after it fails at once instead of queueing behind the stuck call.
        slowest = 0.0

        def restore() -> None:
            ops.restore("1.0.0", actor=local_principal("op"), reason="rollback")

        for call in (ops.versions, ops.trends, lambda: ops.events(), restore):
            started = time.monotonic()
            with pytest.raises(Unavailable):
                call()
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < 0.5
        print(f"frozen database: later calls refused within {slowest * 1000:.1f} ms")
        assert [b.version for b in ops.backups()] == ["1.0.1", "1.0.0"]  # the files alone need no database
        # API_KEY is checked without the database (whether accounts or named keys exist cannot be read now).
        keyed = dataclasses.replace(settings, api_key=API_KEY)
        auth = {"Authorization": f"Bearer {API_KEY}"}
        with TestClient(create_api(keyed), base_url="http://localhost") as client:
            started = time.monotonic()
            assert client.get("/predictions/models/status").json()["model_metadata"]["version"] == "1.0.1"
            assert client.get("/predictions/models/backups").status_code == 200
            body = {"version": "1.0.0", "reason": "rollback"}
            assert client.post("/predictions/models/restore", json=body, headers=auth).status_code == 503
            assert time.monotonic() - started < TIMEOUT * 3 + 2
    finally:
        proxy.thaw()
    wait_until_answering(ops)
    assert ops.status().level == "green"
    ops.dispose()


def test_a_write_that_outlives_its_deadline_is_never_applied_later(sick, postgres_url):
    proxy, settings = sick
    ops = ModelOps(settings)
    ops.status()
    proxy.freeze()
    try:
        started = time.monotonic()
        with pytest.raises(Unavailable, match="did not answer"):
            ops.restore("1.0.0", actor=ALICE, reason="rollback")
        took = time.monotonic() - started
        assert took < DEADLINE + TIMEOUT * 2 + 2
        print(f"\nfrozen database: the restore gave up after {took:.2f} s (write deadline {DEADLINE:g} s)")
        time.sleep(1.0)  # the client has given up; the database is still silent
    finally:
        proxy.thaw()
    wait_until_answering(ops)
    # The stuck restore resumed when the database answered again, found its deadline passed, changed nothing.
    assert ops.current().version == "1.0.1"
    assert ops.events(kinds=("restore",)) == []
    ops.dispose()
    check = Database(postgres_url)
    assert Registry(settings.models_dir, check).current().version == "1.0.1"
    check.dispose()
    ops = ModelOps(settings)
    assert ops.restore("1.0.0", actor=ALICE, reason="rollback").restored.version == "1.0.0"
    ops.dispose()


def test_a_prediction_waits_its_deadline_then_later_ones_fail_fast(sick):
    from tests.api.conftest import promote_feature_model
    from tests.api.test_predict import READING

    proxy, settings = sick
    ops = ModelOps(settings)
    promote_feature_model(ops.registry)
    ops.dispose()
    body = {"device_id": "dev-1", "metrics": READING}
    with TestClient(create_api(settings), base_url="http://localhost") as client:
        assert client.post("/predictions/predict", json=body).status_code == 200
        proxy.freeze()
        try:
            started = time.monotonic()
            first = client.post("/predictions/predict", json=body)
            took = time.monotonic() - started
            assert first.status_code == 503 and "did not answer" in first.json()["detail"], first.text
            assert took < TIMEOUT * 3 + 2, took
            started = time.monotonic()
            second = client.post("/predictions/predict", json=body)
            assert second.status_code == 503 and time.monotonic() - started < TIMEOUT * 3 + 2
            # A call still stuck on the database (rather than one whose new connection timed out and returned)
            # makes the next ones fail at once instead of queueing behind it.
            stuck = [r for r in (first, second) if "did not answer within" in r.json()["detail"]]
            if stuck:
                started = time.monotonic()
                third = client.post("/predictions/predict", json=body)
                assert third.status_code == 503 and time.monotonic() - started < 0.5
        finally:
            proxy.thaw()
        wait_until_answering(get_ops(settings))  # the stuck call returns before the proxy goes away
        assert client.post("/predictions/predict", json=body).status_code == 200
    reset_ops()


CHILD = """
import sys
from core.config import Settings
from core.errors import Unavailable
from core.modelops import ModelOps
ops = ModelOps(Settings.from_env())
ops.status()  # a pooled connection through the proxy
print("ready", flush=True)
sys.stdin.readline()  # the proxy is frozen now
try:
    ops.versions()
except Unavailable as exc:
    print("refused:", exc.message, flush=True)
print("exiting", flush=True)
"""


def test_a_process_whose_database_call_is_stuck_still_exits(sick, tmp_path):
    """A server stopped while its database does not answer (a restart is what an operator tries then) must exit,
    not wait on the stuck call until the database answers."""
    import os
    import subprocess
    import sys

    proxy, settings = sick
    env = {**os.environ, "DATABASE_URL": settings.database_url, "MODELS_DIR": str(settings.models_dir)}
    env |= {"DB_TIMEOUT_SECONDS": str(TIMEOUT), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        proxy.freeze()
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().startswith("refused: the database did not answer")
        assert child.stdout.readline().strip() == "exiting"
        started = time.monotonic()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("the process did not exit within 10 s of its last line: it waits on the stuck call")
        assert child.returncode == 0 and time.monotonic() - started < 10
    finally:
        proxy.thaw()
        child.kill()
