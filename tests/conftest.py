"""Shared fixtures: a session-wide sample dataset, corrupted copies of it, a Prefect test harness."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
PRACTICUM_DIR = Path(os.environ.get("IMGSEARCH_PRACTICUM_DIR", REPO.parent / "shared" / "data" / "practicum-dev"))


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """A small sample dataset, made once per session. Tests must not modify it: use `sample_copy`."""
    from tasks.ingest.sample import generate_sample

    out = tmp_path_factory.mktemp("sample") / "data"
    generate_sample(out, seed=0, n_train=60, n_test=12)
    return out


@pytest.fixture
def sample_copy(sample_dir, tmp_path) -> Path:
    """A private copy of the sample dataset that a test may corrupt."""
    target = tmp_path / "data"
    shutil.copytree(sample_dir, target)
    return target


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares width x height but that carries no pixels: decoding it would fail, so a
    check that reports its size proves it read the header only."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def png_header():
    """`png_header(path, width, height)` writes a header-only PNG of that size (see `_png_header`)."""
    return _png_header


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    from tasks.workspace import Workspace

    root = tmp_path / "workspace"
    monkeypatch.setenv("IMGSEARCH_HOME", str(root))
    return Workspace(root)


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test server for every flow test in the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def practicum_dir() -> Path:
    if not (PRACTICUM_DIR / "train_dataset.csv").is_file():
        pytest.skip(f"the practicum-dev dataset is not at {PRACTICUM_DIR} (set IMGSEARCH_PRACTICUM_DIR)")
    return PRACTICUM_DIR


CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through chromedriver, with its network (performance) and console logs kept; skipped where
    Debian's chromium and chromium-driver are not installed."""
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
    # every network request a page makes (performance log) and every console message (CSP violations land there)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    driver.set_window_size(1200, 900)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# Chromium's own pages (its new-tab page, favicons, tooltips) load over these schemes into the same performance log
# as the page under test; none of them leaves the machine, and none is a load of that page
BROWSER_INTERNAL = ("chrome:", "chrome-extension:", "chrome-untrusted:", "devtools:", "about:", "blob:", "data:")


def _requested_urls(browser) -> list[str]:
    """Every URL the browser asked for since its performance log was last read (Chrome keeps no resource timing
    for file:// pages; its network log names every request)."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


@pytest.fixture(scope="session")
def browser_requests():
    """f(browser, origin) -> (every URL requested, those that left `origin`, browser-internal loads aside)."""

    def requests(browser, origin: str) -> tuple[list[str], list[str]]:
        urls = _requested_urls(browser)
        return urls, [u for u in urls if not u.startswith((origin, *BROWSER_INTERNAL))]

    return requests
