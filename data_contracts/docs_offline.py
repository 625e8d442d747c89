"""Data Docs that render with no internet: GX's pages load bootstrap, jQuery, bootstrap-table, Font Awesome and
its logo from CDNs (unstyled pages, and an index whose table of validations never fills in, on a machine
offline). After each build the pages are pointed at copies served with them (`docs_assets/`, copied into the
site as `static/vendor/`), by relative URLs, so they work as files and behind any web server."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from tasks.workspace import atomic_path, write_text_atomic

ASSETS = Path(__file__).parent / "docs_assets"
VENDOR = "static/vendor"  # in the site folder

# CDN URL (as GX 1.x writes it) -> file under ASSETS
LOCAL_COPIES = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "js/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "js/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "js/popper.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "css/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "js/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (
        "css/bootstrap-table-filter-control.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": (
        "css/bootstrap-table-filter-control.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
        "js/bootstrap-table-filter-control.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "css/bootstrap-datepicker.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "js/bootstrap-datepicker.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome/css/all.min.css",
}
# GX's logo from its S3 bucket (with a cache-busting ?d=...): the copy GX ships in the site's static/images/.
_LOGO = re.compile(r"https://great-expectations-web-assets\.s3\.[\w.-]+\.amazonaws\.com/[\w-]+\.png(\?[^\"')\s]*)?")
# Tags that would still load something from a CDN: vega (charts of profiling expectations, which no contract
# uses) and the dark-mode copy of bootstrap. Dropped, with the SRI attributes that a file:// page cannot satisfy.
_DROP = re.compile(
    r"<script src=\"https://cdn\.jsdelivr\.net/npm/vega[\w@.-]*\"></script>\n?"
    r"|<link rel=\"stylesheet\" href=\"https://cdn\.jsdelivr\.net/npm/@forevolve/[^\"]+\"\s*/?>\n?"
)
# GX links the favicon one folder too high on validation pages.
_FAVICON = re.compile(r"href=\"(?:\.\./|\./)*static/images/favicon\.ico\"")
_SRI = re.compile(r"\s+integrity=\"[^\"]*\"|\s+crossorigin=\"anonymous\"")
# What a page may still name outside itself after localizing: only links a person follows, never a load.
LOADED_URL = re.compile(
    r"""(?:<(?:script|img|link|iframe|source)\b[^>]*?\b(?:src|href)=|url\()\s*["']?(https?://[^"')\s>]+)"""
)


def localize_page(html: str, to_site: str) -> str:
    """`html` with its CDN loads pointed at the site's `static/vendor/` (`to_site`: the site folder relative to
    the page, e.g. `../..`), the logo at GX's own copy, and the loads with no local copy removed."""
    prefix = f"{to_site}/" if to_site not in ("", ".") else ""
    for url, local in LOCAL_COPIES.items():
        html = html.replace(url, f"{prefix}{VENDOR}/{local}")
    html = _LOGO.sub(f"{prefix}static/images/logo-long.png", html)
    html = _DROP.sub("", html)
    html = _FAVICON.sub(f'href="{prefix}static/images/favicon.ico"', html)
    return _SRI.sub("", html)


def copy_assets(site: Path) -> None:
    """The vendored files into `site/static/vendor/` (again only when a file is missing or differs in size)."""
    target = site / VENDOR
    for source in ASSETS.rglob("*"):
        if source.is_file() and source.name != "README.md":
            dest = target / source.relative_to(ASSETS)
            if not dest.is_file() or dest.stat().st_size != source.stat().st_size:
                dest.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(dest) as tmp:  # a page opened meanwhile never reads half a file
                    shutil.copyfile(source, tmp)


def localize_site(site: Path, pages: Iterable[Path] | None = None) -> list[Path]:
    """Copy the assets into `site` and localize `pages` (default: every HTML page of the site); returns the
    pages that changed."""
    site = Path(site)
    copy_assets(site)
    changed = []
    for page in pages if pages is not None else site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        local = localize_page(text, Path(os.path.relpath(site, page.parent)).as_posix())
        if local != text:
            write_text_atomic(page, local)
            changed.append(page)
    return changed
