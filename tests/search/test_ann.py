"""The approximate index: parameters from the gallery size, and the child-safety guarantee for every index kind.

Synthetic clustered vectors stand in for a gallery; "flagged" images get no row (as the indexer does), some
rows are removed by an incremental update, and random queries (plus queries aimed straight at the flagged and
removed vectors) must never bring any of them back.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

KINDS = ["exact", "ivf-flat", "ivf-sq8", "ivf-pq", "ivf-fastscan"]
DIM = 32
CENTRES = 20


def gallery(images: list[str], vectors: np.ndarray, flagged: list[str]):
    from tasks.search.index import GalleryIndex

    return GalleryIndex(
        folder="/nowhere",
        images=images,
        embeddings=None,
        flagged=pd.DataFrame({"image": flagged, "source": "detector", "detail": ""}),
        image_encoder="fake-image",
        projected=vectors,
        projected_for="m1",
        model_version="m1",
        ids=np.arange(len(images), dtype=np.int64),
        next_id=len(images),
        stamps=np.zeros((len(images), 2), dtype=np.int64),
    )


@pytest.fixture(autouse=True)
def _one_faiss_thread():
    import faiss

    faiss.omp_set_num_threads(1)


def test_params_follow_the_gallery_size_and_can_be_overridden():
    from tasks.search.ann import EXACT_BELOW, AnnParams

    assert AnnParams().resolve(EXACT_BELOW - 1).kind == "exact"
    big = AnnParams().resolve(1_000_000)
    assert (big.kind, big.nlist) == ("ivf-sq8", 4000) and 1 <= big.nprobe < big.nlist
    mine = AnnParams(kind="ivf-flat", nlist=64, nprobe=8).resolve(10_000)
    assert (mine.kind, mine.nlist, mine.nprobe) == ("ivf-flat", 64, 8)
    assert AnnParams(kind="ivf-flat").resolve(50).nlist == 1  # never more lists than the data can train
    with pytest.raises(ValueError):
        AnnParams(kind="hnsw")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        AnnParams(nprobe=0)


def test_auto_switches_to_product_quantized_codes_when_8_bit_codes_would_not_fit():
    from tasks.search.ann import PQ_MIN_IMAGES, SQ8_CODE_BUDGET, AnnParams, pq_code_bytes

    # 128-d at 10M: 1.2 GiB of 8-bit codes, under the budget; 384-d (the locked text tower) at 10M: 3.6 GiB
    assert AnnParams().resolve(10_000_000, 128).kind == "ivf-sq8"
    big = AnnParams().resolve(10_000_000, 384)
    assert (big.kind, big.pq_bytes, big.candidates, big.dim) == ("ivf-fastscan", 96, 100, 384)
    assert AnnParams().resolve(SQ8_CODE_BUDGET // 384, 384).kind == "ivf-sq8"
    assert AnnParams().resolve(SQ8_CODE_BUDGET // 384 + 1, 384).kind == "ivf-fastscan"
    # explicit settings win; too few images to train 256-code books fall back to 8-bit codes
    assert AnnParams(kind="ivf-pq", pq_bytes=48, candidates=40).resolve(300_000, 384).pq_bytes == 48
    assert AnnParams(kind="ivf-pq").resolve(PQ_MIN_IMAGES - 1, 384).kind == "ivf-sq8"
    with pytest.raises(ValueError, match="must divide"):
        AnnParams(kind="ivf-pq", pq_bytes=50).resolve(300_000, 384)
    assert [pq_code_bytes(d) for d in (32, 128, 384, 1280, 100)] == [8, 32, 96, 320, 25]
    # fast-scan codes: the same bytes an image, as two 4-bit codes a byte, so twice the bytes must divide the dimension
    assert AnnParams(kind="ivf-pq").resolve(10_000_000, 384).candidates == 20
    assert [pq_code_bytes(d, 2) for d in (32, 128, 384, 1280, 100)] == [8, 32, 96, 320, 25]
    assert pq_code_bytes(90, 2) == 15 and pq_code_bytes(30, 2) == 5  # 30 and 10 codes of 3 dimensions
    with pytest.raises(ValueError, match=r"2 × pq_bytes \(80 4-bit codes\) must divide"):
        AnnParams(kind="ivf-fastscan", pq_bytes=40).resolve(300_000, 384)
    assert AnnParams(kind="ivf-fastscan").resolve(PQ_MIN_IMAGES - 1, 384).kind == "ivf-sq8"
    # an index written before the dimension was recorded resolves as 8-bit codes: no needless rebuild
    old = {"kind": "ivf-sq8", "nlist": 12649, "nprobe": 1582, "candidates": 4, "trained_for": 10_000_000}
    assert AnnParams().mismatch(old, 10_000_000) == ""
    pq = AnnParams().resolve(10_000_000, 384).as_dict()
    assert AnnParams().mismatch(pq, 10_000_000) == ""
    assert "96-byte codes, the run asks for 48" in AnnParams(pq_bytes=48).mismatch(pq, 10_000_000)


def test_mismatch_names_what_an_explicit_request_would_change():
    from tasks.search.ann import AnnParams

    ivf = {"kind": "ivf-sq8", "nlist": 4000, "nprobe": 500, "candidates": 4, "trained_for": 900_000}
    # automatic settings for a grown gallery keep the trained lists: no reason to rebuild
    assert AnnParams().mismatch(ivf, 1_000_000) == ""
    assert AnnParams(kind="ivf-sq8").mismatch(ivf, 1_000_000) == ""
    assert "searched ivf-sq8, the run asks for exact" in AnnParams(kind="exact").mismatch(ivf, 1_000_000)
    assert "asks for ivf-flat" in AnnParams(kind="ivf-flat").mismatch(ivf, 1_000_000)
    assert "4000 IVF lists, the run asks for 1000" in AnnParams(nlist=1000).mismatch(ivf, 1_000_000)
    assert "probes 500 lists, the run asks for 64" in AnnParams(nprobe=64).mismatch(ivf, 1_000_000)
    assert AnnParams(nprobe=10**6).mismatch({**ivf, "nprobe": 4000}, 1_000_000) == ""  # capped at nlist
    assert "re-scores 4 candidates" in AnnParams(candidates=8).mismatch(ivf, 1_000_000)
    # an exact index: only the kind matters; an index.json from before ANN had no "ann" and was exact
    assert AnnParams(nlist=8).mismatch({"kind": "exact"}, 1000) == ""
    assert "asks for ivf-flat" in AnnParams(kind="ivf-flat").mismatch(None, 1000)


@pytest.mark.parametrize("kind", KINDS)
def test_no_flagged_or_removed_image_is_ever_returned(kind, tmp_path, clustered):
    """Build, remove some, add some (flagged ones among the new files get no row), save, load: random queries
    and queries that are the hidden vectors themselves return only searchable images."""
    from tasks.search.ann import AnnParams, ResolvedAnn, lookup_for
    from tasks.search.index import AddedImages, GalleryIndex, apply_changes, with_lookup

    vectors = clustered(3000, seed=1, dim=DIM, centres=CENTRES)
    names = [f"img_{i:05d}.jpg" for i in range(3000)]
    flagged = set(names[::10])  # 300 images shown children: no vectors, ever
    first = [i for i in range(2500) if names[i] not in flagged]
    params = AnnParams(kind=kind, nlist=16, nprobe=4, exact_below=0)
    index = with_lookup(gallery([names[i] for i in first], vectors[first], sorted(flagged)), params)
    assert index.ann["kind"] == kind

    rng = np.random.default_rng(2)
    keep = rng.random(len(first)) > 0.1  # about 10% of the files are deleted
    removed = {index.images[i] for i in np.flatnonzero(~keep)}
    new = [i for i in range(2500, 3000) if names[i] not in flagged]
    added = AddedImages([names[i] for i in new], None, vectors[new], np.zeros((len(new), 2), np.int64))
    updated = apply_changes(index, keep, added, index.flagged, params)
    assert (updated.ivf is not None) == (kind != "exact")
    if updated.ivf is not None:
        # removed ids left the faiss index too, or stay as counted tombstones where faiss cannot remove them
        tombstones = updated.ann["tombstones"]
        assert updated.ivf.ntotal == len(updated.images) + tombstones
        assert (tombstones > 0) == (kind == "ivf-fastscan")
    # the added images got new ids after every id ever given, none of a removed image's
    assert updated.row_ids[-len(new) :].tolist() == list(range(len(first), len(first) + len(new)))
    assert len(set(updated.row_ids.tolist())) == len(updated.row_ids)

    updated.save(tmp_path / "gallery")
    loaded = GalleryIndex.load(tmp_path / "gallery")
    lookup = lookup_for(loaded.projected, loaded.row_ids, ResolvedAnn.from_dict(loaded.ann), loaded.ivf)
    assert lookup.kind == kind

    hidden = flagged | removed
    queries = np.vstack(
        [clustered(200, seed=3, dim=DIM, centres=CENTRES), vectors[[names.index(n) for n in sorted(hidden)]]]
    )
    for query in queries:
        rows, cosines = lookup.search(query, 10)
        returned = {loaded.images[r] for r in rows}
        assert len(rows) == 10 and not returned & hidden
        assert np.all(np.diff(cosines) <= 1e-6)  # best first, exact cosines
    # an image added incrementally is found: its own vector ranks it first
    for i in new[:20]:
        rows, _ = lookup.search(vectors[i], 1)
        assert loaded.images[rows[0]] == names[i]


def test_fast_scan_lists_keep_tombstones_until_they_pass_their_share_then_are_refilled(clustered):
    """faiss cannot remove ids from fast-scan lists without corrupting them, so removals are tombstones, and the
    lists are refilled (same training) once tombstones pass TOMBSTONE_SHARE of the entries."""
    from tasks.search.ann import TOMBSTONE_SHARE, AnnParams, ResolvedAnn, lookup_for
    from tasks.search.index import AddedImages, apply_changes, with_lookup

    vectors = clustered(3000, seed=11, dim=DIM, centres=CENTRES)
    names = [f"img_{i:05d}.jpg" for i in range(3000)]
    params = AnnParams(kind="ivf-fastscan", nlist=16, nprobe=4, exact_below=0)
    index = with_lookup(gallery(names[:2000], vectors[:2000], []), params)
    centroids = index.ivf.quantizer.reconstruct_n(0, 16)
    none = AddedImages([], None, np.zeros((0, DIM), np.float32), np.zeros((0, 2), np.int64))

    few = np.arange(2000) % 20 != 0  # 100 removed: 5 % of the entries
    after = apply_changes(index, few, none, index.flagged, params)
    assert after.ann["tombstones"] == 100 and after.ivf.ntotal == 2000
    many = np.arange(1900) % 10 != 0  # 190 more: 290 of 2000 entries, past the share
    assert 290 > TOMBSTONE_SHARE * 2000
    added = AddedImages(names[2000:2100], None, vectors[2000:2100], np.zeros((100, 2), np.int64))
    refilled = apply_changes(after, many, added, after.flagged, params)
    assert refilled.ann["tombstones"] == 0 and refilled.ivf.ntotal == len(refilled.images) == 1710 + 100
    assert np.array_equal(refilled.ivf.quantizer.reconstruct_n(0, 16), centroids)  # refilled, not retrained
    lookup = lookup_for(refilled.projected, refilled.row_ids, ResolvedAnn.from_dict(refilled.ann), refilled.ivf)
    for row in range(0, len(refilled.images), 37):  # every image still in the gallery is found by its own vector
        assert lookup.search(np.asarray(refilled.projected[row]), 1)[0][0] == row


def test_auto_keeps_an_ivf_pq_index_it_built_before_it_chose_fast_scan(clustered, monkeypatch):
    """Past the 8-bit budget auto now picks ivf-fastscan; an ivf-pq index it built before is updated, not rebuilt,
    until a kind is asked for."""
    import tasks.search.ann as ann_module
    from tasks.search.ann import AnnParams
    from tasks.search.index import AddedImages, apply_changes, with_lookup

    monkeypatch.setattr(ann_module, "SQ8_CODE_BUDGET", 1000)  # this small gallery is "past the budget"
    vectors = clustered(2500, seed=13, dim=DIM, centres=CENTRES)
    names = [f"img_{i:05d}.jpg" for i in range(2500)]
    old = with_lookup(gallery(names[:2000], vectors[:2000], []), AnnParams(kind="ivf-pq", nlist=16, exact_below=0))
    auto = AnnParams(exact_below=0)
    assert auto.resolve(2500, DIM).kind == "ivf-fastscan"
    assert auto.mismatch(old.ann, 2000) == ""
    assert "searched ivf-pq, the run asks for ivf-fastscan" in AnnParams(kind="ivf-fastscan").mismatch(old.ann, 2000)
    trained = old.ivf
    added = AddedImages(names[2000:], None, vectors[2000:], np.zeros((500, 2), np.int64))
    grown = apply_changes(old, np.ones(2000, dtype=bool), added, old.flagged, auto)
    assert grown.ivf is trained and grown.ivf.ntotal == 2500  # added to, not rebuilt
    assert (grown.ann["kind"], grown.ann["candidates"]) == ("ivf-pq", 20)


def test_ids_the_gallery_no_longer_holds_are_filtered_even_if_faiss_still_has_them(clustered):
    """Defence in depth: an IVF index that (wrongly) still holds hidden ids never returns their images."""
    from tasks.search.ann import AnnParams, IvfLookup, build_ivf

    vectors = clustered(2000, seed=4, dim=DIM, centres=CENTRES)
    every = np.arange(2000, dtype=np.int64)
    ann = AnnParams(kind="ivf-flat", nlist=8, nprobe=8).resolve(2000)
    ivf = build_ivf(vectors, every, ann)  # all 2000 ids, flagged ones included
    live = every[every % 7 != 0]
    lookup = IvfLookup(ivf, vectors[live], live, ann)
    for query in vectors[::7][:100]:  # aimed at the hidden ones
        rows, _ = lookup.search(query, 10)
        assert not set(live[rows]) & set(every[every % 7 == 0])


@pytest.mark.parametrize("kind", ["ivf-flat", "ivf-sq8", "ivf-pq", "ivf-fastscan"])
def test_ivf_recall_against_exact_search(kind, clustered):
    from tasks.search.ann import AnnParams, ExactLookup, lookup_for
    from tasks.search.index import with_lookup

    vectors = clustered(5000, seed=5, dim=DIM, centres=CENTRES)
    index = with_lookup(
        gallery([f"{i}.jpg" for i in range(5000)], vectors, []), AnnParams(kind=kind, nlist=32, nprobe=8)
    )
    from tasks.search.ann import ResolvedAnn

    ivf = lookup_for(vectors, index.row_ids, ResolvedAnn.from_dict(index.ann), index.ivf)
    exact = ExactLookup(vectors)
    queries = clustered(100, seed=6, dim=DIM, centres=CENTRES)
    recall = np.mean([len(set(ivf.search(q, 10)[0]) & set(exact.search(q, 10)[0])) / 10 for q in queries])
    assert recall >= 0.9, recall


def test_a_large_growth_retrains_the_lists(clustered):
    from tasks.search.ann import AnnParams
    from tasks.search.index import AddedImages, apply_changes, with_lookup

    vectors = clustered(5000, seed=7, dim=DIM, centres=CENTRES)
    params = AnnParams(kind="ivf-flat", nlist=8)
    small = with_lookup(gallery([f"{i}.jpg" for i in range(500)], vectors[:500], []), params)
    grown = apply_changes(
        small,
        np.ones(500, dtype=bool),
        AddedImages([f"{i}.jpg" for i in range(500, 5000)], None, vectors[500:], np.zeros((4500, 2), np.int64)),
        small.flagged,
        params,
    )
    assert grown.ann["trained_for"] == 5000 and grown.ivf.ntotal == 5000
