#!/usr/bin/env python3
"""Save a PNG of every dashboard page (and the restore dialog).

Uses the browser suite's own world and server code (tests/e2e/harness.py).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from tests.e2e import harness as H

ROOT = Path(__file__).resolve().parents[2]

WIDTH, HEIGHT = 1440, 900


def shoot_full(page: Any, target: Path, width: int) -> Path:
    """Grow the viewport to the page's length (Streamlit scrolls inside stMain, not the document), then shoot."""
    height = page.evaluate("Math.max(document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight || 0, 900)")
    page.set_viewport_size({"width": width, "height": min(int(height) + 40, 7000)})
    H.wait_idle(page)
    page.screenshot(path=str(target), full_page=True)
    page.set_viewport_size({"width": width, "height": HEIGHT})
    return target


def restore_dialog(page: Any, world: H.World, target: Path) -> Path:
    """The confirmation an operator sees before restoring the second-newest backup set."""
    with world.registry() as registry:
        older = registry.backups()[1]
    H.open_page(page, "Backups")
    H.select_backup(page, older.timestamp)
    page.locator(".st-key-bk_restore button").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Reason (required, recorded in History)").fill(f"v{older.version} was better on gateways")
    H.wait_idle(page)
    page.screenshot(path=str(target))
    return target


def capture(out_dir: Path, width: int) -> list[Path]:
    from playwright.sync_api import sync_playwright

    world = H.build_world(H.new_temp_root("e2e_screens_"))
    saved: list[Path] = []
    try:
        with H.Server(world) as server, sync_playwright() as p:
            browser = H.launch_browser(p)
            page = browser.new_page(viewport={"width": width, "height": HEIGHT})
            H.open_app(page, server.base)
            for name, title in H.PAGES.items():
                H.open_page(page, title)
                saved.append(shoot_full(page, out_dir / f"{name}.png", width))
            saved.append(restore_dialog(page, world, out_dir / "backups_restore_dialog.png"))
            browser.close()
    finally:
        shutil.rmtree(world.root, ignore_errors=True)
    return saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--out",
        default=str(ROOT / "docs" / "screenshots"),
        help="where to write the PNGs (default: the README's docs/screenshots)",
    )
    parser.add_argument("--width", type=int, default=WIDTH)
    args = parser.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in capture(out_dir, args.width):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
