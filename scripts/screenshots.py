#!/usr/bin/env python3
"""Start the real server on a temporary database and models directory with a made-up history, and save a PNG of every page."""
from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select, update  # noqa: E402

from core.db import Database, RegistryEvent, TrainingRun  # noqa: E402
from core.registry import Registry  # noqa: E402
from tests.factories import metadata_fields, tiny_models  # noqa: E402

PAGES = {"status": "Status", "compare": "Compare", "trends": "Trends", "backups": "Backups", "retrain": "Retrain", "history": "History"}
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]

# (days ago, what, details): a few weeks of an operator's life with the model.
STORY: list[tuple[float, str, dict[str, Any]]] = [
    (34, "promote", dict(accuracy=0.781, precision=0.62, recall=0.58, f1_score=0.61, roc_auc=0.84, sample_count=1900, actor="scheduler", trigger="cron")),
    (27, "promote", dict(accuracy=0.806, precision=0.66, recall=0.63, f1_score=0.645, roc_auc=0.86, sample_count=2300, actor="scheduler", trigger="cron")),
    (20, "promote", dict(accuracy=0.842, precision=0.71, recall=0.69, f1_score=0.70, roc_auc=0.89, sample_count=2750, actor="scheduler", trigger="cron")),
    (16, "reject", dict(accuracy=0.668, precision=0.47, recall=0.44, f1_score=0.455, roc_auc=0.74, sample_count=610, actor="bob", trigger="dashboard")),
    (13, "promote", dict(accuracy=0.829, precision=0.74, recall=0.61, f1_score=0.668, roc_auc=0.88, sample_count=3100, actor="scheduler", trigger="cron", days_back=90)),
    (11, "restore", dict(target="1.2.0", actor="alice", reason="1.3.0 misses battery failures on gateways (recall 0.61)")),
    (6, "promote", dict(accuracy=0.861, precision=0.76, recall=0.72, f1_score=0.74, roc_auc=0.91, sample_count=3550, actor="alice", trigger="dashboard")),
    (2, "reject", dict(accuracy=0.845, precision=0.72, recall=0.48, f1_score=0.58, roc_auc=0.88, sample_count=3620, actor="scheduler", trigger="cron")),
]


def _run_row(at: dt.datetime, status: str, actor: str, trigger: str, meta: dict[str, Any], version: str | None, gate: dict[str, Any]) -> dict[str, Any]:
    return dict(
        id=uuid.uuid4().hex, status=status, trigger=trigger, actor=actor, version=version, stage="done", progress=1.0,
        params={"days_back": (meta.get("training_data_stats") or {}).get("days_back", 180), "force": True},
        metrics=meta.get("model_performance"), gate=gate, data_stats=meta.get("training_data_stats"), model_metadata=meta,
        log=[{"at": at.isoformat(timespec="seconds"), "stage": "done", "message": f"{status} {version or ''}".strip()}],
        duration_seconds=meta.get("training_duration_seconds"), error=None, started_at=at - dt.timedelta(seconds=40), finished_at=at,
    )


def _gate(m: dict[str, Any], thresholds: dict[str, float]) -> dict[str, Any]:
    checks = [{"name": k, "passed": m[k] > t, "value": m[k], "threshold": t} for k, t in thresholds.items()]
    checks.append({"name": "sample_count", "passed": m["sample_count"] > 100, "value": m["sample_count"], "threshold": 100})
    failed = [c["name"] for c in checks if not c["passed"]]
    return {"valid": not failed, "reason": "all checks passed" if not failed else f"{', '.join(failed)} below threshold", "checks": checks}


def build_fixture(root: Path) -> dict[str, str]:
    """A database and models directory holding the story above; returns the environment for the server."""
    models = root / "models"
    models.mkdir(parents=True)
    url = f"sqlite:///{root / 'screens.db'}"
    db = Database(url)
    clock = [NOW]
    registry = Registry(models, db, clock=lambda: clock[0])
    thresholds = {"accuracy": 0.7, "precision": 0.5, "recall": 0.5, "f1_score": 0.6}
    for seed, (days, what, d) in enumerate(STORY):
        at = NOW - dt.timedelta(days=days)
        clock[0] = at
        if what == "promote":
            fields = metadata_fields(**{k: v for k, v in d.items() if k not in ("actor", "trigger")}, trained_at=at - dt.timedelta(minutes=3))
            fields["training_duration_seconds"] = round(1.2 + seed * 0.35, 2)
            version = registry.promote(*tiny_models(seed), fields, actor=d["actor"], trigger=d["trigger"])
            row = _run_row(at, "promoted", d["actor"], d["trigger"], version.metadata, version.version, _gate(d, thresholds))
        elif what == "reject":
            meta = metadata_fields(**{k: v for k, v in d.items() if k not in ("actor", "trigger")}, trained_at=at)
            row = _run_row(at, "rejected", d["actor"], d["trigger"], meta, None, _gate(d, thresholds))
        else:
            registry.restore(d["target"], actor=d["actor"], reason=d["reason"])
            row = None
        with db.session() as s:
            if row is not None:
                s.execute(insert(TrainingRun), [row])
            newest = s.scalar(select(RegistryEvent.id).order_by(RegistryEvent.id.desc()).limit(1))
            if newest is not None and what != "reject":
                s.execute(update(RegistryEvent).where(RegistryEvent.id == newest).values(at=at))
    db.dispose()
    return {"DATABASE_URL": url, "MODELS_DIR": str(models), "DASHBOARD_BOOTSTRAP": "0", "KEEP_BACKUPS": "3"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str], port: int) -> subprocess.Popen:
    """The real server (dashboard + API via dashboard/app.py when the API exists), waited on until healthy."""
    entry = "dashboard/app.py" if (ROOT / "api" / "app.py").exists() else "dashboard/main.py"
    cmd = [sys.executable, "-m", "streamlit", "run", entry, "--server.port", str(port), "--server.headless", "true"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not become healthy within 60 s")


def wait_idle(page: Any) -> None:
    """Wait until the script finished, nothing is running, every plotly chart has drawn, and fonts are loaded."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=60_000)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stSkeleton\"]') && "
        "[...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')].every(c => c.querySelector('.js-plotly-plot')?._fullData)",
        timeout=60_000,
    )
    page.wait_for_load_state("networkidle")
    page.evaluate("document.fonts.ready")


def capture(base: str, out_dir: Path, width: int) -> list[Path]:
    """One full-length PNG per page (plus the restore dialog), as an operator named 'alice' sees them."""
    from playwright.sync_api import sync_playwright

    saved: list[Path] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(base + "/")
        wait_idle(page)
        name_box = page.get_by_role("textbox", name="Operator name")
        name_box.fill("alice")
        name_box.press("Enter")
        wait_idle(page)
        for name, title in PAGES.items():
            page.set_viewport_size({"width": width, "height": 900})
            open_page(page, title)
            saved.append(shoot_full(page, out_dir / f"{name}.png", width))
        saved += capture_restore_dialog(page, base, out_dir, width)
        browser.close()
    return saved


def shoot_full(page: Any, target: Path, width: int) -> Path:
    """Grow the viewport to the page's length (Streamlit scrolls inside stMain, not the document), then shoot."""
    height = page.evaluate("Math.max(document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight || 0, 900)")
    page.set_viewport_size({"width": width, "height": min(int(height) + 40, 7000)})
    wait_idle(page)
    page.screenshot(path=str(target), full_page=True)
    return target


def open_page(page: Any, title: str) -> None:
    """Follow the sidebar link (a full reload would start a new session and forget the operator's name)."""
    link = page.locator('[data-testid="stSidebarNav"] a', has_text=title).first
    href = link.get_attribute("href") or ""
    link.click()
    page.wait_for_url(href if href.startswith("http") else f"**{href}", timeout=30_000)
    page.wait_for_function(f"() => [...document.querySelectorAll('h1')].some(h => h.textContent.includes({title!r}))", timeout=30_000)
    wait_idle(page)


def capture_restore_dialog(page: Any, base: str, out_dir: Path, width: int) -> list[Path]:
    """Select the newest backup row and open the restore confirmation."""
    page.set_viewport_size({"width": width, "height": 900})
    open_page(page, "Backups")
    grid = page.locator('[data-testid="stDataFrame"]').first
    box = grid.bounding_box()
    if box is None:
        return []
    button = page.get_by_role("button", name="Restore…")
    for _ in range(5):
        page.mouse.click(box["x"] + 18, box["y"] + 35 + 17)  # the first data row's selection cell
        wait_idle(page)
        try:
            button.wait_for(timeout=3_000)
            break
        except Exception:  # the grid was still laying out: click again
            continue
    if button.count() == 0 or button.is_disabled():
        print("restore dialog: could not select a backup row; skipped", file=sys.stderr)
        return []
    button.click()
    page.wait_for_selector('[role="dialog"]', timeout=30_000)
    page.get_by_role("textbox", name="Reason (required, recorded in History)").fill("v1.4.0 misses battery failures on gateways")
    wait_idle(page)
    target = out_dir / "backups_restore_dialog.png"
    page.screenshot(path=str(target))
    return [target]


def capture_live_retrain(out_dir: Path, width: int) -> list[Path]:
    """A simulated fleet and no model: start a run on Retrain, shoot it while it trains and once it has finished."""
    from playwright.sync_api import sync_playwright

    from core.simulator import simulate_fleet

    root = Path(tempfile.mkdtemp(prefix="screens_live_"))
    url = f"sqlite:///{root / 'live.db'}"
    db = Database(url)
    simulate_fleet(db, devices=120, days=120)
    db.dispose()
    env = {"DATABASE_URL": url, "MODELS_DIR": str(root / "models"), "DASHBOARD_BOOTSTRAP": "0"}
    port = free_port()
    server = start_server(env, port)
    saved: list[Path] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": width, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/")
            wait_idle(page)
            name_box = page.get_by_role("textbox", name="Operator name")
            name_box.fill("alice")
            name_box.press("Enter")
            wait_idle(page)
            open_page(page, "Retrain")
            page.get_by_role("spinbutton").first.fill("120")
            page.get_by_role("button", name="Start training").click()
            # The progress fragment reruns every second, so the page is never idle while training: watch its text instead.
            main_text = "() => document.querySelector('[data-testid=\"stMain\"]')?.innerText || ''"
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                text = page.evaluate(main_text)
                if "elapsed" in text and "[fitting]" in text:
                    saved.append(out_dir / "retrain_running.png")
                    page.screenshot(path=str(saved[-1]))
                    break
                if "Result of run" in text:
                    print("retrain_running.png: the run finished before it could be shot; skipped", file=sys.stderr)
                    break
                page.wait_for_timeout(250)  # polling the page, not waiting for it to settle
            page.wait_for_function("() => (document.querySelector('[data-testid=\"stMain\"]')?.innerText || '').includes('Result of run')", timeout=600_000)
            wait_idle(page)
            saved.append(shoot_full(page, out_dir / "retrain_result.png", width))
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    return saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"), help="where to write the PNGs")
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--live-retrain", action="store_true", help="also simulate a fleet and shoot a real training run (a few minutes)")
    args = parser.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = build_fixture(Path(tempfile.mkdtemp(prefix="screens_")))
    port = free_port()
    server = start_server(env, port)
    try:
        for path in capture(f"http://127.0.0.1:{port}", out_dir, args.width):
            print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    if args.live_retrain:
        for path in capture_live_retrain(out_dir, args.width):
            print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
