"""The API reference pages in a real browser: they render and fetch nothing from elsewhere."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from service.app import create_app
from service.settings import Settings

pytestmark = pytest.mark.browser
# How Chromium names a request that the page's content security policy blocked.
CSP_FAILURES = ("csp", "net::ERR_BLOCKED_BY_CSP")


@pytest.fixture
def base_url(tmp_path, serve):
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'cashmatch.db'}", data_dir=tmp_path
    )
    with serve(create_app(settings, review_page=False)) as base:
        yield base


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_reference_page_renders_without_other_hosts(page, base_url, path):
    requested: list[str] = []
    blocked: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on(
        "requestfailed",
        lambda request: request.failure in CSP_FAILURES and blocked.append(request.url),
    )

    page.goto(base_url + path)
    page.get_by_role("heading").filter(has_text="Cashmatch").first.wait_for()
    page.get_by_text("/v1/match").first.wait_for()
    page.wait_for_load_state("networkidle")

    # A request the page's policy blocked never left the browser.
    sent = [url for url in requested if url.startswith("http") and url not in blocked]
    assert {urlsplit(url).hostname for url in sent} == {"127.0.0.1"}, sent
