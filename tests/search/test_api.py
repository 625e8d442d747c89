"""The web API over a real (fake-encoder) champion and gallery: shapes, bounds, refusals, image serving."""

from __future__ import annotations

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
    for hit in body["results"]:
        assert set(hit) == {"image", "score", "url"}
        assert hit["image"] in search_setup.searchable and hit["url"] == f"/images/{hit['image']}"


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


def test_missing_champion_is_503(tmp_path):
    from fastapi.testclient import TestClient

    from tasks.search.searcher import Searcher
    from tasks.workspace import Workspace
    from webapp.app import create_app

    client = TestClient(create_app(lambda: Searcher.from_workspace(Workspace(tmp_path / "empty"))))
    response = client.get("/api/search", params={"q": "a dog"})
    assert response.status_code == 503 and "no champion" in response.json()["detail"]
