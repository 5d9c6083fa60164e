"""Guessing passwords costs minutes: after LOGIN_FAILURES failures one name is refused for the window."""

from __future__ import annotations

import pytest

from core import modelops as M
from core.errors import Forbidden
from core.identity import local_principal
from core.modelops import ModelOps

PASSWORD = "correct horse battery"


@pytest.fixture
def ops(settings):
    ops = ModelOps(settings)
    ops.add_account("alice", "operator", PASSWORD, actor=local_principal("setup"))
    ops.add_account("bob", "viewer", PASSWORD, actor=local_principal("setup"))
    yield ops
    ops.dispose()


def test_repeated_failures_pause_that_name_only(ops, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(M.time, "monotonic", lambda: clock[0])
    for _ in range(M.LOGIN_FAILURES):
        with pytest.raises(Forbidden, match="wrong name or password"):
            ops.login("alice", "not the password")
    with pytest.raises(Forbidden, match="too many failed logins"):
        ops.login("alice", PASSWORD)  # even the right password waits: the guesser learns nothing
    with pytest.raises(Forbidden, match="too many failed logins"):
        ops.login(" ALICE ", PASSWORD)  # the same name however it is typed
    assert ops.login("bob", PASSWORD)[0].name == "bob"  # other names are not affected
    clock[0] += M.LOGIN_WINDOW + 1
    principal, token = ops.login("alice", PASSWORD)
    assert principal.name == "alice" and ops.session(token) == principal


def test_failures_spread_over_time_never_pause(ops, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(M.time, "monotonic", lambda: clock[0])
    for _ in range(3 * M.LOGIN_FAILURES):
        with pytest.raises(Forbidden, match="wrong name or password"):
            ops.login("alice", "not the password")
        clock[0] += M.LOGIN_WINDOW / (M.LOGIN_FAILURES - 1)
    assert ops.login("alice", PASSWORD)[0].name == "alice"
