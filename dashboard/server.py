"""The one server: the Streamlit dashboard and the HTTP API under /api, on one port.

Start it with `streamlit run dashboard/server.py`; the pages are routed by dashboard/router.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import streamlit as st
from starlette.routing import Mount
from streamlit import config as st_config

from api.factory import create_api
from api.security import check_bind_address
from core import logs
from core.config import Settings
from core.modelops import get_ops
from dashboard.bootstrap import ensure_bootstrap

logs.configure()
settings = Settings.from_env()
logs.add_training_log(settings.training_log)
# Without an API key the write endpoints are only safe on loopback; refuse to start otherwise.
check_bind_address(st_config.get_option("server.address"), settings)


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    """On a fresh machine, seed and train the first model as soon as the server starts, not on the first page view."""
    ensure_bootstrap(get_ops(settings))
    yield


app = st.App("router.py", routes=[Mount("/api", app=create_api(settings))], lifespan=lifespan)
