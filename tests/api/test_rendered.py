"""The rendered cache behind models/status: never serves a body built for other files, refreshes one at a time."""

from __future__ import annotations

import pytest

from api.rendered import RenderedCache


def test_a_body_for_other_files_is_never_served():
    cache = RenderedCache(max_age=60)
    cache.render("status", ("a",), lambda: {"version": "1.0.0"})
    assert cache.get("status", ("a",)) == b'{"version":"1.0.0"}'
    assert cache.get("status", ("b",)) is None


def test_an_old_body_is_refreshed_by_one_caller_while_the_others_get_it():
    cache = RenderedCache(max_age=0)
    cache.render("status", ("a",), lambda: {"n": 1})
    assert cache.get("status", ("a",)) is None  # this caller refreshes
    assert cache.get("status", ("a",)) == b'{"n":1}'  # the others are served the old body meanwhile
    cache.render("status", ("a",), lambda: {"n": 2})
    assert cache.get("status", ("a",)) is None  # old again: the next caller refreshes


def test_a_failed_refresh_lets_the_next_caller_try():
    cache = RenderedCache(max_age=0)
    cache.render("status", ("a",), lambda: {"n": 1})
    assert cache.get("status", ("a",)) is None

    def broken() -> dict:
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        cache.render("status", ("a",), broken)
    assert cache.get("status", ("a",)) is None


def test_peek_serves_only_a_young_body_for_these_files_and_never_makes_anyone_refresh():
    cache = RenderedCache(max_age=60)
    assert cache.peek("status", ("a",)) is None
    cache.render("status", ("a",), lambda: {"n": 1})
    assert cache.peek("status", ("a",)) == b'{"n":1}'
    assert cache.peek("status", ("b",)) is None  # other files: never


def test_peek_leaves_an_old_body_to_get_and_serves_it_while_someone_refreshes():
    cache = RenderedCache(max_age=0)
    cache.render("status", ("a",), lambda: {"n": 1})
    assert cache.peek("status", ("a",)) is None  # old, and nobody refreshes it yet
    assert cache.get("status", ("a",)) is None  # so peeking did not take the refresh: this caller gets it
    assert cache.peek("status", ("a",)) == b'{"n":1}'  # served meanwhile, as get serves it
