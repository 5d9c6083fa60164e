"""Everything is served by the server itself: no page and no API doc asks the internet for anything."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e import harness as H

pytestmark = pytest.mark.e2e


def test_no_page_and_no_api_doc_requests_anything_outside_the_server(shared_server: H.Server, page) -> None:
    outside: list[str] = []
    local = (shared_server.base, "data:", "blob:", "about:")
    page.on("request", lambda request: None if request.url.startswith(local) else outside.append(request.url))
    H.open_app(page, shared_server.base)
    for title in H.PAGES.values():
        H.open_page(page, title)
    page.goto(f"{shared_server.base}/api/docs")
    expect(page.locator(".swagger-ui .title")).to_contain_text("Device Intelligence Model Ops API")
    expect(page.get_by_text("/predictions/models/status").first).to_be_visible()
    assert outside == [], f"requests outside the server: {sorted(set(outside))}"
