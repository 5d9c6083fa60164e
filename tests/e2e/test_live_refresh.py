"""Open pages follow changes made elsewhere (here: the CLI) within a few seconds, without a reload.

An open dialog is left alone while it is open, and its page catches up when it closes.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from tests.e2e import harness as H

pytestmark = pytest.mark.e2e

WITHIN_MS = 5_000  # the bound: a change shows on an open page within 5 s


def _mark_document(page) -> None:
    """A flag on the window: a reload (or a navigation) would drop it."""
    page.evaluate("window.__noReload = 'still here'")


def _not_reloaded(page) -> None:
    assert page.evaluate("window.__noReload") == "still here", "the page was reloaded"


def test_a_cli_restore_shows_on_an_open_status_page(server: H.Server, page) -> None:
    with server.world.registry() as registry:
        before = registry.current()
        target = next(s for s in registry.backups() if s.version != before.version)

    H.open_app(page, server.base)
    H.open_page(page, "Status")
    main = page.locator('[data-testid="stMain"]')
    expect(main.get_by_role("heading", name=f"Version {before.version}")).to_be_visible()
    _mark_document(page)

    H.manage_models(
        server.world, "restore", target.timestamp, "--reason", "e2e: restored from a shell while Status is open"
    )
    changed = time.monotonic()
    expect(main.get_by_role("heading", name=f"Version {target.version}")).to_be_visible(timeout=WITHIN_MS)
    expect(H.sidebar(page)).to_contain_text(f"v{target.version}", timeout=WITHIN_MS)
    print(f"status followed the CLI restore in {time.monotonic() - changed:.1f} s")
    _not_reloaded(page)


def test_an_open_dialog_is_not_closed_by_a_change_and_its_page_catches_up(server: H.Server, page) -> None:
    H.open_app(page, server.base)
    H.open_page(page, "Backups")
    with server.world.registry() as registry:
        sets = registry.backups()
    table = page.locator(".st-key-bk_table")
    expect(table.locator("tbody tr")).to_have_count(len(sets))
    H.select_backup(page, sets[1].timestamp)
    _mark_document(page)
    page.locator(".st-key-bk_restore button").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Restore this backup?")

    H.manage_models(server.world, "backup", "--reason", "e2e: a backup made from a shell while a dialog is open")
    page.wait_for_timeout(WITHIN_MS)  # the watcher ticks every 2 s: a rerun would have closed the dialog by now
    expect(dialog).to_contain_text("Restore this backup?")

    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(table.locator("tbody tr")).to_have_count(len(sets) + 1, timeout=WITHIN_MS)
    _not_reloaded(page)
