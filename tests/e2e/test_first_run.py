"""First run in the browser: while the server makes its first model the page says so (running, not done, not an
alarm), and it shows the model when it is ready, without a reload."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from core.locking import registry_lock
from tests.e2e import harness as H

pytestmark = pytest.mark.e2e


def test_the_first_run_shows_as_running_and_then_the_model_appears(tmp_path, new_page) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    world = H.World(root, root / "fresh.db", root / "models")
    world.models_dir.mkdir()
    # Holding the registry lock parks the first run at its promotion: "setting up" is a state the test controls.
    with registry_lock(world.models_dir).hold("e2e: pausing the first promotion", "e2e-test", timeout=10):
        server = H.Server(world, extra_env={"DASHBOARD_BOOTSTRAP": "1"}).start()
        try:
            page = new_page()
            H.open_app(page, server.base)
            main = page.locator('[data-testid="stMain"]')
            box = main.locator('[data-testid="stExpander"]').filter(has_text="First run: setting up")
            expect(box.locator("summary")).to_contain_text("…", timeout=120_000)
            expect(box.get_by_test_id("stExpanderIconCheck")).to_have_count(0)
            expect(H.sidebar(page)).to_contain_text("Setting up: first run")
            expect(main).to_contain_text("The first model is being made")
            expect(page.get_by_text("Action needed")).to_have_count(0)
            expect(main).not_to_contain_text("No model has been trained yet")
            page.evaluate("window.__noReload = 'still here'")
        except Exception:
            server.stop()
            raise
    try:
        expect(main.get_by_role("heading", name="Version 1.0.0")).to_be_visible(timeout=180_000)
        expect(H.sidebar(page)).to_contain_text("v1.0.0")
        expect(H.sidebar(page)).not_to_contain_text("Setting up")
        assert page.evaluate("window.__noReload") == "still here", "the page was reloaded"
    finally:
        server.stop()
