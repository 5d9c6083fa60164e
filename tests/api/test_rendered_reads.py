"""RenderedReads: a plain GET of models/status (version, health) is answered with the reply the whole API last
sent, while the rendered cache would serve that same body; a change by another process shows as before."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from api.factory import create_api
from api.rendered import RenderedCache, RenderedReads
from api.routes import RENDERED_PATHS
from core.config import Settings
from core.db import Database
from core.registry import Registry
from core.storage import set_signature
from tests.factories import promote

STATUS = "/predictions/models/status"
PLAIN = {"Accept-Encoding": "identity"}  # what curl and the guide's scripts send: no gzip


class Counted:
    """The API, counting the HTTP requests that reach it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests += 1
        await self.app(scope, receive, send)


def serve(settings: Settings, *, reads_need_key: bool = False, max_age: float = 60.0) -> tuple[TestClient, Counted]:
    api = create_api(settings, predict_requires_key=False, reads_need_key=reads_need_key)
    api.state.rendered = RenderedCache(max_age=max_age)
    inner = Counted(api)
    return TestClient(RenderedReads(inner, state=api.state, paths=RENDERED_PATHS), base_url="http://localhost"), inner


@pytest.fixture
def elsewhere(settings: Settings) -> Iterator[Registry]:
    """The registry as another process (the CLI, cron) sees it: its own database connection, the same files."""
    db = Database(settings.database_url)
    yield Registry(settings.models_dir, db)
    db.dispose()


def reply(r: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    return r.status_code, [(k, v) for k, v in r.headers.items() if k != "date"], r.content


@pytest.mark.parametrize("path", list(RENDERED_PATHS))
def test_a_repeated_read_is_the_apis_own_reply_without_reaching_it(settings, elsewhere, path):
    promote(elsewhere, accuracy=0.81)
    client, api = serve(settings)
    with client:
        first = client.get(path, headers=PLAIN)
        assert first.status_code == 200 and api.requests == 1
        again = [client.get(path, headers=PLAIN) for _ in range(3)]
    assert api.requests == 1  # answered from the recorded reply
    assert all(reply(r) == reply(first) for r in again)


def test_a_promote_or_restore_by_another_process_shows_in_the_very_next_read(settings, elsewhere):
    client, api = serve(settings)  # bodies never get old: only the files can tell
    with client:
        for seed, accuracy in ((1, 0.71), (2, 0.72), (3, 0.73)):
            promote(elsewhere, seed=seed, accuracy=accuracy)
            for _ in range(2):  # read, then read again from the recorded reply
                body = client.get(STATUS, headers=PLAIN).json()
                assert body["model_metadata"]["model_performance"]["accuracy"] == accuracy
        first = next(s for s in elsewhere.backups() if s.version == "1.0.0")
        elsewhere.restore(first.timestamp, actor="cli", reason="regression", hold=False)
        assert client.get(STATUS, headers=PLAIN).json()["model_metadata"]["version"] == "1.0.0"
    assert api.requests == 4  # one per change: the other reads were replies


def test_a_database_change_by_another_process_shows_once_the_body_is_max_age_old(settings, elsewhere):
    promote(elsewhere, accuracy=0.81)
    client, api = serve(settings, max_age=0.3)
    with client:
        assert client.get(STATUS, headers=PLAIN).json()["hold"] is None
        files = set_signature(settings.models_dir)
        elsewhere.place_hold(actor="alice", reason="investigating")  # history only: the files stay as they are
        assert set_signature(settings.models_dir) == files
        time.sleep(0.35)
        held = client.get(STATUS, headers=PLAIN).json()["hold"]
    assert held is not None and held["placed_by"] == "alice"


def test_gzip_and_reads_that_need_a_key_go_through_the_whole_api(settings, elsewhere):
    promote(elsewhere, accuracy=0.81)
    client, api = serve(settings)
    with client:
        for _ in range(2):
            r = client.get(STATUS, headers={"Accept-Encoding": "gzip"})
            assert r.status_code == 200
        assert api.requests == 2
    keyed, keyed_api = serve(replace(settings, api_key="k-1", api_key_name="bot"), reads_need_key=True)
    with keyed:
        for _ in range(2):
            assert keyed.get(STATUS, headers=PLAIN).status_code == 401
        assert keyed_api.requests == 2


def test_other_methods_and_paths_are_the_apis_business(settings, elsewhere):
    promote(elsewhere, accuracy=0.81)
    client, api = serve(settings)
    with client:
        client.get(STATUS, headers=PLAIN)
        assert client.post(STATUS, headers=PLAIN).status_code == 405
        assert client.get("/predictions/models/versions", headers=PLAIN).status_code == 200
    assert api.requests == 3
