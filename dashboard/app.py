"""The one server: Streamlit dashboard plus the HTTP API under /api, on one port (`streamlit run dashboard/app.py`)."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from contextlib import asynccontextmanager  # noqa: E402
from typing import Any, AsyncIterator  # noqa: E402

import streamlit as st  # noqa: E402
from starlette.routing import Mount  # noqa: E402
from streamlit import config as st_config  # noqa: E402

from api.app import create_api  # noqa: E402
from api.security import check_bind_address  # noqa: E402
from core.config import Settings  # noqa: E402
from core.context import get_context  # noqa: E402
from dashboard.bootstrap import ensure_bootstrap  # noqa: E402

settings = Settings.from_env()
# Without an API key the write endpoints are only safe on loopback; refuse to start otherwise.
check_bind_address(st_config.get_option("server.address"), settings)



@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    """On a fresh machine, seed and train the first model as soon as the server starts, not on the first page view."""
    ensure_bootstrap(get_context(settings))
    yield


app = st.App("main.py", routes=[Mount("/api", app=create_api(settings))], lifespan=lifespan)
