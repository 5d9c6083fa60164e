"""The one server: Streamlit dashboard plus the HTTP API under /api, on one port (`streamlit run dashboard/app.py`)."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402
from starlette.routing import Mount  # noqa: E402

from api.app import create_api  # noqa: E402

app = st.App("main.py", routes=[Mount("/api", app=create_api())])
