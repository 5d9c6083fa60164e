"""The browser suite's world: a seeded database and registry, the real server on it, and Streamlit-aware waits.

Shared with tests/e2e/screenshots.py.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from core.config import Settings
from core.db import Database, RegistryEvent
from core.identity import local_principal
from core.modelops import ModelOps
from core.registry import Registry
from dashboard.identity import local_name
from tests.server import free_port
from tests.server import stop as stop_process

ROOT = Path(__file__).resolve().parents[2]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
PAGES = {
    "status": "Status",
    "compare": "Compare",
    "trends": "Trends",
    "backups": "Backups",
    "retrain": "Retrain",
    "candidates": "Candidates",
    "history": "History",
    "access": "Users and keys",  # admins only: local mode's user is one
    "drift": "Drift",
    "alerts": "Alerts",
    "schedule": "Schedule",
    "notifications": "Notifications",
}
# A page's h1 where it differs from its sidebar title.
HEADINGS = {"Compare": "Compare versions", "Users and keys": "Users and API keys"}
# Who the dashboard acts as in local mode (no accounts, keys, OIDC or API_KEY): the server's OS user, every permission.
# The server inherits this process's environment, so getpass answers the same there.
LOCAL_ACTOR = local_name()
TIMEOUT_MS = 60_000
# Settings a developer's shell may export (thresholds, API key, ...): the suite's server runs on the defaults instead.
APP_SETTINGS_ENV = (
    "GATE_ACCURACY",
    "GATE_PRECISION",
    "GATE_RECALL",
    "GATE_F1",
    "GATE_MIN_SAMPLES",
    "GATE_REGRESSION_TOLERANCE",
    "KEEP_BACKUPS",
    "RETRAIN_INTERVAL_HOURS",
    "CLASSIFIER",
    "HORIZON_DAYS",
    "API_KEY",
    "API_KEY_NAME",
    "PREDICT_REQUIRES_KEY",
    "PROMOTION",
    "SESSION_HOURS",
    "SESSION_SECRET",
    "AUTO_CLEANUP",
    "ALLOWED_HOSTS",
    "WEBHOOK_URLS",
    "WEBHOOK_SECRET",
    "WEBHOOK_EVENTS",
    "WEBHOOK_TIMEOUT_SECONDS",
    "WEBHOOK_MAX_ATTEMPTS",
)

# The simulated fleet: 80 devices over 45 days ending at today's midnight (UTC), trained on 60 days back so the window
# holds all of it whatever the time of day: the same rows and the same model every run, and it passes the default gate.
FLEET = dict(devices=80, days=45, seed=42)
DAYS_BACK = 60

# (days before now, actor, trigger, metrics); None means the metrics the real training measured.
# The last one is current.
STORY: list[tuple[float, str, str, dict[str, float] | None]] = [
    (20, "scheduler", "cron", dict(accuracy=0.842, precision=0.71, recall=0.69, f1_score=0.70, roc_auc=0.89)),
    (13, "scheduler", "cron", dict(accuracy=0.861, precision=0.74, recall=0.72, f1_score=0.73, roc_auc=0.90)),
    (6, "alice", "dashboard", dict(accuracy=0.883, precision=0.76, recall=0.78, f1_score=0.77, roc_auc=0.92)),
    (1, "scheduler", "cron", None),
]


@dataclass(frozen=True)
class World:
    """A database file and a models directory the server and the tests share."""

    root: Path
    db_path: Path
    models_dir: Path

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.db_path}"

    def env(self) -> dict[str, str]:
        """The server's environment.

        This world, no first-run set-up, and a promote that waits for a held registry lock.
        """
        return {
            "DATABASE_URL": self.database_url,
            "MODELS_DIR": str(self.models_dir),
            "DASHBOARD_BOOTSTRAP": "0",
            "LOCK_TIMEOUT_SECONDS": "120",
        }

    @contextmanager
    def registry(self) -> Iterator[Registry]:
        """A registry on the same directory and database as the server."""
        db = Database(self.database_url)
        try:
            yield Registry(self.models_dir, db)
        finally:
            db.dispose()

    @contextmanager
    def ops(self) -> Iterator[ModelOps]:
        """The application layer on the same directory and database as the server (accounts, holds, ...)."""
        ops = ModelOps(Settings.from_env({}, database_url=self.database_url, models_dir=self.models_dir))
        try:
            yield ops
        finally:
            ops.dispose()

    def add_account(self, name: str, role: str, password: str) -> None:
        """A built-in account, made as `manage_users.py add` makes the first ones (in local mode, by "setup").

        The first account turns logins on for good: the server then shows the login screen.
        """
        with self.ops() as ops:
            ops.add_account(name, role, password, actor=local_principal("setup"))


def _edited(metadata: dict[str, Any], metrics: dict[str, float] | None, trained_at: dt.datetime) -> dict[str, Any]:
    """The real candidate's metadata with other metrics and dates (and without the fields promote sets itself)."""
    fields = {
        k: v
        for k, v in metadata.items()
        if k not in ("version", "previous_version", "trigger", "actor", "promoted_at", "artifacts")
    }
    performance = dict(fields["model_performance"])
    performance.update(metrics or {})
    performance["evaluated_at"] = trained_at.isoformat()
    fields["model_performance"] = performance
    fields["training_date"] = trained_at.isoformat()
    return fields


def promote_copy(
    registry: Registry,
    *,
    metrics: dict[str, float] | None = None,
    actor: str = "e2e",
    trigger: str = "e2e",
    trained_at: dt.datetime | None = None,
) -> str:
    """Promote the current model again with edited metrics; returns the new version.

    The feature columns are the same as a real run's.
    """
    loaded = registry.load_models()
    fields = _edited(loaded.metadata, metrics, trained_at or registry.clock())
    return registry.promote(loaded.failure_model, loaded.anomaly_model, fields, actor=actor, trigger=trigger).version


def build_world(root: Path) -> World:
    """Simulate the fleet, train one real model on a scratch copy, then promote it as the versions of STORY."""
    from core.simulator import simulate_fleet
    from core.training_run import Trainer, TrainingRequest

    root.mkdir(parents=True, exist_ok=True)
    world = World(root, root / "e2e.db", root / "models")
    world.models_dir.mkdir()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    midnight = now.replace(hour=0, minute=0, second=0)
    db = Database(world.database_url)
    simulate_fleet(db, **FLEET, end=midnight)
    db.dispose()

    # Train on a copy so the shared database keeps no run or event of this scratch registry.
    scratch = World(root / "scratch", root / "scratch" / "train.db", root / "scratch" / "models")
    scratch.models_dir.mkdir(parents=True)
    _copy_sqlite(world.db_path, scratch.db_path)
    scratch_db = Database(scratch.database_url)
    try:
        settings = Settings.from_env({}, database_url=scratch.database_url, models_dir=scratch.models_dir)
        outcome = Trainer(settings, scratch_db).run(TrainingRequest(DAYS_BACK, force=True), actor="e2e", trigger="e2e")
        if outcome.status != "promoted":
            raise RuntimeError(f"the e2e fleet's model was not promoted: {outcome.message}")
        trained = Registry(scratch.models_dir, scratch_db).load_models()
    finally:
        scratch_db.dispose()
    shutil.rmtree(scratch.root)

    clock = [now]
    db = Database(world.database_url)
    try:
        registry = Registry(world.models_dir, db, clock=lambda: clock[0])
        for days, actor, trigger, metrics in STORY:
            clock[0] = now - dt.timedelta(days=days)
            fields = _edited(trained.metadata, metrics, clock[0] - dt.timedelta(minutes=3))
            registry.promote(trained.failure_model, trained.anomaly_model, fields, actor=actor, trigger=trigger)
            with db.session() as s:  # events are stamped with the wall clock; put each at its story time
                newest = s.scalar(select(RegistryEvent.id).order_by(RegistryEvent.id.desc()).limit(1))
                s.execute(update(RegistryEvent).where(RegistryEvent.id == newest).values(at=clock[0]))
    finally:
        db.dispose()
    return world


def _copy_sqlite(src: Path, dst: Path) -> None:
    """A consistent copy of a SQLite database in WAL mode (the backup API includes the WAL's pages)."""
    source, target = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


def clone_world(template: World, root: Path) -> World:
    """A private copy of a world (database and models directory), for a server whose flows change state."""
    root.mkdir(parents=True, exist_ok=True)
    world = World(root, root / template.db_path.name, root / "models")
    _copy_sqlite(template.db_path, world.db_path)
    shutil.copytree(template.models_dir, world.models_dir)
    for leftover in world.models_dir.glob(".*.lock*"):  # lock files and notes are per directory, never copied state
        leftover.unlink()
    return world


# ------------------------------------------------------------------ server


def toml_value(value: Any) -> str:
    """A TOML value for a string, a number, a boolean or a list of them (enough for secrets.toml)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a TOML basic string


def toml_text(sections: dict[str, dict[str, Any]]) -> str:
    return "".join(
        f"[{name}]\n" + "".join(f"{key} = {toml_value(value)}\n" for key, value in items.items()) + "\n"
        for name, items in sections.items()
    )


class Server:
    """`streamlit run dashboard/server.py` (dashboard and API) on a free port, its output in a log file.

    Its Streamlit secrets are a file in its world (`secrets`, written at launch; none by default), never the
    developer's ~/.streamlit/secrets.toml or the repository's .streamlit/. Companions (an OIDC provider, ...)
    are processes with launch/wait_ready/stop that start, wait and stop with it.
    """

    def __init__(
        self,
        world: World,
        *,
        extra_env: dict[str, str] | None = None,
        secrets: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.world = world
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = world.root / f"server-{self.port}.log"
        self.secrets_path = world.root / f"secrets-{self.port}.toml"
        self.extra_env = extra_env or {}
        self.secrets = secrets
        self.companions: list[Any] = []
        self.proc: subprocess.Popen | None = None

    def launch(self) -> Server:
        """Start the process (and its companions) without waiting (several servers can boot while tests run)."""
        for companion in self.companions:
            companion.launch()
        if self.secrets is not None:
            self.secrets_path.write_text(toml_text(self.secrets), encoding="utf-8")
        cmd = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "dashboard/server.py",
            "--server.port",
            str(self.port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--server.fileWatcherType",
            "none",
            "--browser.gatherUsageStats",
            "false",
            "--secrets.files",
            str(self.secrets_path),  # absent unless `secrets` were given: then st.secrets is empty
        ]
        inherited = {k: v for k, v in os.environ.items() if k not in APP_SETTINGS_ENV}
        env = {**inherited, **self.world.env(), **self.extra_env}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_healthy(self, timeout: float = 120.0) -> Server:
        """Poll /_stcore/health until it answers 200 (the process exiting first is an error with its log)."""
        assert self.proc is not None, "launch() first"
        for companion in self.companions:
            try:
                companion.wait_ready(timeout)
            except Exception:
                self.stop()
                raise
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)  # polling the health endpoint; it answers within seconds of the imports
        self.stop()
        raise RuntimeError(f"the server did not answer /_stcore/health within {timeout:.0f} s:\n{self.log_tail()}")

    def start(self, timeout: float = 120.0) -> Server:
        return self.launch().wait_healthy(timeout)

    def stop(self) -> None:
        """Terminate by PID, then kill if it does not exit within 10 s; then its companions."""
        if self.proc is not None:
            stop_process(self.proc, timeout=10)
        for companion in self.companions:
            companion.stop()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log)"

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class OidcProvider:
    """A real OpenID Connect provider on a free loopback port: `python -m oidc_provider_mock`.

    Any client id and secret are accepted; its authorization page asks for a subject (`sub`), whose ID token then
    carries `email` = that subject (claims of predefined users, `users`, are theirs instead).
    """

    def __init__(self, log_dir: Path, users: list[dict[str, Any]] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"oidc-{self.port}.log"
        self.users = users or []
        self.proc: subprocess.Popen | None = None

    @property
    def metadata_url(self) -> str:
        return f"{self.base}/.well-known/openid-configuration"

    def launch(self) -> OidcProvider:
        cmd = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(self.port)]
        for user in self.users:
            cmd += ["--user-claims", json.dumps(user)]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout: float = 60.0) -> OidcProvider:
        """Poll the discovery document until it answers 200."""
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the OIDC provider exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.metadata_url, timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)  # polling the discovery document while the provider starts
        raise RuntimeError(f"the OIDC provider did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=10)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log)"


def oidc_secrets(server: Server, provider: OidcProvider, model_ops: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Streamlit's [auth] section for this server and provider, and the dashboard's [model_ops] role mapping."""
    return {
        "auth": {
            "redirect_uri": f"{server.base}/oauth2callback",
            "cookie_secret": "e2e-cookie-secret-" + "x" * 24,
            "client_id": "dimo-e2e",
            "client_secret": "dimo-e2e-secret",
            "server_metadata_url": provider.metadata_url,
        },
        "model_ops": model_ops,
    }


# ------------------------------------------------------------------ browser
def launch_browser(playwright: Any) -> Any:
    """Debian's Chromium, headless (the Playwright browser download is not available here)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def wait_idle(page: Any, timeout: int = TIMEOUT_MS) -> None:
    """Wait until the page is idle.

    That is: the websocket is up, the script has finished, the running indicator is gone and every plotly chart
    has drawn.
    """
    page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]', timeout=timeout)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=timeout)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stSkeleton\"]') && "
        "[...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')]"
        ".every(c => c.querySelector('.js-plotly-plot')?._fullData)",
        timeout=timeout,
    )


def open_app(page: Any, base: str, path: str = "/") -> None:
    """Load the app and wait for its first run (in local mode, or with a login cookie: signed in already)."""
    page.goto(base + path)
    wait_idle(page)


def sidebar(page: Any) -> Any:
    return page.locator('[data-testid="stSidebar"]')


def login_screen(page: Any) -> Any:
    """The login screen's heading (the router shows it, and nothing else, to someone not signed in)."""
    return page.locator('[data-testid="stMain"] h1', has_text="Device Intelligence Model Ops")


def submit_login_form(page: Any, name: str, password: str) -> None:
    """Fill and submit the built-in account form (/api/auth/login, a plain HTML page)."""
    page.locator("#name").fill(name)
    page.locator("#password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()


def login(page: Any, base: str, name: str, password: str) -> None:
    """Log in with a built-in account the way a person does: the login screen's link, the form, back signed in."""
    open_app(page, base)
    login_screen(page).wait_for(timeout=TIMEOUT_MS)
    with page.expect_navigation():
        page.get_by_role("link", name="Log in with an account").click()
    submit_login_form(page, name, password)
    wait_idle(page)
    sidebar(page).get_by_text(f"Signed in as {name}").wait_for(timeout=TIMEOUT_MS)


def open_page(page: Any, title: str) -> None:
    """Follow the sidebar link (a reload would start a new Streamlit session)."""
    # By the label's exact text: an icon's ligature is text too ("notifications_active" contains "Notifications").
    page.locator('[data-testid="stSidebarNav"] a').filter(has=page.get_by_text(title, exact=True)).first.click()
    heading = HEADINGS.get(title, title)
    page.locator('[data-testid="stMain"] h1', has_text=heading).wait_for(timeout=TIMEOUT_MS)
    wait_idle(page)


def dataframe_cells(frame: Any) -> dict[str, Any]:
    """An st.dataframe's header and visible rows, from the grid's accessibility table.

    The cells themselves are drawn on a canvas.
    """
    return frame.evaluate(
        "el => { const t = el.querySelector('table[role=\"grid\"]');"
        " return {header: [...t.querySelectorAll('thead th')].map(c => c.innerText.trim()),"
        " rows: [...t.querySelectorAll('tbody tr')]"
        ".map(r => [...r.querySelectorAll('td')].map(c => c.innerText.trim()))}; }"
    )


def dataframe_with_column(page: Any, column: str) -> Any:
    """The st.dataframe(s) that have a column with this header."""
    return page.locator('[data-testid="stMain"] [data-testid="stDataFrame"]').filter(
        has=page.locator("th", has_text=column)
    )


def after_rerun(page: Any, action: Callable[[], Any], timeout: int = TIMEOUT_MS) -> None:
    """Do something that makes Streamlit rerun the script, and wait for that rerun to finish (not just for an idle page,
    which it still is in the moment between the click and the rerun request)."""
    page.evaluate(
        """() => {
          const app = document.querySelector('[data-testid="stApp"]');
          window.__e2eRuns = 0;
          window.__e2eRunWatch?.disconnect();
          window.__e2eRunWatch = new MutationObserver(records => records.forEach(r => {
            if (r.oldValue === 'running') window.__e2eRuns += 1;
          }));
          window.__e2eRunWatch.observe(
            app, {attributes: true, attributeFilter: ['data-test-script-state'], attributeOldValue: true}
          );
        }"""
    )
    action()
    page.wait_for_function("() => window.__e2eRuns > 0", timeout=timeout)
    wait_idle(page, timeout)


def choose_option(page: Any, key: str, label: Any) -> None:
    """Pick an option of the selectbox with this widget key (label: text or compiled regex of the option)."""
    page.locator(f".st-key-{key} [role='combobox']").click()
    after_rerun(page, page.get_by_role("option", name=label).click)


def select_dataframe_row(page: Any, frame: Any, row: int) -> None:
    """Tick one row's selection box (the grid is a canvas: click the row-marker cell of that row)."""
    frame.scroll_into_view_if_needed()
    box = frame.bounding_box()
    header, height = 35, 35  # st.dataframe's default header and row heights, in CSS pixels
    page.mouse.click(box["x"] + 18, box["y"] + header + height * row + height / 2)


def select_backup(page: Any, timestamp: str) -> None:
    """Tick the Backups table's row of this backup set and wait until the page shows it as selected."""
    table = page.locator(".st-key-bk_table")
    table.locator("td", has_text=timestamp).wait_for(state="attached", timeout=TIMEOUT_MS)
    index = next(i for i, cells in enumerate(dataframe_cells(table)["rows"]) if timestamp in cells)
    select_dataframe_row(page, table, index)
    page.wait_for_function(
        "want => document.querySelector('[data-testid=\"stMain\"]').innerText.includes(want)",
        arg=f"Selected: {timestamp} · v",
        timeout=TIMEOUT_MS,
    )
    wait_idle(page)


def plotly_figure(chart: Any) -> dict[str, Any]:
    """The drawn figure of an st.plotly_chart element.

    Its traces as plotly.js resolved them (_fullData: arrays decoded) and its shapes and annotations.
    """
    return chart.locator(".js-plotly-plot").evaluate(
        "el => ({data: el._fullData.map(t => ({name: t.name, mode: t.mode, type: t.type,"
        " x: Array.from(t.x || []), y: Array.from(t.y || []),"
        " xaxis: t.xaxis, yaxis: t.yaxis})),"
        " layout: {shapes: el.layout.shapes || [], annotations: (el.layout.annotations || []).map(a => a.text)}})"
    )


def new_temp_root(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def manage_models(world: World, *args: str) -> str:
    """`scripts/manage_models.py` against a world, as an operator in a shell would run it; returns its output."""
    env = {**os.environ, **world.env()}
    done = subprocess.run(
        [sys.executable, "scripts/manage_models.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout
