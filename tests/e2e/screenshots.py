#!/usr/bin/env python3
"""Save a PNG of every dashboard page (and the restore dialog).

Uses the browser suite's own world and server code (tests/e2e/harness.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import shutil
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from core.config import Settings
from core.db import Database, RegistryEvent, TrainingRun
from core.identity import local_principal
from core.registry import Registry
from core.simulator import simulate_fleet
from core.training_run import Trainer, TrainingRequest
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


# The docs' world: every figure comes from a real run on a simulated fleet, nothing is edited.
DOCS_FLEET = dict(devices=150, days=120, seed=11)
DRIFT_DAYS_AGO = 10
# (days before now it was promoted, days_back, actor, trigger): real training runs on different windows.
DOCS_RUNS = [(27, 45, "scheduler", "cron"), (20, 75, "scheduler", "cron"), (13, 120, "alice", "dashboard")]


def _restamp(db: Any, at: dt.datetime, *, event: bool) -> None:
    """Put the newest run (and the event it made) at their story time (they are stamped with the wall clock)."""
    with db.session() as s:
        newest = s.scalar(select(RegistryEvent.id).order_by(RegistryEvent.id.desc()).limit(1))
        if event and newest is not None:
            s.execute(update(RegistryEvent).where(RegistryEvent.id == newest).values(at=at))
        run = s.scalar(select(TrainingRun.id).order_by(TrainingRun.started_at.desc()).limit(1))
        if run is not None:
            s.execute(update(TrainingRun).where(TrainingRun.id == run).values(started_at=at, finished_at=at))


def build_docs_world(root: Path) -> H.World:
    """A 150-device fleet whose firmware changed 10 days ago, three real promoted runs on different windows,
    one run the gate rejects, a restore by an operator, and (where the project has it) a daily fleet scoring."""
    root.mkdir(parents=True, exist_ok=True)
    world = H.World(root, root / "docs.db", root / "models")
    world.models_dir.mkdir()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    midnight = now.replace(hour=0, minute=0, second=0)
    db = Database(world.database_url)
    simulate_fleet(db, **DOCS_FLEET, end=midnight, drift_from=(midnight - dt.timedelta(days=DRIFT_DAYS_AGO)).date())
    settings = Settings.from_env({}, database_url=world.database_url, models_dir=world.models_dir)
    clock = [now]
    registry = Registry(world.models_dir, db, clock=lambda: clock[0])
    try:
        for days_ago, days_back, actor, trigger in DOCS_RUNS:
            clock[0] = now - dt.timedelta(days=days_ago)
            outcome = Trainer(settings, db, registry).run(
                TrainingRequest(days_back, force=True), actor=actor, trigger=trigger
            )
            print(f"docs world: {outcome.status} {outcome.version or ''} (days_back={days_back})", flush=True)
            _restamp(db, clock[0], event=outcome.status == "promoted")
        clock[0] = now - dt.timedelta(days=3)
        strict = dataclasses.replace(settings, thresholds=dataclasses.replace(settings.thresholds, recall=0.95))
        Trainer(strict, db, registry).run(TrainingRequest(30, force=True), actor="scheduler", trigger="cron")
        _restamp(db, clock[0], event=False)
    finally:
        db.dispose()
    with world.ops() as ops:
        older = ops.versions()[1].version
        ops.restore(older, actor=local_principal("bob"), reason="v-newest misses battery failures on locks")
        ops.release_hold(actor=local_principal("bob"), reason="watched it for a shift: fine")
        score = getattr(ops, "score_fleet", None)
        if score is not None:  # the prediction log's daily scoring, back-filled over the fleet's last 60 days
            score(days=60, actor=local_principal("scheduler"))
    return world


def capture(out_dir: Path, width: int) -> list[Path]:
    from playwright.sync_api import sync_playwright

    world = build_docs_world(H.new_temp_root("e2e_screens_"))
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
