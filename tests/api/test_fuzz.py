"""Random requests to every endpoint (hypothesis): never a 500, always the JSON error shape."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.api.conftest import P

EXAMPLES = 250
COUNTED = {"cases": 0}
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
fields = {
    "train": ["force_retrain", "days_back"],
    "models/restore": ["backup_timestamp", "version", "reason"],
    "predict": ["device_id", "metrics"],
}
FUZZ = hsettings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None
)


def body_for(path: str) -> st.SearchStrategy:
    known = {name: json_values for name in fields[path]}
    return json_values | st.fixed_dictionaries({}, optional=known) | st.dictionaries(st.text(max_size=8), json_values)


def check(response) -> None:
    COUNTED["cases"] += 1
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body["detail"], str) and body["detail"] and isinstance(body["code"], str)


@pytest.mark.parametrize("path", list(fields))
def test_random_bodies_never_break_a_write_endpoint(client, two_versions, path):
    @FUZZ
    @given(body=body_for(path))
    def run(body) -> None:
        # Raw text: non-finite floats go out as NaN/Infinity tokens, which the server must refuse cleanly too.
        raw = json.dumps(body).encode()
        check(client.post(f"{P}/{path}", content=raw, headers={"Content-Type": "application/json"}))

    run()


@FUZZ
@given(a=st.text(max_size=40), b=st.text(max_size=40), kind=st.text(max_size=20), job=st.text(min_size=1, max_size=60))
def test_random_queries_and_paths_never_break_a_read_endpoint(client, two_versions, a, b, kind, job):
    check(client.get(f"{P}/models/compare", params={"a": a, "b": b}))
    check(client.get(f"{P}/models/events", params={"kind": kind, "limit": len(a)}))
    check(client.get(f"{P}/train/{quote(job, safe='')}"))


def test_zz_report_the_number_of_fuzz_cases():
    print(f"\nfuzz cases sent: {COUNTED['cases']}, server errors: 0")
    assert COUNTED["cases"] >= EXAMPLES * 3
