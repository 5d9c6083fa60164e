"""Retrain: a run started in the browser reports live progress without a reload.

It refuses a second run naming the holder, and its version reaches Status. Alice and Bob are operator accounts
(logins are on for this server), so each page acts under its own name.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from core.db import Database
from core.history import History
from core.locking import registry_lock, training_lock
from dashboard.formatting import fmt_time
from tests.e2e import harness as H

pytestmark = pytest.mark.e2e

PASSWORDS = {"alice": "alice-e2e-password", "bob": "bob-e2e-password"}


def prepare_server(server: H.Server) -> None:
    """Two operator accounts in the world before the server starts (the first one turns logins on)."""
    for name, password in PASSWORDS.items():
        server.world.add_account(name, "operator", password)


# Every change of the progress line ("<stage> · <n>% · elapsed <s> s"), recorded in the page itself;
# a reload would wipe it.
RECORD_PROGRESS = """() => {
  window.__e2eNoReload = true;
  window.__e2eProgress = [];
  const seen = () => {
    const m = (document.querySelector('[data-testid="stMain"]')?.innerText || '')
      .match(/[a-z]+ · \\d+% · elapsed \\d+ s/);
    if (m && window.__e2eProgress.at(-1) !== m[0]) window.__e2eProgress.push(m[0]);
  };
  new MutationObserver(seen).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def runs_started_since(world: H.World, known: set[str]) -> list:
    db = Database(world.database_url)
    try:
        return [r for r in History(db).runs(limit=100) if r.id not in known]
    finally:
        db.dispose()


def test_retrain_progress_refusal_and_new_version(server: H.Server, new_page) -> None:
    with server.world.registry() as registry:
        before = registry.current()
        backups_before = {s.timestamp for s in registry.backups()}
    known_runs = {r.id for r in runs_started_since(server.world, set())}

    # Bob opens Retrain first: his form is on screen when Alice's run starts.
    bob = new_page()
    H.login(bob, server.base, "bob", PASSWORDS["bob"])
    H.open_page(bob, "Retrain")
    expect(bob.get_by_role("button", name="Start training")).to_be_enabled()

    alice = new_page()
    H.login(alice, server.base, "alice", PASSWORDS["alice"])
    H.open_page(alice, "Retrain")
    alice.locator(".st-key-rt_days input").fill(str(H.DAYS_BACK))
    # The template's model is fresh: the caption says so and "force" starts unticked, as it says.
    expect(alice.locator('[data-testid="stMain"]')).to_contain_text("Not due: ")
    force = alice.locator(".st-key-rt_force input")
    expect(force).not_to_be_checked()
    alice.locator(".st-key-rt_force label").click()
    expect(force).to_be_checked()
    alice.evaluate(RECORD_PROGRESS)

    # Holding the registry lock parks the run at its promotion step,
    # so "running" is a state the test controls, not a race.
    with registry_lock(server.world.models_dir).hold("e2e: pausing the promotion", "e2e-test", timeout=10):
        alice.get_by_role("button", name="Start training").click()
        expect(alice.locator('[data-testid="stMain"]')).to_contain_text(
            re.compile(r"promoting · 95% · elapsed \d+ s"), timeout=180_000
        )
        # The box says running while it runs: a spinner and "…", no tick.
        box = alice.locator('[data-testid="stMain"] [data-testid="stExpander"]').filter(has_text="Training run ")
        expect(box.locator("summary")).to_contain_text(re.compile(r"promoting · \d+ s…"))
        expect(box.get_by_test_id("stExpanderIconCheck")).to_have_count(0)

        holder = training_lock(server.world.models_dir).holder()
        assert holder is not None and holder.actor == "alice" and holder.what == f"training (days_back={H.DAYS_BACK})"
        running = runs_started_since(server.world, known_runs)
        assert [(r.status, r.actor, r.params["days_back"]) for r in running] == [("running", "alice", H.DAYS_BACK)]

        # Bob's open page follows by itself (no click, no reload): no second run can start,
        # the page names who holds it and since when, and shows the run's progress, running.
        refusal = bob.locator('[data-testid="stMain"] [data-testid="stAlert"]').filter(
            has_text="Training is already running"
        )
        expect(refusal).to_contain_text(
            f"training (days_back={H.DAYS_BACK}), started by alice at {fmt_time(holder.since)}"
        )
        expect(refusal).to_contain_text("A second run cannot start until it finishes")
        expect(bob.get_by_role("button", name="Start training")).to_have_count(0)
        bob_box = bob.locator('[data-testid="stMain"] [data-testid="stExpander"]').filter(has_text="Training run ")
        expect(bob_box).to_contain_text(re.compile(r"promoting · 95% · elapsed \d+ s"))
        expect(bob_box.locator("summary")).to_contain_text("…")
        expect(bob_box.get_by_test_id("stExpanderIconCheck")).to_have_count(0)
        assert len(runs_started_since(server.world, known_runs)) == 1

    main = alice.locator('[data-testid="stMain"]')
    expect(main.get_by_role("heading", name=re.compile(r"Result of run \w{8} \(promoted\)"))).to_be_visible(
        timeout=180_000
    )
    with server.world.registry() as registry:
        after = registry.current()
        backups_after = registry.backups()
    expect(main).to_contain_text(f"Promoted version {after.version}")
    runs_table = H.dataframe_with_column(alice, "f1_score")
    cells = H.dataframe_cells(runs_table)
    newest = dict(zip(cells["header"], cells["rows"][0], strict=True))
    assert newest["outcome"] == "promoted" and newest["force"] == "yes", newest
    assert re.fullmatch(r"0\.\d{3}", newest["f1_score"]) and re.fullmatch(r"\d+\.\d s", newest["duration"]), newest
    assert "None" not in cells["rows"][0], newest

    progress = alice.evaluate("window.__e2eProgress")
    assert alice.evaluate("window.__e2eNoReload") is True, "the page reloaded while the run was in progress"
    assert len(progress) >= 2 and any(p.startswith("promoting") for p in progress), progress

    assert after.version != before.version
    assert (after.actor, after.trigger, after.metadata["previous_version"]) == ("alice", "dashboard", before.version)
    assert after.data_stats["days_back"] == H.DAYS_BACK
    new_backups = [s for s in backups_after if s.timestamp not in backups_before]
    assert [s.version for s in new_backups] == [after.version]  # the new set's own backup, from the start
    finished = runs_started_since(server.world, known_runs)
    assert [(r.status, r.version, r.actor) for r in finished] == [("promoted", after.version, "alice")]
    assert training_lock(server.world.models_dir).holder() is None

    H.open_page(alice, "Status")
    expect(main.get_by_role("heading", name=f"Version {after.version}")).to_be_visible()
    expect(alice.locator('[data-testid="stSidebar"]')).to_contain_text(f"v{after.version}")


def _train_in_browser(page, days_back: int) -> str:
    """Start a forced run with this window on Retrain and wait for its result; returns the result heading."""
    H.open_page(page, "Retrain")
    page.locator(".st-key-rt_days input").fill(str(days_back))
    force = page.locator(".st-key-rt_force input")
    if not force.is_checked():
        page.locator(".st-key-rt_force label").click()
    expect(force).to_be_checked()
    main = page.locator('[data-testid="stMain"]')
    heading = main.get_by_role("heading", name=re.compile(r"Result of run \w{8}"))
    shown = heading.inner_text() if heading.count() else None  # the previous run's result, until this one ends
    page.get_by_role("button", name="Start training").click()
    if shown is not None:
        expect(heading).not_to_have_text(shown, timeout=180_000)
    expect(heading).to_be_visible(timeout=180_000)
    return heading.inner_text()


def test_a_retrain_identical_to_the_live_set_is_unchanged_not_a_new_version(server: H.Server, new_page) -> None:
    page = new_page()
    H.login(page, server.base, "alice", PASSWORDS["alice"])
    # The world's telemetry spans fewer days than this window: both runs read exactly the same rows.
    first = _train_in_browser(page, H.DAYS_BACK + 30)
    with server.world.registry() as registry:
        live = registry.current()
        backups = [s.timestamp for s in registry.backups()]
        events = _registry_events(registry)

    second = _train_in_browser(page, H.DAYS_BACK + 30)
    main = page.locator('[data-testid="stMain"]')
    assert "(promoted)" in first or "(unchanged)" in first, first
    assert second.endswith("(unchanged)"), second
    expect(main).to_contain_text("Unchanged: the new model is byte-identical to the live one")
    runs_table = H.dataframe_with_column(page, "f1_score")
    newest = dict(zip(*(lambda c: (c["header"], c["rows"][0]))(H.dataframe_cells(runs_table)), strict=True))
    assert (newest["outcome"], newest["version"]) == ("unchanged", ""), newest

    with server.world.registry() as registry:
        assert registry.current().version == live.version
        assert [s.timestamp for s in registry.backups()] == backups
        assert _registry_events(registry) == events


def _registry_events(registry) -> int:
    """History's registry changes (the alert engine's transitions, evaluated after each run, left out)."""
    return len([e for e in registry.history.events(limit=1000) if not e.kind.startswith("alert_")])
