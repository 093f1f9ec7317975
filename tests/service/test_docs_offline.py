"""The API reference pages load every file from the app, none from a CDN."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings

BASE_URL = "http://testserver"
# src="..." and href="..." attributes, and url: "..." in the page's script.
REFERENCE = re.compile(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""")
ABSOLUTE_URL = re.compile(r"""(?:https?:)?//[^\s'"<>]+""")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    folder = tmp_path_factory.mktemp("docs")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'cashmatch.db'}", data_dir=folder
    )
    app = create_app(settings, review_page=False)
    with TestClient(app, base_url=BASE_URL) as client:
        yield client


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_page_names_no_other_host(client, path):
    response = client.get(path)

    assert response.status_code == 200
    other_hosts = [
        url
        for url in ABSOLUTE_URL.findall(response.text)
        if not url.removeprefix("http:").startswith("//testserver")
    ]
    assert other_hosts == []


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_page_files_served_locally(client, path):
    page = client.get(path).text
    references = REFERENCE.findall(page)
    scripts_and_styles = [url for url in references if url.endswith((".js", ".css"))]

    assert scripts_and_styles, page
    for url in references:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.content, url


def test_swagger_ui_files_are_bundled(client):
    page = client.get("/docs").text

    assert "/docs-static/swagger-ui-bundle.js" in page
    assert "/docs-static/swagger-ui.css" in page
    script = client.get("/docs-static/swagger-ui-bundle.js")
    assert script.headers["content-type"].startswith(
        ("application/javascript", "text/javascript")
    )
    assert "SwaggerUIBundle" in script.text
