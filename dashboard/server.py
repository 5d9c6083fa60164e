"""The one server: the Streamlit dashboard and the HTTP API under /api, on one port.

Start it with `streamlit run dashboard/server.py`; the pages are routed by dashboard/router.py.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import streamlit as st
from starlette.middleware import Middleware
from starlette.routing import Mount
from streamlit import config as st_config

from api.factory import create_api
from api.rendered import RenderedReads
from api.routes import RENDERED_PATHS
from api.security import check_bind_address, is_loopback
from core import logs
from core.config import Settings
from core.modelops import get_ops, start_alert_evaluator
from dashboard.bootstrap import ensure_bootstrap
from dashboard.identity import oidc_configured

log = logging.getLogger("dashboard.server")
logs.configure()
settings = Settings.from_env()
logs.add_training_log(settings.training_log)
address = st_config.get_option("server.address")
# Without authentication anyone reaching the server could act: only loopback then; refuse otherwise.
check_bind_address(address, get_ops(settings).authentication_configured(oidc=oidc_configured()))


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    """On a fresh machine, seed and train the first model as soon as the server starts, not on the first page view;
    then evaluate the alert rules in the background (ALERT_EVALUATE_SECONDS) and, with WEBHOOK_URLS set, run the
    notification dispatcher (one thread each)."""
    ensure_bootstrap(get_ops(settings))
    start_alert_evaluator(settings)
    get_ops(settings).start_notifications()
    threading.Thread(target=warm_up, name="warm-up", daemon=True).start()
    yield


def warm_up() -> None:
    """Load the live set in the background, then freeze what start-up allocated (modules, models: they live as long
    as the process) out of the collector: a full collection walked those ~240,000 objects for 150-220 ms, which
    the prediction running at that moment waited for."""
    get_ops(settings).warm_up()
    gc.freeze()
    log.info("warm-up: %d objects moved out of the collector's reach", gc.get_freeze_count())


API_MOUNT = "/api"
api = create_api(settings, reads_need_key=not is_loopback(address))
# Outermost: models/status and its siblings, unchanged since the last reply, skip Streamlit's and the API's layers.
replay = Middleware(RenderedReads, state=api.state, paths={API_MOUNT + p: k for p, k in RENDERED_PATHS.items()})
app = st.App("router.py", routes=[Mount(API_MOUNT, app=api)], middleware=[replay], lifespan=lifespan)
