"""Browser-suite fixtures.

One seeded world per session, a real server per module on a copy of it, Chromium pages with failure artifacts.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import harness as H

ARTIFACTS = H.ROOT / "test-artifacts" / "e2e"
VIEWPORT = {"width": 1400, "height": 1000}


def _browser_missing() -> str | None:
    """Why the browser suite cannot run here, or None.

    Playwright itself is a dev requirement: missing, the modules fail to import.
    """
    if not Path(H.CHROMIUM).exists():
        return f"{H.CHROMIUM} is not installed (apt-get install chromium); the e2e suite drives it headless"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the whole suite without a browser, unless CI_REQUIRE_BROWSER=1 (then the browser fixture fails instead)."""
    missing = _browser_missing()
    if missing is None or os.environ.get("CI_REQUIRE_BROWSER") == "1":
        return
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.skip(reason=missing))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Keep each phase's report on the item so fixtures can see whether the test failed.

    Stored as item.rep_<phase>, e.g. item.rep_setup, item.rep_call.
    """
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


# ------------------------------------------------------------------ world and servers
@pytest.fixture(scope="session")
def e2e_template(tmp_path_factory: pytest.TempPathFactory) -> H.World:
    """The seeded fleet and four promoted versions (the last one current, three backups), built once per session."""
    return H.build_world(tmp_path_factory.mktemp("e2e_template"))


def _warm_up(server: H.Server, browser: Any) -> H.Server:
    """Wait for the health check, then load the app once until its first run has finished (imports, caches).

    With logins on, that first run is the login screen's.
    """
    try:
        server.wait_healthy()
        context = browser.new_context(viewport=VIEWPORT)
        try:
            H.open_app(context.new_page(), server.base)
        finally:
            context.close()
    except Exception:
        server.stop()
        raise
    return server


Prepare = Callable[[H.Server], None]
SHARED = ("", "shared_server")


def module_servers(module: Any) -> dict[str, Prepare | None]:
    """The servers a test module asks for, by fixture name, each with how its world and config are prepared.

    `server` (prepared by the module's `prepare_server(server)`, if any), and any in `E2E_SERVERS`
    (fixture name -> prepare), whose fixtures call the `module_server` factory.
    """
    return {"server": getattr(module, "prepare_server", None), **getattr(module, "E2E_SERVERS", {})}


class ServerPool:
    """Launches every server the session needs at once, each on its own copy of the template, so they boot in parallel
    with the first tests instead of one after another; each module then waits only for its own.

    A server is asked for by key (module, fixture name); `prepare(server)` runs before it launches: accounts in its
    world, Streamlit secrets, companion processes such as an OIDC provider.
    """

    def __init__(self, template: H.World, factory: pytest.TempPathFactory) -> None:
        self.template = template
        self.factory = factory
        self.waiting: dict[tuple[str, str], H.Server] = {}
        self.started: list[H.Server] = []

    def launch(self, key: tuple[str, str], prepare: Prepare | None = None) -> None:
        server = H.Server(H.clone_world(self.template, self.factory.mktemp("e2e_server")))
        if prepare is not None:
            prepare(server)
        self.waiting[key] = server.launch()

    def take(self, key: tuple[str, str], prepare: Prepare | None = None) -> H.Server:
        if key not in self.waiting:
            self.launch(key, prepare)
        server = self.waiting.pop(key)
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.started + list(self.waiting.values()):
            server.stop()


@pytest.fixture(scope="session")
def server_pool(
    e2e_template: H.World, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[ServerPool]:
    pool = ServerPool(e2e_template, tmp_path_factory)
    wanted: dict[tuple[str, str], Prepare | None] = {}
    here = Path(__file__).parent
    for item in request.session.items:
        if here not in Path(str(item.fspath)).parents:
            continue
        if "shared_server" in item.fixturenames:
            wanted[SHARED] = None
        for name, prepare in module_servers(item.module).items():
            if name in item.fixturenames:
                wanted[(item.module.__name__, name)] = prepare
    try:
        for key, prepare in wanted.items():
            pool.launch(key, prepare)
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture(scope="session")
def shared_server(browser: Any, server_pool: ServerPool) -> H.Server:
    """One server for the read-only flows (Compare, Trends), on its own copy of the template."""
    return _warm_up(server_pool.take(SHARED), browser)


@pytest.fixture(scope="module")
def module_server(
    browser: Any, server_pool: ServerPool, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], H.Server]]:
    """This module's servers by fixture name (see module_servers), each started once and stopped after the module."""
    servers: dict[str, H.Server] = {}
    prepares = module_servers(request.module)

    def get(name: str) -> H.Server:
        if name not in servers:
            taken = server_pool.take((request.module.__name__, name), prepares.get(name))
            servers[name] = _warm_up(taken, browser)
        return servers[name]

    yield get
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def server(module_server: Callable[[str], H.Server]) -> H.Server:
    """A server per test module on a private copy of the template (local mode unless the module prepares it).

    The flows that change state cannot disturb each other.
    """
    return module_server("server")


# ------------------------------------------------------------------ browser
@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    missing = _browser_missing()
    if missing is not None:
        pytest.fail(f"{missing} (CI_REQUIRE_BROWSER=1: failing instead of skipping)", pytrace=False)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=H.TIMEOUT_MS)
    with sync_playwright() as p:
        chromium = H.launch_browser(p)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Callable[[], Any]]:
    """Open pages in fresh browser contexts (separate Streamlit sessions); on failure save each one's PNG and HTML."""
    contexts: list[Any] = []
    pages: list[Any] = []

    def make() -> Any:
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(H.TIMEOUT_MS)
        contexts.append(context)
        pages.append(context.new_page())
        return pages[-1]

    yield make
    failed = any(getattr(getattr(request.node, f"rep_{when}", None), "failed", False) for when in ("setup", "call"))
    if failed:
        _save_artifacts(request.node.name, pages, request)
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[[], Any]) -> Any:
    return new_page()


def _save_artifacts(test_name: str, pages: list[Any], request: pytest.FixtureRequest) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
    for i, pg in enumerate(pages):
        stem = base if i == 0 else f"{base}-{i + 1}"
        try:
            pg.screenshot(path=str(ARTIFACTS / f"{stem}.png"), full_page=True)
            (ARTIFACTS / f"{stem}.html").write_text(pg.content(), encoding="utf-8")
        except Exception as exc:  # a crashed page must not hide the test's own failure
            (ARTIFACTS / f"{stem}.error.txt").write_text(f"could not save the page: {exc}\n", encoding="utf-8")
    module = getattr(request.node, "module", None)
    for name in ("shared_server", *module_servers(module)):
        if name in request.fixturenames:
            srv = request.getfixturevalue(name)
            suffix = "" if name in ("server", "shared_server") else f".{name}"
            shutil.copyfile(srv.log_path, ARTIFACTS / f"{base}{suffix}.server.log")
            for companion in srv.companions:
                if getattr(companion, "log_path", None) is not None and companion.log_path.exists():
                    shutil.copyfile(companion.log_path, ARTIFACTS / f"{base}{suffix}.{companion.log_path.name}")
