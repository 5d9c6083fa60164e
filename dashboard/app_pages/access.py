"""Access (admins): built-in accounts and API keys, each change recorded in History."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.identity import ROLES
from dashboard import identity, widgets
from dashboard import services as svc
from dashboard.formatting import fmt_time

ops, actor = svc.ops(), identity.who()

st.title("Users and API keys")
widgets.flash("ac")
block = svc.write_block_reason(actor, "manage users")
if block:
    st.warning(block, icon=":material/lock:")
    st.stop()
if ops.database_error:
    widgets.db_needed("Accounts and API keys")
    st.stop()


def done(result: svc.ActionResult) -> None:
    widgets.set_flash("ac", result)
    st.rerun()


@widgets.dialog("Your new API key")
def show_secret(name: str, secret: str) -> None:
    st.markdown(f"This is the only time the secret of **{name}** is shown. Copy it now; only its hash is kept.")
    st.code(secret, language=None)
    st.caption("Send it as `Authorization: Bearer <key>` (API), or set `MODEL_OPS_API_KEY` (CLI).")
    if st.button("I have copied it", type="primary", key="ac_secret_done"):
        st.rerun()


accounts_tab, keys_tab = st.tabs(["Accounts", "API keys"])

with accounts_tab:
    accounts = ops.accounts(actor=actor)
    if accounts:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "name": a.name,
                        "role": a.role,
                        "state": "disabled" if a.disabled else "active",
                        "created": fmt_time(a.created_at),
                        "last login": fmt_time(a.last_login_at) if a.last_login_at else "never",
                    }
                    for a in accounts
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        st.info("No accounts yet. Add one below; people then log in with it on this dashboard.")
    with st.form("ac_add_form"):
        st.markdown("**Add an account**")
        c1, c2, c3 = st.columns(3)
        name = c1.text_input("Name", key="ac_add_name", placeholder="e.g. alice")
        role = c2.selectbox("Role", ROLES, index=ROLES.index("operator"), key="ac_add_role")
        password = c3.text_input("Password (10+ characters)", type="password", key="ac_add_password")
        if st.form_submit_button("Add account", icon=":material/person_add:"):
            done(svc.add_account(name, role, password, actor=actor))
    if accounts:
        with st.form("ac_change_form"):
            st.markdown("**Change an account**")
            c1, c2, c3 = st.columns(3)
            who = c1.selectbox("Account", [a.name for a in accounts], key="ac_change_name")
            new_role = c2.selectbox("Role", ["(unchanged)", *ROLES], key="ac_change_role")
            state = c3.selectbox("State", ["(unchanged)", "active", "disabled"], key="ac_change_state")
            new_password = st.text_input("New password (blank: unchanged)", type="password", key="ac_change_pw")
            if st.form_submit_button("Apply", icon=":material/manage_accounts:"):
                change: dict[str, object] = {}
                if new_role != "(unchanged)":
                    change["role"] = new_role
                if state != "(unchanged)":
                    change["disabled"] = state == "disabled"
                if new_password:
                    change["password"] = new_password
                done(svc.change_account(who, actor=actor, **change))

with keys_tab:
    keys = ops.api_keys(actor=actor)
    if keys:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "name": k.name,
                        "role": k.role,
                        "key starts": f"dimo_{k.prefix}_…",
                        "state": "active" if k.active else f"revoked {fmt_time(k.revoked_at)}",
                        "created": f"{fmt_time(k.created_at)} by {k.created_by}",
                        "last used": fmt_time(k.last_used_at) if k.last_used_at else "never",
                    }
                    for k in keys
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        st.info("No named API keys yet. The guide's scripts can keep using API_KEY (an operator key).")
    with st.form("ac_key_form"):
        st.markdown("**Create an API key**")
        c1, c2 = st.columns(2)
        key_name = c1.text_input("Name", key="ac_key_name", placeholder="e.g. nightly-cron")
        key_role = c2.selectbox("Role", ROLES, index=ROLES.index("operator"), key="ac_key_role")
        if st.form_submit_button("Create key", icon=":material/key:"):
            result = svc.create_api_key(key_name, key_role, actor=actor)
            if result.ok:
                show_secret(result.value[0].name, result.value[1])
            else:
                st.error(result.message)
    active = [k.name for k in keys if k.active]
    if active:
        with st.form("ac_revoke_form"):
            st.markdown("**Revoke an API key** (callers using it get 403 at once)")
            doomed = st.selectbox("Key", active, key="ac_revoke_name")
            if st.form_submit_button("Revoke", icon=":material/key_off:"):
                done(svc.revoke_api_key(doomed, actor=actor))
