"""End to end in headless Chromium: type a query, see loaded result images; a child query shows the notice."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tasks.safety.text_screen import NOTICE

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(searcher):
    import uvicorn

    from webapp.app import create_app

    port = _free_port()
    config = uvicorn.Config(create_app(lambda: searcher), host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
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


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(
            f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver; .ci/run does this)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="imgsearch-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _search(browser, server, query: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    box = browser.find_element(By.ID, "q")
    box.clear()
    box.send_keys(query)
    browser.find_element(By.ID, "go").click()


def test_search_page_shows_loaded_images_with_scores(browser, server, search_setup):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _search(browser, server, "a dog jumps over a fence")
    wait = WebDriverWait(browser, 20)
    images = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "figure.hit img") or False)
    assert len(images) == 5
    wait.until(
        lambda d: d.execute_script(
            "return Array.from(document.querySelectorAll('figure.hit "
            "img')).every(i => i.complete && i.naturalWidth > 0)"
        )
    )
    captions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "figure.hit figcaption")]
    names = [img.get_attribute("alt") for img in images]
    assert all(name in search_setup.searchable for name in names)
    scores = [float(c.rsplit("score ", 1)[1]) for c in captions]
    assert all(0 <= s <= 1 for s in scores) and scores == sorted(scores, reverse=True)
    assert browser.find_element(By.ID, "notice").text == ""


def test_child_query_shows_only_the_notice(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _search(browser, server, "a little girl playing")
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "notice").text == NOTICE)
    assert browser.find_elements(By.CSS_SELECTOR, "figure.hit") == []
    assert browser.find_elements(By.CSS_SELECTOR, "#results img") == []


def test_empty_query_shows_a_clear_message(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _search(browser, server, "   ")
    WebDriverWait(browser, 20).until(lambda d: "empty" in d.find_element(By.ID, "notice").text)
    assert browser.find_elements(By.CSS_SELECTOR, "figure.hit") == []
