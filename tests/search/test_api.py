"""The web API over a real (fake-encoder) champion and gallery: shapes, bounds, refusals, image serving."""

from __future__ import annotations

import pandas as pd
import pytest

from tasks.safety.text_screen import NOTICE


def test_search_returns_sorted_scores_in_unit_interval(api, search_setup):
    response = api.get("/api/search", params={"q": "a dog jumps over a fence", "k": 7})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"query", "refused", "notice", "results"}
    assert body["query"] == "a dog jumps over a fence" and body["refused"] is False and body["notice"] is None
    assert len(body["results"]) == 7
    scores = [hit["score"] for hit in body["results"]]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    for rank, hit in enumerate(body["results"], start=1):
        assert set(hit) == {"image", "score", "url", "rank", "band", "band_label", "captions"}
        assert hit["image"] in search_setup.searchable and hit["url"] == f"/images/{hit['image']}"
        assert hit["rank"] == rank and hit["band"] in {"strong", "fair", "weak", "none"}


def test_search_k_defaults_to_five_and_caps_at_gallery_size(api, search_setup):
    assert len(api.get("/api/search", params={"q": "a man"}).json()["results"]) == 5
    body = api.get("/api/search", params={"q": "a man", "k": 100}).json()
    assert len(body["results"]) == len(search_setup.searchable)


@pytest.mark.parametrize("k", [0, -1, 101])
def test_search_k_out_of_range_is_422(api, k):
    assert api.get("/api/search", params={"q": "a dog", "k": k}).status_code == 422


@pytest.mark.parametrize("q", ["", "   ", "\t\n"])
def test_empty_query_is_400(api, q):
    response = api.get("/api/search", params={"q": q})
    assert response.status_code == 400 and "empty" in response.json()["detail"]


def test_missing_and_overlong_queries_are_4xx(api):
    assert api.get("/api/search").status_code == 422
    assert api.get("/api/search", params={"q": "a" * 501}).status_code == 422
    assert api.get("/api/search", params={"q": "a" * 500}).status_code == 200


@pytest.mark.parametrize(
    "q", ["a little girl playing", "Kids on a slide", "a toddler in a pool", "two boys playing soccer"]
)
def test_child_query_is_refused_with_the_notice(api, q):
    response = api.get("/api/search", params={"q": q, "k": 10})
    assert response.status_code == 200
    assert response.json() == {"query": q, "refused": True, "notice": NOTICE, "results": []}


def test_images_served_only_from_the_searchable_gallery(api, search_setup):
    ok = api.get(f"/images/{search_setup.searchable[0]}")
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/jpeg" and ok.content[:2] == b"\xff\xd8"
    for name in search_setup.flagged["image"]:
        assert api.get(f"/images/{name}").status_code == 404, name
    for bad in [
        "nope.jpg",
        "%2e%2e",
        "..%2F..%2Fetc%2Fpasswd",
        "%2Fetc%2Fpasswd",
        ".%2Fx.jpg",
        "..%5Cx.jpg",
        "index.json",
    ]:
        assert api.get(f"/images/{bad}").status_code == 404, bad
    assert api.get("/images/../x").status_code == 404
    assert api.get("/images/../../etc/passwd").status_code == 404
    # the client folds "/images/.." into "/": the search page, never a file
    folded = api.get("/images/..")
    assert folded.status_code == 404 or folded.headers["content-type"].startswith("text/html")


def test_score_a_normal_pair(api, search_setup):
    response = api.post("/api/score", json={"text": "a dog on the grass", "image": search_setup.searchable[0]})
    assert response.status_code == 200
    body = response.json()
    assert body["refused"] is False and body["notice"] is None and 0.0 <= body["score"] <= 1.0
    assert body["image"] == search_setup.searchable[0]


def test_score_with_a_flagged_text_is_refused(api, search_setup):
    body = api.post(
        "/api/score", json={"text": "a little girl in a pink dress", "image": search_setup.searchable[0]}
    ).json()
    assert body["refused"] is True and body["score"] is None and body["notice"] == NOTICE


@pytest.mark.parametrize("source", ["captions", "detector"])
def test_score_with_a_flagged_gallery_image_is_refused(api, search_setup, source):
    image = search_setup.flagged_by(source)[0]
    body = api.post("/api/score", json={"text": "a dog on the grass", "image": image}).json()
    assert body["refused"] is True and body["score"] is None and body["notice"] == NOTICE


@pytest.mark.parametrize("image", ["../x.jpg", "/etc/passwd", "a/b.jpg", "..", "x.jpg\x00", "x.jpg\n", "a\\b.jpg"])
def test_score_with_a_path_is_400(api, image):
    assert api.post("/api/score", json={"text": "a dog", "image": image}).status_code == 400


def test_score_bad_bodies(api, search_setup):
    assert api.post("/api/score", json={"text": "a dog", "image": "unknown.jpg"}).status_code == 404
    assert api.post("/api/score", json={"text": "", "image": search_setup.searchable[0]}).status_code == 422
    assert api.post("/api/score", json={"text": "  ", "image": search_setup.searchable[0]}).status_code == 400
    assert api.post("/api/score", json={"text": "x" * 501, "image": search_setup.searchable[0]}).status_code == 422
    assert api.post("/api/score", json={"image": search_setup.searchable[0]}).status_code == 422


def test_healthz_and_page(api, search_setup):
    health = api.get("/healthz").json()
    assert health["status"] == "ok" and health["gallery"] == len(search_setup.searchable)
    assert health["hidden"] == len(search_setup.flagged)
    page = api.get("/")
    assert page.status_code == 200 and 'id="search"' in page.text


def test_page_has_no_inline_script_or_style_and_its_files_are_served(api):
    import re

    page = api.get("/").text
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/search.js" defer>']
    assert "<style" not in page and " style=" not in page and " on" + "click=" not in page
    for path, kind in (("/static/search.js", "javascript"), ("/static/search.css", "text/css")):
        response = api.get(path)
        assert response.status_code == 200 and kind in response.headers["content-type"], path
        assert response.headers["x-content-type-options"] == "nosniff"
    assert api.get("/static/../app.py").status_code == 404
    assert api.get("/static/%2e%2e/app.py").status_code == 404


def test_empty_state_tells_gallery_size_hidden_count_and_the_notice(api, search_setup):
    from webapp.explain import EXAMPLE_QUERIES

    page = api.get("/").text
    searchable, hidden = len(search_setup.searchable), len(search_setup.flagged)
    assert f"<strong>{searchable}</strong> searchable" in page and f"<strong>{hidden}</strong> more" in page
    assert NOTICE in page
    for example in EXAMPLE_QUERIES:
        assert f">{example}</a>" in page
    info = api.get("/api/info").json()
    assert info["gallery"] == searchable and info["hidden"] == hidden and info["notice"] == NOTICE
    assert [b["name"] for b in info["bands"]] == ["strong", "fair", "weak"]


def test_example_queries_are_not_refused_and_find_images(api):
    from webapp.explain import EXAMPLE_QUERIES

    for example in EXAMPLE_QUERIES:
        body = api.get("/api/search", params={"q": example}).json()
        assert body["refused"] is False and len(body["results"]) == 5, example


def test_results_carry_their_own_captions_and_hidden_images_never_do(api, searcher, search_setup):
    from tasks.ingest.tables import caption_image

    body = api.get("/api/search", params={"q": "a man walks on the grass", "k": 100}).json()
    assert len(body["results"]) == len(search_setup.searchable)
    texts = pd.concat(
        [pd.read_parquet(p) for p in search_setup.workspace.datasets.glob("*/train.parquet")]
        + [pd.read_parquet(p) for p in search_setup.workspace.datasets.glob("*/queries.parquet")]
    ).drop_duplicates("query_id")
    own = texts.assign(image=caption_image(texts["query_id"])).groupby("image")["query_text"].apply(set)
    with_captions = 0
    for hit in body["results"]:
        assert set(hit["captions"]) <= own.get(hit["image"], set()), hit
        with_captions += bool(hit["captions"])
    assert with_captions >= len(body["results"]) // 2  # the gallery is the sample's own images
    # a hidden image gets no captions even when asked by name, and a copy under another name gets none either
    hidden = list(search_setup.flagged["image"])
    assert searcher.captions_of(hidden) == {name: [] for name in hidden}
    assert NOTICE not in str(body) and not any(h["image"] in hidden for h in body["results"])


def test_score_bands_are_ordered_and_cover_the_unit_interval():
    from webapp.explain import NO_MATCH, SCORE_BANDS, band_of

    floors = [b.at_least for b in SCORE_BANDS]
    assert floors == sorted(floors, reverse=True) and all(0 < f < 1 for f in floors)
    assert band_of(1.0) is SCORE_BANDS[0] and band_of(0.0) is NO_MATCH
    for band in SCORE_BANDS:
        assert band_of(band.at_least) is band


def test_missing_champion_is_503(tmp_path):
    from fastapi.testclient import TestClient

    from tasks.search.searcher import Searcher
    from tasks.workspace import Workspace
    from webapp.app import create_app

    client = TestClient(create_app(lambda: Searcher.from_workspace(Workspace(tmp_path / "empty"))))
    response = client.get("/api/search", params={"q": "a dog"})
    assert response.status_code == 503 and "no champion" in response.json()["detail"]


SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def test_every_response_carries_the_security_headers(api, search_setup):
    responses = [
        api.get("/"),
        api.get("/api/search", params={"q": "a dog"}),
        api.get(f"/images/{search_setup.searchable[0]}"),
        api.get("/images/nope.jpg"),
        api.get("/api/search", params={"q": "a dog", "k": 0}),
        api.get("/healthz"),
        api.post("/api/score", json={"text": "a dog", "image": search_setup.searchable[0]}),
        api.get("/api/search", params={"q": "a" * 9000}),
        api.post("/api/score", content=b"{" + b" " * 20000 + b"}", headers={"content-type": "application/json"}),
    ]
    for response in responses:
        for name, value in SECURITY.items():
            assert response.headers.get(name) == value, (response.request.url, name)
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    page_csp = responses[0].headers["content-security-policy"]
    assert "script-src 'self'" in page_csp and "style-src 'self'" in page_csp
    assert [r.status_code for r in responses[-2:]] == [414, 413]


def test_answers_name_the_model_and_index_that_answered(api, searcher):
    response = api.get("/api/search", params={"q": "a dog"})
    assert response.headers["x-imgsearch-model"] == searcher.record.version
    assert response.headers["x-imgsearch-index"] == searcher.index.version
    health = api.get("/healthz").json()
    assert health["model_version"] == searcher.record.version and health["index_version"] == searcher.index.version
    assert health["dataset_version"] == searcher.record.data_version and health["last_reload_error"] is None


@pytest.mark.parametrize("q", ["\u200b", "\u200b\u200c\u200d\u2060\ufeff", " \u00ad ", "\u180e\u200b "])
def test_a_query_of_invisible_characters_is_the_empty_query_error(api, q):
    response = api.get("/api/search", params={"q": q})
    assert response.status_code == 400 and "empty" in response.json()["detail"]
    body = api.post("/api/score", json={"text": q, "image": "x.jpg"})
    assert body.status_code == 400


def test_gallery_names_with_spaces_and_non_ascii_are_served(search_setup, tmp_path):
    import shutil
    from urllib.parse import quote

    from fastapi.testclient import TestClient

    from tasks.search.gallery import index_folder
    from tasks.search.searcher import Searcher
    from webapp.app import create_app

    folder = tmp_path / "names"
    folder.mkdir()
    names = ["a b.jpg", "ümlaut.jpg", "日本 #1.jpg", "100%.jpg"]
    for source, name in zip(search_setup.searchable, names, strict=False):
        shutil.copy2(search_setup.gallery / source, folder / name)
    index_folder(folder, "names", search_setup.workspace)
    searcher = Searcher.from_workspace(search_setup.workspace, index_name="names")
    assert sorted(searcher.index.images) == sorted(names)
    client = TestClient(create_app(lambda: searcher))
    hits = client.get("/api/search", params={"q": "a dog", "k": 10}).json()["results"]
    assert sorted(h["image"] for h in hits) == sorted(names)
    for hit in hits:
        assert hit["url"] == "/images/" + quote(hit["image"], safe="") and hit["url"].isascii()
        image = client.get(hit["url"])
        assert image.status_code == 200 and image.content[:2] == b"\xff\xd8", hit
        score = client.post("/api/score", json={"text": "a dog", "image": hit["image"]}).json()
        assert score["refused"] is False and 0.0 <= score["score"] <= 1.0


def test_api_score_never_writes_the_embedding_cache(api, search_setup):
    cache = search_setup.workspace.root / "cache"

    def listing() -> dict:
        return {str(p): p.stat().st_mtime_ns for p in cache.rglob("*")}

    before = listing()
    for k in range(5):
        body = api.post("/api/score", json={"text": f"a brand new text {k}", "image": search_setup.searchable[k]})
        assert body.status_code == 200 and body.json()["score"] is not None
    assert listing() == before


def test_api_score_agrees_with_scoring_the_file(api, searcher, search_setup):
    for name in search_setup.searchable[:3]:
        served = api.post("/api/score", json={"text": "a dog on the grass", "image": name}).json()["score"]
        direct = searcher.score("a dog on the grass", search_setup.gallery / name).score
        assert served == pytest.approx(direct, abs=1e-5)


def test_score_page_renders_the_form_its_script_and_the_gallery_names(api, search_setup):
    import re

    page = api.get("/score")
    assert page.status_code == 200 and 'id="score-form"' in page.text
    assert re.findall(r"<script[^>]*>", page.text) == ['<script src="/static/score.js" defer>']
    assert "<style" not in page.text and " style=" not in page.text
    assert (
        "content-security-policy" in page.headers and "'unsafe-inline'" not in page.headers["content-security-policy"]
    )
    # the gallery's searchable names are offered; hidden images are not
    offered = set(re.findall(r'<option value="([^"]+)">', page.text))
    assert offered == set(search_setup.searchable) and not offered & set(search_setup.flagged)
    assert "strong match" in page.text and "not scored" in page.text
    script = api.get("/static/score.js")
    assert script.status_code == 200 and "/api/score" in script.text and "innerHTML" not in script.text


def test_score_answer_says_what_the_score_means(api, search_setup):
    from webapp.explain import band_of

    body = api.post("/api/score", json={"text": "a dog on the grass", "image": search_setup.searchable[0]}).json()
    band = band_of(body["score"])
    assert (body["band"], body["band_label"], body["band_meaning"]) == (band.name, band.label, band.meaning)
    refused = api.post("/api/score", json={"text": "two boys playing", "image": search_setup.searchable[0]}).json()
    assert refused["refused"] and "band" not in refused and "children" in refused["reason"]


def test_score_page_without_a_champion_says_why(tmp_path):
    from fastapi.testclient import TestClient

    from tasks.search.searcher import Searcher
    from tasks.workspace import Workspace
    from webapp.app import create_app

    client = TestClient(create_app(lambda: Searcher.from_workspace(Workspace(tmp_path / "empty"))))
    page = client.get("/score")
    assert page.status_code == 200 and "Scoring is not available yet" in page.text and "no champion" in page.text


def _upload(api, text: str, data: bytes):
    return api.post("/api/score/upload", params={"text": text}, content=data)


def test_score_an_uploaded_image(api, search_setup):
    """An upload is scored like the same gallery file (same vectors); a new file leaves nothing in the cache."""
    import hashlib
    import io

    from PIL import Image

    from tasks.embed.cache import EmbeddingCache

    name = search_setup.searchable[0]
    uploaded = _upload(api, "a dog on the grass", (search_setup.gallery / name).read_bytes())
    assert uploaded.status_code == 200, uploaded.text
    body = uploaded.json()
    by_name = api.post("/api/score", json={"text": "a dog on the grass", "image": name}).json()
    assert body["refused"] is False and body["image"] == "uploaded image" and "imgsearch-upload" not in uploaded.text
    assert body["score"] == pytest.approx(by_name["score"], abs=1e-6) and body["band"] == by_name["band"]

    buffer = io.BytesIO()
    Image.open(search_setup.gallery / name).transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(buffer, "PNG")
    new = buffer.getvalue()
    answer = _upload(api, "a dog on the grass", new)
    assert answer.status_code == 200 and (answer.json()["refused"] or 0.0 <= answer.json()["score"] <= 1.0)
    digest = hashlib.sha256(new).hexdigest()
    for encoder_id in ("fake-image", "fake-text"):
        assert EmbeddingCache.for_workspace(search_setup.workspace, encoder_id).missing([digest]) == [digest]


@pytest.mark.parametrize("source", ["captions", "detector"])
def test_an_uploaded_copy_of_a_hidden_image_is_refused(api, search_setup, source):
    for name in search_setup.flagged_by(source)[:3]:
        body = _upload(api, "a dog on the grass", (search_setup.gallery / name).read_bytes()).json()
        assert body["refused"] is True and body["score"] is None and body["notice"] == NOTICE, name


def test_upload_with_a_child_text_is_refused(api, search_setup):
    body = _upload(api, "a little girl", (search_setup.gallery / search_setup.searchable[0]).read_bytes()).json()
    assert body["refused"] is True and body["reason"].startswith("text about children")


def test_upload_bad_requests(api, search_setup):
    image = (search_setup.gallery / search_setup.searchable[0]).read_bytes()
    assert _upload(api, "a dog", b"").status_code == 400
    not_image = _upload(api, "a dog", b"this is not a picture")
    assert not_image.status_code == 400 and "not an image" in not_image.json()["detail"]
    assert _upload(api, "   ", image).status_code == 400
    assert api.post("/api/score/upload", content=image).status_code == 422  # no text
    too_big = _upload(api, "a dog", image + b"\0" * (8 * 1024 * 1024))
    assert too_big.status_code == 413 and "8388608" in too_big.text
    # the JSON route keeps its small limit
    assert api.post("/api/score", content=b"x" * (17 * 1024)).status_code == 413


def test_reports_are_served_with_their_own_policy(api, search_setup):
    """/reports/ serves the workspace's EDA and training pages and plots, and nothing else."""
    reports = search_setup.workspace.reports
    eda = sorted((reports / "eda").glob("*/report.html"))[0]
    version = eda.parent.name
    page = api.get(f"/reports/eda/{version}/report.html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "style-src 'unsafe-inline'" in csp and "script-src" not in csp and "default-src 'none'" in csp
    plot = sorted(eda.parent.glob("*.png"))[0].name
    png = api.get(f"/reports/eda/{version}/{plot}")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    assert api.get("/reports/training/latest.html").status_code == 200
    (eda.parent / "notes.txt").write_text("not a report")
    for bad in [
        f"/reports/eda/{version}/notes.txt",  # only .html and .png
        "/reports/eda/report.html",  # eda pages sit in a dataset version's folder
        f"/reports/eda/{version}/missing.html",
        "/reports/data_docs/index.html",  # other folders of reports/ are not served
        f"/reports/eda/{version}/..%2F..%2Fsafety%2Fx.html",
        "/reports/eda/..%2F../%2E%2E/x.html",
        "/reports/training/../../index/gallery/images.parquet",
    ]:
        assert api.get(bad).status_code == 404, bad
    assert "content-security-policy" in api.get("/").headers  # the pages keep theirs
    assert "'unsafe-inline'" not in api.get("/").headers["content-security-policy"]


def test_the_eda_link_artifact_points_at_the_served_report(monkeypatch):
    from tasks.eda.tasks import report_url

    assert report_url("eda/v1/report.html") == "http://127.0.0.1:8000/reports/eda/v1/report.html"
    monkeypatch.setenv("IMGSEARCH_PUBLIC_URL", "https://search.example.org/")
    assert report_url("eda/v1/report.html") == "https://search.example.org/reports/eda/v1/report.html"
