"""GX Data Docs render styled with no internet: every page loads only files of its own site (the CDN assets are
copied in as static/vendor/), and in headless Chromium the index lists its validations and the pages are styled
without a single request leaving the site folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from data_contracts.docs_offline import LOADED_URL, VENDOR, localize_page
from tasks.ingest.dataset import ingest_dataset

LOCAL_REF = re.compile(r"""<(?:script|img|link)\b[^>]*?\b(?:src|href)=["']([^"'#]+)["']""")


@pytest.fixture(scope="module")
def site(sample_dir, tmp_path_factory) -> Path:
    docs = tmp_path_factory.mktemp("data_docs")
    ingest_dataset(sample_dir, docs_dir=docs)
    return docs


def test_every_page_loads_only_files_of_its_site(site):
    pages = sorted(site.rglob("*.html"))
    assert len([p for p in pages if "validations" in p.parts]) == 7 and (site / "index.html") in pages
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert LOADED_URL.findall(html) == [], page.relative_to(site)
        assert "integrity=" not in html and "crossorigin=" not in html  # SRI cannot be met by a file:// page
        refs = LOCAL_REF.findall(html)
        assert any(f"{VENDOR}/css/bootstrap.min.css" in r for r in refs), page.relative_to(site)
        for ref in refs:
            assert (page.parent / ref.split("?")[0]).resolve().is_file(), f"{page.relative_to(site)}: {ref}"
    # Font Awesome's stylesheet finds its fonts next to it
    assert (site / VENDOR / "fontawesome" / "webfonts" / "fa-solid-900.woff2").is_file()


def test_localize_page_points_cdn_loads_at_the_site_and_drops_what_has_no_copy():
    page = (
        '<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>\n'
        '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>\n'
        '<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>\n'
        '<script src="https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js" integrity="sha384-x"'
        ' crossorigin="anonymous"></script>\n'
        "<style>a { background: url('https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
        "full_logo_dark.png') }</style>\n"
        '<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=20261204T1Z"/>\n'
        '<a href="https://greatexpectations.io">Great Expectations</a>'
    )
    local = localize_page(page, "../..")
    assert LOADED_URL.findall(local) == []
    assert '<link rel="stylesheet" href="../../static/vendor/css/bootstrap.min.css"/>' in local
    assert '<script src="../../static/vendor/js/bootstrap.min.js"></script>' in local
    assert "vega" not in local
    assert local.count("../../static/images/logo-long.png") == 2
    assert '<a href="https://greatexpectations.io">' in local  # a link a person may follow is not a load
    assert 'src="static/vendor/js/jquery.min.js"' in localize_page(page, ".")


@pytest.mark.e2e
def test_data_docs_render_styled_in_chromium_from_files_alone(browser, site, browser_requests):
    from selenium.webdriver.support.ui import WebDriverWait

    origin = site.resolve().as_uri() + "/"
    validation = next(p for p in sorted(site.rglob("*.html")) if "validations" in p.parts)
    for page, ready in (
        (site / "index.html", "return document.querySelectorAll('.bootstrap-table tbody tr').length >= 7"),
        (validation, "return document.querySelectorAll('.bootstrap-table').length > 0"),
    ):
        browser.get_log("performance")
        browser.get(page.resolve().as_uri())
        WebDriverWait(browser, 20).until(lambda b, ready=ready: b.execute_script(ready))
        # bootstrap's stylesheet is applied (a 0.25rem radius on its .card / .alert / .btn), Font Awesome's font loads
        radius = browser.execute_script(
            "const e = document.querySelector('.card, .alert, .btn');"
            "return e && getComputedStyle(e).borderTopLeftRadius"
        )
        assert radius == "4px", (page.name, radius)
        assert browser.execute_script(
            "return document.fonts.ready.then(() => document.fonts.check('900 16px \"Font Awesome 6 Free\"'))"
        )
        requested, left = browser_requests(browser, origin)
        assert any(u.endswith(f"/{VENDOR}/js/jquery.min.js") for u in requested)
        assert left == [], page.name
        problems = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert problems == [], (page.name, problems)
