#!/usr/bin/env python3
"""Save a PNG of every dashboard page (and the restore dialog).

Uses the browser suite's own world and server code (tests/e2e/harness.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from core.config import Settings
from core.db import Database, RegistryEvent
from core.errors import NotFound
from core.identity import local_principal
from core.registry import Registry
from core.simulator import simulate_fleet
from core.training import load_training_data, train_candidate
from core.training_run import Trainer, TrainingRequest
from core.validation import validate_candidate
from tests.e2e import harness as H
from tests.webhook_receiver import Receiver, closed_port

ROOT = Path(__file__).resolve().parents[2]

WIDTH, HEIGHT = 1440, 900
RECEIVER = Receiver()


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
        live = registry.current().version
        older = next(s for s in registry.backups() if s.version != live)
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
DRIFT_DAYS_AGO = 20  # the firmware update: realised F1 falls after it, Drift flags what it shifts
# (days before today it was trained and promoted, days_back, actor, trigger): each version is trained on the data
# up to its own day, so the fleet scored after it is data it never saw (honest realised figures).
DOCS_RUNS = [(60, 45, "scheduler", "cron"), (45, 60, "scheduler", "cron"), (30, 75, "alice", "dashboard")]


def _restamp(db: Any, at: dt.datetime) -> None:
    """Put the newest event at its story time (events are stamped with the wall clock)."""
    with db.session() as s:
        newest = s.scalar(select(RegistryEvent.id).order_by(RegistryEvent.id.desc()).limit(1))
        if newest is not None:
            s.execute(update(RegistryEvent).where(RegistryEvent.id == newest).values(at=at))


def _train_until(registry: Registry, db: Any, end: dt.datetime, days_back: int, actor: str, trigger: str) -> str:
    """What a training run does (load, train, gate against the live model, promote) on the data up to `end`."""
    features, source = load_training_data(db, days_back=days_back, end=end)
    candidate = train_candidate(features, days_back=days_back, data_source=source)
    try:
        live = registry.load_models()
        current, columns = live.failure_model, list(live.metadata["feature_columns"])
    except NotFound:
        current, columns = None, None
    gate = validate_candidate(candidate, Settings().thresholds, current, columns)
    if not gate.valid:
        raise RuntimeError(f"the docs world's run (days_back={days_back}, up to {end:%Y-%m-%d}) failed: {gate.reason}")
    fields = {**candidate.metadata_fields(), "validation": gate.to_dict(), "training_date": end.isoformat()}
    return registry.promote(
        candidate.failure_model, candidate.anomaly_model, fields, actor=actor, trigger=trigger
    ).version


def build_docs_world(root: Path) -> H.World:
    """A 150-device fleet whose firmware changed 20 days ago; three versions, each trained on the data up to its
    day and then scoring the fleet daily until the next one went live; a run the gate rejects; a restore."""
    root.mkdir(parents=True, exist_ok=True)
    world = H.World(root, root / "docs.db", root / "models")
    world.models_dir.mkdir()
    midnight = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    db = Database(world.database_url)
    simulate_fleet(db, **DOCS_FLEET, end=midnight, drift_from=(midnight - dt.timedelta(days=DRIFT_DAYS_AGO)).date())
    clock = [midnight]
    registry = Registry(world.models_dir, db, clock=lambda: clock[0])
    scheduler = local_principal("scheduler")
    try:
        for n, (days_ago, days_back, actor, trigger) in enumerate(DOCS_RUNS):
            clock[0] = midnight - dt.timedelta(days=days_ago) + dt.timedelta(hours=2)
            version = _train_until(registry, db, clock[0], days_back, actor, trigger)
            _restamp(db, clock[0])
            until = DOCS_RUNS[n + 1][0] if n + 1 < len(DOCS_RUNS) else 0
            with world.ops() as ops:  # the daily scoring while this version was live
                ops.score_fleet(
                    actor=scheduler,
                    start=(clock[0] + dt.timedelta(days=1)).date(),
                    end=(midnight - dt.timedelta(days=until)).date(),
                    as_of=midnight,
                )
            print(f"docs world: v{version} trained up to {clock[0]:%Y-%m-%d}, scored until {until} days ago")
    finally:
        db.dispose()
    with world.ops() as ops:
        strict = dataclasses.replace(ops.settings, thresholds=dataclasses.replace(ops.settings.thresholds, recall=0.95))
        db = Database(world.database_url)
        try:
            Trainer(strict, db).run(TrainingRequest(30, force=True), actor="scheduler", trigger="cron")
        finally:
            db.dispose()
        older = ops.versions()[1].version
        ops.restore(older, actor=local_principal("bob"), reason="realised F1 fell after the firmware update")
        ops.release_hold(actor=local_principal("bob"), reason="watching it on Status")
    return world


def retrain_run(page: Any, world: H.World, out_dir: Path, width: int) -> list[Path]:
    """A real training run started on Retrain: shot while it runs (its progress box), then its result with each
    gate check. The run is whatever the data makes it: on this fleet, after the firmware update, the gate may
    reject it."""
    page.keyboard.press("Escape")
    H.open_page(page, "Retrain")
    page.locator(".st-key-rt_days input").fill("120")
    page.locator(".st-key-rt_force label").click()
    main = page.locator('[data-testid="stMain"]')
    page.get_by_role("button", name="Start training").click()
    page.wait_for_function(
        "() => /\\d+% · elapsed/.test(document.querySelector('[data-testid=\"stMain\"]').innerText)", timeout=60_000
    )
    page.screenshot(path=str(out_dir / "retrain_running.png"))
    main.get_by_role("heading", name=re.compile(r"Result of run \w{8}")).wait_for(timeout=180_000)
    return [out_dir / "retrain_running.png", shoot_full(page, out_dir / "retrain_result.png", width)]


def capture(out_dir: Path, width: int) -> list[Path]:
    from playwright.sync_api import sync_playwright

    world = build_docs_world(H.new_temp_root("e2e_screens_"))
    saved: list[Path] = []
    # Webhooks to a real receiver on loopback and to a port nothing listens on: the Notifications page shows
    # deliveries of the alerts the server's evaluator fires at start, and a target being retried.
    webhooks = f"team-chat={RECEIVER.url('/hooks/ops')},pager=http://127.0.0.1:{closed_port()}/page"
    env = {"WEBHOOK_URLS": webhooks, "WEBHOOK_SECRET": "docs-secret"}
    try:
        with RECEIVER, H.Server(world, extra_env=env) as server, sync_playwright() as p:
            browser = H.launch_browser(p)
            page = browser.new_page(viewport={"width": width, "height": HEIGHT})
            H.open_app(page, server.base)
            for name, title in H.PAGES.items():
                H.open_page(page, title)
                saved.append(shoot_full(page, out_dir / f"{name}.png", width))
            saved.append(restore_dialog(page, world, out_dir / "backups_restore_dialog.png"))
            saved.extend(retrain_run(page, world, out_dir, width))
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
