"""The API and the pages agree.

A version trained through POST /api/predictions/train shows on Status without a server restart.
"""

from __future__ import annotations

import time

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e import harness as H

pytestmark = pytest.mark.e2e


def poll_job(client: httpx.Client, job_id: str, timeout: float = 300.0) -> dict:
    """GET train/{job_id} until the job has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/predictions/train/{job_id}").raise_for_status().json()
        if body["finished"]:
            return body
        time.sleep(0.25)  # the polling interval of an API client, not a wait for the page
    raise AssertionError(f"training job {job_id} did not finish within {timeout:.0f} s: {body}")


def test_api_training_shows_on_status(server: H.Server, page) -> None:
    with server.world.registry() as registry:
        before = registry.current()
    pid = server.proc.pid

    H.open_app(page, server.base)
    main = page.locator('[data-testid="stMain"]')
    expect(main.get_by_role("heading", name=f"Version {before.version}")).to_be_visible()

    with httpx.Client(base_url=server.base, timeout=30) as client:
        started = client.post("/api/predictions/train", json={"force_retrain": True, "days_back": H.DAYS_BACK})
        assert started.status_code == 202, started.text
        job = poll_job(client, started.json()["job_id"])
        assert (job["outcome"], job["error"]) == ("promoted", None), job
        status = client.get("/api/predictions/models/status").raise_for_status().json()

    with server.world.registry() as registry:
        after = registry.current()
    assert after.version == job["version"] != before.version
    assert (after.trigger, after.actor, after.metadata["previous_version"]) == (
        "api",
        "anonymous-localhost",
        before.version,
    )
    assert status["model_metadata"]["version"] == after.version

    page.reload()
    H.wait_idle(page)
    expect(main.get_by_role("heading", name=f"Version {after.version}")).to_be_visible()
    expect(main).to_contain_text("trigger api · by anonymous-localhost")
    expect(page.locator('[data-testid="stSidebar"]')).to_contain_text(f"v{after.version}")
    assert server.proc.pid == pid and server.proc.poll() is None, "the server must not have been restarted"
