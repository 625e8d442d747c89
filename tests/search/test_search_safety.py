"""Safe by construction: no query returns a flagged image, flagged images have no vectors, detector flags count."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tasks.safety.text_screen import NOTICE

# generic queries that match many images, children included, if nothing stopped them
GENERIC_QUERIES = [
    "a person",
    "people playing",
    "a man",
    "a woman",
    "someone running",
    "a dog",
    "a dog jumps over a fence",
    "two people on the beach",
    "a group of people",
    "a person in red",
    "playing outside",
    "a family",
    "a boat on the water",
    "a bike",
    "grass",
    "snow",
    "a ball",
    "red",
    "blue sky",
    "smiling faces",
]


def test_no_flagged_image_is_returned_for_any_query(searcher, search_setup):
    flagged = set(search_setup.flagged["image"])
    for query in GENERIC_QUERIES:
        result = searcher.get_pictures(query, k=100)
        assert not result.refused, query
        returned = {hit.image for hit in result.results}
        assert returned and not returned & flagged, query
        assert returned <= set(search_setup.searchable)


def test_every_caption_flagged_gallery_image_is_hidden(search_setup):
    by_captions = set(search_setup.caption_flags.loc[search_setup.caption_flags["flagged"], "image"])
    in_gallery = by_captions & {p.name for p in search_setup.gallery.iterdir()}
    assert in_gallery, "the sample should have captioned child images in the gallery"
    assert in_gallery <= set(search_setup.flagged["image"])
    assert not in_gallery & set(search_setup.searchable)


def test_index_holds_no_vectors_for_flagged_images(search_setup):
    from tasks.search.index import GalleryIndex

    index = GalleryIndex.load(search_setup.workspace.index_dir("gallery"))
    assert len(index.images) == len(index.embeddings) == len(index.projected)
    assert not set(index.images) & set(index.flagged["image"])
    assert len(index.images) + len(index.flagged) == len(list(search_setup.gallery.iterdir()))


def test_flagged_query_is_refused_before_any_model_work(searcher, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the text encoder ran for a refused query")

    monkeypatch.setattr(searcher, "_query_vector", boom)
    result = searcher.get_pictures("a little girl playing", 5)
    assert result.refused and result.notice == NOTICE and result.results == []


def test_detector_flags_an_uncaptioned_image_and_it_is_never_served(search_setup, tmp_path, monkeypatch):
    """A new image nobody wrote captions for, which the detector flags, is hidden like a caption-flagged one."""
    from fastapi.testclient import TestClient

    from tasks.search.gallery import index_folder
    from tasks.search.index import GalleryIndex
    from tasks.search.searcher import Searcher
    from webapp.app import create_app

    folder = tmp_path / "new_photos"
    folder.mkdir()
    detector_hidden = search_setup.flagged_by("detector")[0]
    shutil.copy2(search_setup.gallery / detector_hidden, folder / "upload_0001.jpg")  # a name no caption knows
    for name in search_setup.searchable[:5]:
        shutil.copy2(search_setup.gallery / name, folder / name)
    assert "upload_0001.jpg" not in set(search_setup.caption_flags["image"])

    summary = index_folder(folder, "uploads", search_setup.workspace)
    assert (summary.searchable, summary.flagged, summary.flagged_by) == (5, 1, {"detector": 1})
    index = GalleryIndex.load(search_setup.workspace.index_dir("uploads"))
    assert "upload_0001.jpg" not in index.images and len(index.embeddings) == 5

    searcher = Searcher.from_workspace(search_setup.workspace, index_name="uploads")
    for query in GENERIC_QUERIES:
        assert "upload_0001.jpg" not in {h.image for h in searcher.get_pictures(query, 10).results}
    assert searcher.score("a dog", folder / "upload_0001.jpg").refused
    client = TestClient(create_app(lambda: searcher))
    assert client.get("/images/upload_0001.jpg").status_code == 404
    body = client.post("/api/score", json={"text": "a dog", "image": "upload_0001.jpg"}).json()
    assert body["refused"] and body["notice"] == NOTICE


def test_scoring_an_outside_image_applies_the_detector(searcher, search_setup, tmp_path):
    """An image path outside the gallery is screened by the detector at scoring time."""
    outside = tmp_path / "elsewhere.jpg"
    shutil.copy2(search_setup.gallery / search_setup.flagged_by("detector")[0], outside)
    result = searcher.score("a dog on the grass", outside)
    assert result.refused and result.score is None and result.notice == NOTICE


def test_an_index_listing_a_flagged_image_as_searchable_is_rejected(searcher):
    from dataclasses import replace

    from tasks.search.index import SearchUnavailableError
    from tasks.search.searcher import Searcher

    # as many flagged rows as there are searchable images to relabel (the sample may flag more than it keeps)
    n = min(len(searcher.index.flagged), len(searcher.index.images))
    bad = replace(searcher.index, flagged=searcher.index.flagged.head(n).assign(image=searcher.index.images[:n]))
    with pytest.raises(SearchUnavailableError, match="flagged images as searchable"):
        Searcher(
            searcher.model,
            searcher.record,
            searcher.text_encoder,
            searcher.image_encoder,
            bad,
            searcher.content_filter,
            searcher.policy,
            searcher.workspace,
        )


def test_get_pictures_scores_match_pair_scores(searcher, search_setup):
    """The fast path (precomputed two-tower vectors) agrees with scoring each pair through the model."""
    result = searcher.get_pictures("a dog jumps over a fence", 5)
    pairs = searcher.score_pairs(
        ["a dog jumps over a fence"] * 5, [search_setup.gallery / h.image for h in result.results]
    )
    np.testing.assert_allclose([h.score for h in result.results], [p.score for p in pairs], atol=1e-5)


def test_module_level_get_pictures_and_score(search_setup):
    from tasks.search import searcher as search

    search.clear_searcher_cache()
    result = search.get_pictures("a dog", k=3, workspace=search_setup.workspace)
    assert len(result.results) == 3 and not result.refused
    assert search.cached_searcher(search_setup.workspace) is search.cached_searcher(search_setup.workspace)
    refused = search.get_pictures("kids at the park", workspace=search_setup.workspace)
    assert refused.refused and refused.notice == NOTICE and not refused.results
    pair = search.score("a dog", search_setup.gallery / search_setup.searchable[0], workspace=search_setup.workspace)
    assert 0.0 <= pair.score <= 1.0
    search.clear_searcher_cache()


def test_top_k_and_validate_query():
    from tasks.search.index import top_k
    from tasks.search.searcher import validate_query

    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.2], dtype=np.float32)
    assert top_k(scores, 3).tolist() == [1, 3, 2]
    assert top_k(scores, 10).tolist() == [1, 3, 2, 4, 0]
    assert top_k(scores, 0).tolist() == []
    assert validate_query("  a dog ", 5) == "a dog"
    for query, k in [("", 5), ("   ", 5), ("x" * 501, 5), ("a dog", 0), ("a dog", 101)]:
        with pytest.raises(ValueError):
            validate_query(query, k)


def test_ranking_on_cosines_matches_ranking_on_calibrated_scores(searcher):
    from tasks.search.index import top_k

    assert searcher._rank_on_cosine  # the two-tower champion's calibration is increasing
    for query in ["a dog jumps over a fence", "a person in red", "snow"]:
        rows, scores = searcher.rank(query, 10)
        full = searcher.query_scores(query)
        np.testing.assert_allclose(full[rows], scores, atol=1e-6)
        np.testing.assert_allclose(np.sort(full)[::-1][:10], scores, atol=1e-6)
        assert set(rows[scores > np.sort(full)[::-1][10] + 1e-6]) <= set(top_k(full, 10))


def test_a_gallery_of_only_flagged_images_returns_nothing(search_setup, tmp_path):
    from fastapi.testclient import TestClient

    from tasks.search.gallery import index_folder
    from tasks.search.searcher import Searcher
    from webapp.app import create_app

    folder = tmp_path / "all_flagged"
    folder.mkdir()
    for name in search_setup.flagged["image"][:4]:
        shutil.copy2(search_setup.gallery / name, folder / name)
    assert index_folder(folder, "all-flagged", search_setup.workspace).searchable == 0
    searcher = Searcher.from_workspace(search_setup.workspace, index_name="all-flagged")
    result = searcher.get_pictures("a person", 10)
    assert not result.refused and result.results == []
    body = TestClient(create_app(lambda: searcher)).get("/api/search", params={"q": "a person"}).json()
    assert body["results"] == [] and body["refused"] is False


def test_top_k_on_a_large_gallery_matches_a_full_sort():
    from tasks.search.index import top_k

    scores = np.random.default_rng(0).random(250_000).astype(np.float32)
    for k in (1, 10, 100):
        assert top_k(scores, k).tolist() == np.argsort(-scores, kind="stable")[:k].tolist()


def test_scoring_refuses_copies_of_flagged_images_and_caption_flagged_dataset_images(searcher, search_setup, tmp_path):
    """A renamed copy of a caption-flagged gallery image is refused even where the detector misses it, and
    so is a dataset image whose own captions mention children, in any folder."""
    from tasks.embed.cache import embed_image_files

    caption_flagged = search_setup.flagged_by("captions")
    vectors = embed_image_files(
        [search_setup.gallery / n for n in caption_flagged], searcher.image_encoder, searcher.workspace
    ).matrix
    detector = searcher.policy.detector
    hits = detector.scores(vectors) >= detector.thresholds.high_recall
    missed = [n for n, hit in zip(caption_flagged, hits, strict=True) if not hit]
    name = (missed or caption_flagged)[0]

    renamed = tmp_path / "renamed.jpg"
    shutil.copy2(search_setup.gallery / name, renamed)
    assert searcher.score("a dog on the grass", renamed).refused
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy2(search_setup.gallery / name, elsewhere / name)
    assert searcher.score("a dog on the grass", elsewhere / name).refused
    assert not searcher.score("a dog on the grass", search_setup.gallery / search_setup.searchable[0]).refused


def test_scoring_uploads_reads_the_embedding_cache_keys_once(search_setup, tmp_path, monkeypatch):
    """A served searcher opens each encoder's cache once: a later upload costs a lookup, not a read of every key."""
    from tasks.embed import cache as embedding_cache
    from tasks.search.searcher import Searcher

    reads: list[str] = []
    real = embedding_cache._read_part_keys
    monkeypatch.setattr(embedding_cache, "_read_part_keys", lambda path, enc: reads.append(enc) or real(path, enc))
    searcher = Searcher.from_workspace(search_setup.workspace)
    first, second = (tmp_path / "a.jpg", tmp_path / "b.jpg")
    shutil.copy2(search_setup.gallery / search_setup.searchable[0], first)
    shutil.copy2(search_setup.gallery / search_setup.searchable[1], second)

    assert searcher.score_uploaded_file("a dog", first).score is not None
    after_first = len(reads)
    assert searcher.score_uploaded_file("a dog", second).score is not None
    assert after_first > 0 and len(reads) == after_first
