"""Restore: pick an older backup on Backups, confirm in the dialog with a reason.

Status, History and the registry follow. The server is in local mode: the actor is the OS user (`local:<user>`).
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from core.locking import training_lock
from tests.e2e import harness as H

pytestmark = pytest.mark.e2e

REASON = "e2e: the live model misses battery failures on gateways"


def test_restore_older_backup_with_reason(server: H.Server, page) -> None:
    with server.world.registry() as registry:
        before = registry.current()
        sets_before = registry.backups()
    target = sets_before[1]  # an older set, not the newest one
    assert target.version != before.version

    H.open_app(page, server.base)
    H.open_page(page, "Backups")
    H.select_backup(page, target.timestamp)
    page.locator(".st-key-bk_restore button").click()

    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Restore this backup?")
    expect(dialog).to_contain_text(
        f"Live version v{before.version} → v{target.version} (from backup {target.timestamp})"
    )
    expect(dialog).to_contain_text(f"v{target.version} will be held")
    expect(dialog).not_to_contain_text("A training run is in flight")
    expect(dialog.locator(".st-key-bk_restore_during")).to_have_count(0)
    dialog.get_by_label("Reason (required, recorded in History)").fill(REASON)
    dialog.get_by_role("button", name=f"Restore v{target.version}").click()
    expect(dialog).to_have_count(0)
    main = page.locator('[data-testid="stMain"]')
    expect(main).to_contain_text(
        f"Restored version {target.version} from backup {target.timestamp} (was {before.version}; "
        "its set is backed up as "
    )
    expect(main).to_contain_text(f"Version {target.version} is held")

    H.open_page(page, "Status")
    expect(main.get_by_role("heading", name=f"Version {target.version}")).to_be_visible()
    expect(page.locator('[data-testid="stSidebar"]')).to_contain_text(f"v{target.version}")

    H.open_page(page, "History")
    history = H.dataframe_with_column(page, "reason")
    expect(history.locator("tbody tr").first).to_contain_text(REASON)
    cells = H.dataframe_cells(history)
    newest = dict(zip(cells["header"], cells["rows"][0], strict=True))  # newest first
    assert (newest["what"], newest["who"], newest["from"], newest["to"], newest["reason"]) == (
        "restore",
        H.LOCAL_ACTOR,
        before.version,
        target.version,
        REASON,
    )

    with server.world.registry() as registry:
        after = registry.current()
        sets_after = registry.backups()
        event = registry.history.events(kinds=["restore"], limit=1)[0]
    assert after.version == target.version
    assert (event.actor, event.reason, event.from_version, event.to_version) == (
        H.LOCAL_ACTOR,
        REASON,
        before.version,
        target.version,
    )
    assert event.details["restored_from"] == target.timestamp
    # The set that was live already had its backup (made when it was promoted): that is the way back, and no
    # duplicate was made; every backup is still there.
    [held] = [s for s in sets_before if s.version == before.version]
    assert event.details["undo_backup"] == held.timestamp
    assert [s.timestamp for s in sets_after] == [s.timestamp for s in sets_before]


def test_a_restore_while_a_run_is_in_flight_needs_the_dialogs_confirmation(server: H.Server, page) -> None:
    """The training lock held as a run holds it: the dialog names the run and restores only once ticked."""
    with server.world.registry() as registry:
        before = registry.current()
        target = next(s for s in registry.backups() if s.restorable and s.version != before.version)
    H.open_app(page, server.base)
    H.open_page(page, "Backups")
    H.select_backup(page, target.timestamp)
    with training_lock(server.world.models_dir).hold("training (days_back=60)", "bob", timeout=10):
        page.locator(".st-key-bk_restore button").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("A training run is in flight (training (days_back=60) by bob")
        expect(dialog).to_contain_text("kept as a candidate for an admin to approve or discard")
        dialog.get_by_label("Reason (required, recorded in History)").fill(REASON)
        dialog.get_by_role("button", name=f"Restore v{target.version}").click()
        refusal = dialog.locator('[data-testid="stAlert"]').filter(has_text="Confirm to restore anyway")
        expect(refusal).to_contain_text("a training run started by bob")  # refused in the dialog, which stays open
        with server.world.registry() as registry:
            assert registry.current().version == before.version
        dialog.locator(".st-key-bk_restore_during input").check(force=True)
        dialog.get_by_role("button", name=f"Restore v{target.version}").click()
        expect(dialog).to_have_count(0)
        with server.world.registry() as registry:
            assert registry.current().version == target.version
            hold = registry.active_hold()
            assert hold is not None and hold.version == target.version
    expect(page.locator('[data-testid="stSidebar"]')).to_contain_text(f"Held v{target.version}")


def _ticked(page) -> list[str]:
    """The timestamps of the Backups rows the grid shows as selected."""
    return page.locator(".st-key-bk_table").evaluate(
        'el => [...el.querySelectorAll(\'table[role="grid"] tbody tr[aria-selected="true"]\')]'
        ".map(r => [...r.querySelectorAll('td')].map(c => c.innerText.trim()).find(t => /^\\d{8}_\\d{6}$/.test(t)))"
    )


def _expect_ticked(page, expected: list[str], timeout_s: float = 10.0) -> None:
    """Wait until the grid shows exactly `expected` as ticked (a rerun replaces the table a moment after the
    message above it), then check it; a tick that stays fails after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while _ticked(page) != expected and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    H.wait_idle(page)
    assert _ticked(page) == expected


def test_the_selection_follows_its_set_when_rows_change_and_a_restore_can_be_undone(server: H.Server, page) -> None:
    with server.world.registry() as registry:
        live = registry.current()
        target = next(s for s in registry.backups() if s.version != live.version)

    H.open_app(page, server.base)
    H.open_page(page, "Backups")
    H.select_backup(page, target.timestamp)
    _expect_ticked(page, [target.timestamp])

    # A backup made from a shell puts a new row on top: the page follows, and the tick stays on the set.
    H.manage_models(server.world, "backup", "--reason", "e2e: a new row above the selected one")
    with server.world.registry() as registry:
        newest = registry.backups()[0]
    table = page.locator(".st-key-bk_table")
    expect(table.locator("td", has_text=newest.timestamp)).to_have_count(1, timeout=10_000)
    H.wait_idle(page)
    main = page.locator('[data-testid="stMain"]')
    expect(main).to_contain_text(f"Selected: {target.timestamp} · v{target.version}")
    _expect_ticked(page, [target.timestamp])

    page.locator(".st-key-bk_restore button").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Live version v{live.version} → v{target.version} (from backup {target.timestamp})")
    dialog.get_by_label("Reason (required, recorded in History)").fill("e2e: try the older set")
    dialog.get_by_role("button", name=f"Restore v{target.version}").click()
    expect(dialog).to_have_count(0)
    expect(main).to_contain_text(f"Restored version {target.version} from backup {target.timestamp}")
    _expect_ticked(page, [])  # the rows changed: nothing is selected that nobody picked
    expect(page.locator(".st-key-bk_restore")).to_have_count(0)

    page.get_by_role("button", name=f"Undo: put v{live.version} back").click()
    expect(main).to_contain_text(f"Undone: version {live.version} is live again")
    expect(page.get_by_role("button", name=re.compile("^Undo"))).to_have_count(0)
    with server.world.registry() as registry:
        assert registry.current().version == live.version
        undo = registry.history.events(kinds=["restore"], limit=1)[0]
    assert (undo.actor, undo.from_version, undo.to_version) == (H.LOCAL_ACTOR, target.version, live.version)
    assert undo.reason == f"undo: put v{live.version} back after restoring v{target.version}"
