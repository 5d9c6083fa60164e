"""Alerts in the browser: an alert fired from a shell shows on the open Alerts page; an operator acknowledges it
in the dialog with a reason, and the engine (CLI) agrees."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from core import prediction_log as P
from core.db import Database
from tests.e2e import harness as H

pytestmark = pytest.mark.e2e
REASON = "e2e: the predict errors come from a load test"


def test_an_operator_acknowledges_a_firing_alert(server: H.Server, page) -> None:
    H.open_app(page, server.base)
    H.open_page(page, "Alerts")
    main = page.locator('[data-testid="stMain"]')

    # 25 failed predict requests in the last minutes: over the error-rate threshold once the rules are evaluated.
    db = Database(server.world.database_url)
    now = dt.datetime.now(dt.UTC)
    P.insert_errors(db, [{"at": now, "device_id": f"e2e-{i}", "code": "unavailable"} for i in range(25)])
    db.dispose()
    done = _alerts_json(server)
    alert = next(a for a in done["alerts"] if a["kind"] == "prediction_error_rate")
    assert alert["state"] == "firing"

    card = main.locator(f".st-key-al_alert_{alert['id']}")
    expect(card).to_contain_text("prediction_error_rate", timeout=10_000)  # the open page follows the new event
    expect(card).to_contain_text("Firing · red")
    expect(H.sidebar(page)).to_contain_text("alert(s) firing")
    card.get_by_role("button", name="Acknowledge").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Acknowledge this alert?")
    dialog.get_by_label("Reason (required, recorded in History)").fill(REASON)
    dialog.get_by_role("button", name="Acknowledge").click()
    expect(dialog).to_have_count(0)
    expect(main).to_contain_text(f"Acknowledged alert {alert['id']} (prediction_error_rate)")
    expect(card).to_contain_text("Acknowledged · red")
    expect(card).to_contain_text(f"“{REASON}”")
    expect(card.get_by_role("button", name="Acknowledge")).to_be_disabled()

    after = next(a for a in _alerts_json(server)["alerts"] if a["id"] == alert["id"])
    assert after["state"] == "acknowledged" and after["acknowledged"]["by"] == H.LOCAL_ACTOR
    assert after["acknowledged"]["reason"] == REASON


def _alerts_json(server: H.Server) -> dict:
    """`manage_models.py alerts --json` (it evaluates the rules first); exit 1 while something fires."""
    done = subprocess.run(
        [sys.executable, "scripts/manage_models.py", "alerts", "--json"],
        cwd=H.ROOT,
        env={**os.environ, **server.world.env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)
