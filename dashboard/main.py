"""The dashboard's router: page config, the sidebar every page shares, first-run progress, then the chosen page."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import services as svc  # noqa: E402
from dashboard import widgets  # noqa: E402

st.set_page_config(page_title="Device Intelligence Model Ops", layout="wide")

PAGES = {
    "Model": [
        st.Page("app_pages/status.py", title="Status", icon=":material/monitor_heart:", default=True),
        st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
        st.Page("app_pages/trends.py", title="Trends", icon=":material/show_chart:"),
    ],
    "Operate": [
        st.Page("app_pages/backups.py", title="Backups", icon=":material/inventory_2:"),
        st.Page("app_pages/retrain.py", title="Retrain", icon=":material/model_training:"),
        st.Page("app_pages/history.py", title="History", icon=":material/history:"),
    ],
}

page = st.navigation(PAGES)
ctx = svc.context()
widgets.sidebar(ctx)
widgets.bootstrap_banner(ctx)
page.run()
