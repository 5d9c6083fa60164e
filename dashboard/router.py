"""The dashboard's router: page config, the sidebar every page shares, first-run progress, then the chosen page."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.errors import RegistryError
from dashboard import identity, widgets
from dashboard import services as svc
from dashboard.pages import ADMIN_GROUP, PAGE_GROUPS, PAGE_NAMES, page_path

# A local icon: left to the pages' material icons, the browser tab's icon would be fetched from the internet.
ICON = Path(__file__).with_name("favicon.png")
st.set_page_config(page_title="Device Intelligence Model Ops", page_icon=str(ICON), layout="wide")

who = identity.principal(svc.ops())
page = st.navigation(
    {
        group: [
            st.Page(page_path(name), title=title, icon=icon, default=name == PAGE_NAMES[0])
            for name, title, icon in pages
        ]
        for group, pages in PAGE_GROUPS.items()
        if group != ADMIN_GROUP or (who is not None and who.can("manage users"))
    },
    position="sidebar" if who is not None else "hidden",
    expanded=True,  # thirteen pages: every one stays in sight, never behind a "View more" button
)
if who is None:
    identity.login_screen(svc.ops())
st.session_state[identity.WHO_KEY] = who
widgets.page_reading(widgets.change_stamps())  # before any read, so a change during the render is seen next tick
widgets.sidebar(who)
widgets.bootstrap_banner()
widgets.watch_changes()
try:
    page.run()
except RegistryError as exc:  # e.g. the database stopped answering mid-page: say so instead of a traceback
    st.error(exc.message)
