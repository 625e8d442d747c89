"""`/docs` works with no internet: Swagger UI's files come from this server, the page names no outside URL, and in
headless Chromium it renders with every request going to the app's own origin and no CSP complaint."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from webapp.app import SWAGGER_UI_URL, create_app

URL = re.compile(r"""(?:src|href)=["']([^"']+)["']|\b(https?://[^\s"'<>)]+)""")


def _no_searcher():
    raise AssertionError("the docs must not need a searcher")


@pytest.fixture(scope="module")
def app():
    return create_app(_no_searcher)


def test_docs_page_names_only_this_servers_files_and_they_are_served(app):
    client = TestClient(app)
    response = client.get("/docs")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    found = [a or b for a, b in URL.findall(html)]
    assert found and not [u for u in found if not u.startswith("/")], found  # every URL is a path on this server
    assert f"{SWAGGER_UI_URL}/swagger-ui-bundle.js" in found and f"{SWAGGER_UI_URL}/swagger-ui.css" in found
    for path in found:
        asset = client.get(path)
        assert asset.status_code == 200 and len(asset.content) > 100, path
    assert "SwaggerUIBundle" in client.get(f"{SWAGGER_UI_URL}/swagger-ui-bundle.js").text
    assert "<script>" not in html  # the CSP refuses inline script; docs.js starts Swagger UI
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    # the OpenAPI schema it renders is the app's, and the old CDN-backed pages are gone
    assert client.get("/openapi.json").json()["info"]["title"] == "imgsearch"
    assert client.get("/redoc").status_code == 404


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(app) -> Iterator[str]:
    import uvicorn

    port = _free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.mark.e2e
def test_docs_render_in_chromium_without_leaving_the_server(browser, server, browser_requests):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("performance")  # start from an empty log
    browser.get(server + "/docs")
    WebDriverWait(browser, 20).until(
        lambda b: b.execute_script("return document.querySelectorAll('.swagger-ui .opblock').length") > 0
    )
    # Swagger UI rendered the app's own schema, styled by its stylesheet
    assert browser.execute_script("return document.querySelector('.swagger-ui .info .title').textContent").startswith(
        "imgsearch"
    )
    paths = browser.execute_script(
        "return Array.from(document.querySelectorAll('.swagger-ui .opblock-summary-path')).map(e => e.textContent)"
    )
    assert {"/api/search", "/api/score", "/healthz"} <= {p.replace("\u200b", "") for p in paths}
    styled = browser.execute_script(
        "return getComputedStyle(document.querySelector('.swagger-ui .opblock-summary-method')).backgroundColor"
    )
    assert styled not in ("", "rgba(0, 0, 0, 0)"), styled  # the GET badge is coloured: swagger-ui.css applied

    # open every operation: their media-type selects draw icons from the stylesheet's data: URLs
    browser.execute_script("document.querySelectorAll('.swagger-ui .opblock-summary-control').forEach(e => e.click())")
    WebDriverWait(browser, 20).until(
        lambda b: b.execute_script("return document.querySelectorAll('.swagger-ui .opblock-body select').length") > 0
    )

    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert any(r.endswith("/swagger-ui-bundle.js") for r in resources)
    assert [r for r in resources if not r.startswith(server + "/")] == []
    requested, left = browser_requests(browser, server + "/")
    assert any(u.endswith("/openapi.json") for u in requested)
    assert left == []
    problems = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not [p for p in problems if "favicon.ico" not in p], problems
