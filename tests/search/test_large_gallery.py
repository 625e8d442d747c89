"""Memory-bounded paths for large galleries, at small sizes: names as one Arrow array, memory-mapped vectors read
in blocks (never made resident), the IVF built and an update written from a mapped file, and the child-safety
guarantee after an update of a loaded index."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

DIM = 16
CENTRES = 12


@pytest.fixture(autouse=True)
def _one_faiss_thread():
    import faiss

    faiss.omp_set_num_threads(1)


def mapped(tmp_path, vectors: np.ndarray, name: str = "v.npy") -> np.ndarray:
    np.save(tmp_path / name, vectors)
    return np.load(tmp_path / name, mmap_mode="r")


def test_image_names_behave_like_a_list():
    from tasks.search.names import ImageNames

    plain = [f"img_{i:03d}.jpg" for i in range(200)]
    names = ImageNames(plain)
    assert len(names) == 200 and names[0] == "img_000.jpg" and names[-1] == "img_199.jpg"
    assert names[5:8] == ["img_005.jpg", "img_006.jpg", "img_007.jpg"]
    assert list(names) == plain and names == plain and plain == names and names != plain[:-1]
    assert "img_010.jpg" in names and "nope.jpg" not in names
    with pytest.raises(IndexError):
        names[200]
    picked = names.take(np.array([3, 1]))
    assert picked == ["img_003.jpg", "img_001.jpg"]
    assert picked.extend(["new.jpg"]) == ["img_003.jpg", "img_001.jpg", "new.jpg"]
    assert picked == ["img_003.jpg", "img_001.jpg"]  # extend makes a new sequence
    assert ImageNames([]) == [] and not ImageNames([])
    assert {name: i for i, name in enumerate(names)}["img_150.jpg"] == 150


def test_mapped_vectors_are_read_in_blocks_with_the_same_values(tmp_path, clustered):
    from tasks.search.ann import _mapped_file, iter_rows, sample_rows

    vectors = clustered(2500, seed=1, dim=DIM, centres=CENTRES)
    mm = mapped(tmp_path, vectors)
    assert _mapped_file(mm) is not None and _mapped_file(mm[10:]) is None and _mapped_file(vectors) is None
    for source in (mm, mm[7:], vectors):
        blocks = list(iter_rows(source, chunk=1000))
        assert [start for start, _ in blocks] == list(range(0, len(source), 1000))
        assert all(b.dtype == np.float32 and b.flags.c_contiguous for _, b in blocks)
        assert np.array_equal(np.vstack([b for _, b in blocks]), np.asarray(source))
    # the training sample is the same rows whether the vectors are mapped or in memory
    assert np.array_equal(sample_rows(mm, 300, seed=4), sample_rows(vectors, 300, seed=4))


def _rss_file_kib() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise AssertionError("no RssFile in /proc/self/status")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_a_pass_over_a_mapped_file_does_not_make_it_resident(tmp_path):
    """Read through the mapping, the file's pages count in the process's resident memory (a 10M-image gallery
    would show 5 GiB); `iter_rows` reads with plain reads, so they do not."""
    from tasks.search.ann import iter_rows

    n = 32 * 2**20 // (DIM * 4)  # 32 MiB
    mm = mapped(tmp_path, np.ones((n, DIM), np.float32))
    before = _rss_file_kib()
    total = sum(float(block.sum()) for _, block in iter_rows(mm, chunk=50_000))
    after_reads = _rss_file_kib()
    assert total == n * DIM
    assert after_reads - before < 8 * 1024, (before, after_reads)
    assert float(np.asarray(mm).sum()) == n * DIM  # the same pass through the mapping
    assert _rss_file_kib() - after_reads > 24 * 1024  # ... does count: the measure above is real


@pytest.mark.parametrize("kind", ["ivf-flat", "ivf-sq8"])
def test_an_ivf_built_from_a_mapped_file_equals_one_built_in_memory(tmp_path, kind, clustered):
    from tasks.search.ann import AnnParams, build_ivf

    vectors = clustered(3000, seed=2, dim=DIM, centres=CENTRES)
    ann = AnnParams(kind=kind, nlist=16, nprobe=4).resolve(3000)
    ids = np.arange(3000, dtype=np.int64) * 3
    a, b = build_ivf(vectors, ids, ann), build_ivf(mapped(tmp_path, vectors), ids, ann)
    queries = clustered(50, seed=3, dim=DIM, centres=CENTRES)
    da, ia = a.search(queries, 10)
    db, ib = b.search(queries, 10)
    assert np.array_equal(ia, ib) and np.allclose(da, db)


def test_an_update_of_a_loaded_index_stays_on_disk_and_never_returns_hidden_images(tmp_path, clustered):
    """Load (vectors mapped), remove some and add some (flagged new files get no row): the next vectors are
    written to a temporary mapped file, not concatenated in memory, and saved, loaded and searched again, no
    removed or flagged image comes back. The temporary file goes when the index does."""
    from tasks.search.ann import AnnParams, ResolvedAnn, lookup_for
    from tasks.search.index import AddedImages, GalleryIndex, apply_changes, with_lookup
    from tasks.search.names import ImageNames

    vectors = clustered(3000, seed=5, dim=DIM, centres=CENTRES)
    names = [f"img_{i:05d}.jpg" for i in range(3000)]
    flagged = set(names[::9])
    first = [i for i in range(2400) if names[i] not in flagged]
    params = AnnParams(kind="ivf-sq8", nlist=16, nprobe=4, exact_below=0)
    index = GalleryIndex(
        folder="/nowhere",
        images=[names[i] for i in first],
        embeddings=vectors[first] * 2,
        flagged=pd.DataFrame({"image": sorted(flagged), "source": "detector", "detail": ""}),
        image_encoder="fake-image",
        projected=vectors[first],
        projected_for="m1",
        ids=np.arange(len(first), dtype=np.int64),
        next_id=len(first),
        stamps=np.arange(2 * len(first), dtype=np.int64).reshape(-1, 2),
    )
    with_lookup(index, params).save(tmp_path / "a")
    loaded = GalleryIndex.load(tmp_path / "a")
    assert isinstance(loaded.images, ImageNames) and loaded.images == [names[i] for i in first]
    assert np.array_equal(loaded.stamps, index.stamps) and isinstance(loaded.projected, np.memmap)

    keep = np.random.default_rng(6).random(len(first)) > 0.15
    removed = {loaded.images[int(i)] for i in np.flatnonzero(~keep)}
    new = [i for i in range(2400, 3000) if names[i] not in flagged]
    added = AddedImages([names[i] for i in new], vectors[new] * 2, vectors[new], np.ones((len(new), 2), np.int64))
    updated = apply_changes(loaded, keep, added, loaded.flagged, params)
    assert isinstance(updated.projected, np.memmap) and isinstance(updated.embeddings, np.memmap)
    temp = str(updated.projected.filename)
    assert os.path.exists(temp) and Path(temp).parent == tmp_path and Path(temp).name.startswith(".")
    expected = np.vstack([vectors[first][keep], vectors[new]])
    assert np.array_equal(np.asarray(updated.projected), expected)
    assert np.array_equal(np.asarray(updated.embeddings), expected * 2)
    assert updated.images == [n for n, k in zip(loaded.images, keep, strict=True) if k] + [names[i] for i in new]
    updated.save(tmp_path / "b")
    # saved without writing the vectors again: the temporary file is linked into the index folder
    assert os.path.samefile(temp, tmp_path / "b" / "projected.npy")
    del updated, loaded
    gc.collect()
    assert not os.path.exists(temp) and os.stat(tmp_path / "b" / "projected.npy").st_nlink == 1

    again = GalleryIndex.load(tmp_path / "b")
    lookup = lookup_for(again.projected, again.row_ids, ResolvedAnn.from_dict(again.ann), again.ivf)
    assert lookup.kind == "ivf-sq8" and again.ivf.ntotal == len(again.images) == len(expected)
    hidden = flagged | removed
    queries = np.vstack(
        [clustered(100, seed=7, dim=DIM, centres=CENTRES), vectors[[names.index(n) for n in sorted(hidden)]]]
    )
    for query in queries:
        rows, _ = lookup.search(query, 10)
        assert len(rows) == 10 and not {again.images[int(r)] for r in rows} & hidden
    for i in new[:10]:
        assert again.images[int(lookup.search(vectors[i], 1)[0][0])] == names[i]


def test_name_rows_find_every_name_and_nothing_else():
    """The searcher's name -> row map (compact for 10M names) answers exactly like a dict, also on collisions."""
    from tasks.search.names import ImageNames, NameRows

    plain = [f"img_{i:05d}.jpg" for i in range(5000)]
    for names in (plain, ImageNames(plain)):
        rows = NameRows(names)
        assert len(rows) == 5000
        assert all(rows.get(name) == i for i, name in enumerate(plain))
        assert rows.get("img_05000.jpg") is None and "img_05000.jpg" not in rows and "img_00042.jpg" in rows
        assert 42 not in rows  # type: ignore[operator]
    assert NameRows([]).get("a.jpg") is None

    class Collide(str):  # every name hashes alike: the name itself must decide
        def __hash__(self) -> int:
            return 7

    same = [Collide(f"c{i}.jpg") for i in range(50)]
    rows = NameRows(same)
    assert [rows.get(Collide(f"c{i}.jpg")) for i in range(50)] == list(range(50))
    assert rows.get(Collide("c50.jpg")) is None


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_ivf_rescoring_reads_candidate_rows_without_mapping_the_file(tmp_path, clustered):
    """Re-scoring reads the candidates with pread: results equal those over the in-memory vectors, and the
    mapped file does not become resident (through the mapping, a few scattered rows map large folios)."""
    from tasks.search.ann import AnnParams, IvfLookup, build_ivf

    n = 32 * 2**20 // (DIM * 4)  # 32 MiB of vectors
    vectors = clustered(n, seed=8, dim=DIM, centres=CENTRES)
    ann = AnnParams(kind="ivf-flat", nlist=64, nprobe=8).resolve(n)
    ids = np.arange(n, dtype=np.int64)
    ivf = build_ivf(vectors, ids, ann)
    mm = mapped(tmp_path, vectors)
    in_memory, from_file = IvfLookup(ivf, vectors, ids, ann), IvfLookup(ivf, mm, ids, ann)
    before = _rss_file_kib()
    for query in clustered(200, seed=9, dim=DIM, centres=CENTRES):
        a, b = in_memory.search(query, 10), from_file.search(query, 10)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert _rss_file_kib() - before < 4 * 1024


def test_an_update_that_only_adds_keeps_every_row_and_appends(tmp_path, clustered):
    """All rows kept (the common update): names, ids, stamps and vectors are the old ones, then the new ones."""
    from tasks.search.ann import AnnParams
    from tasks.search.index import AddedImages, GalleryIndex, apply_changes, with_lookup

    vectors = clustered(1200, seed=10, dim=DIM, centres=CENTRES)
    params = AnnParams(kind="ivf-flat", nlist=8, nprobe=8, exact_below=0)
    index = GalleryIndex(
        folder="/nowhere",
        images=[f"a{i}.jpg" for i in range(1000)],
        embeddings=None,
        flagged=pd.DataFrame({"image": [], "source": [], "detail": []}),
        image_encoder="fake-image",
        projected=vectors[:1000],
        ids=np.arange(0, 2000, 2, dtype=np.int64),
        next_id=2000,
        stamps=np.arange(2000, dtype=np.int64).reshape(-1, 2),
    )
    with_lookup(index, params).save(tmp_path / "a")
    loaded = GalleryIndex.load(tmp_path / "a")
    added = AddedImages([f"b{i}.jpg" for i in range(200)], None, vectors[1000:], np.full((200, 2), 7, np.int64))
    grown = apply_changes(loaded, np.ones(1000, dtype=bool), added, loaded.flagged, params)
    assert grown.images == [f"a{i}.jpg" for i in range(1000)] + [f"b{i}.jpg" for i in range(200)]
    assert grown.row_ids.tolist() == list(range(0, 2000, 2)) + list(range(2000, 2200))
    assert np.array_equal(grown.stamps, np.vstack([index.stamps, np.full((200, 2), 7)]))
    assert np.array_equal(np.asarray(grown.projected), vectors) and grown.ivf.ntotal == 1200


def test_a_row_sink_holds_small_arrays_in_memory_and_spills_large_ones_to_a_mapped_file(tmp_path):
    """Rows appended block by block: in memory under the limit; over it, written to a temporary .npy file whose
    header gets the final count, mapped read-only, and deleted when the array goes (or at once on an error)."""
    import gc

    from tasks.search.index import RowSink

    rows = np.arange(7 * 3, dtype=np.float32).reshape(7, 3)
    with RowSink(10, tmp_path, spill_bytes=10 * 3 * 4) as sink:
        sink.append(rows[:4])
        sink.append(rows[4:])
        small = sink.finish()
    assert not isinstance(small, np.memmap) and np.array_equal(small, rows) and not list(tmp_path.iterdir())

    with RowSink(10, tmp_path, spill_bytes=10 * 3 * 4 - 1) as sink:
        sink.append(rows[:0])  # an empty block first: the shape still comes from it
        sink.append(rows[:4])
        sink.append(rows[4:].astype(np.float64))
        big = sink.finish()
    (spilled,) = list(tmp_path.iterdir())
    assert isinstance(big, np.memmap) and big.shape == (7, 3) and np.array_equal(big, rows)
    assert spilled.name.startswith(".imgsearch-vectors-") and not big.flags.writeable
    assert np.array_equal(np.load(spilled), rows)  # a plain .npy file to any reader
    del big
    gc.collect()
    assert not list(tmp_path.iterdir())

    with pytest.raises(ValueError, match="11 rows appended to a sink for 10"):
        with RowSink(10, tmp_path, spill_bytes=0) as sink:
            sink.append(np.zeros((11, 3), np.float32))
    assert not list(tmp_path.iterdir())  # the half-written file is gone
    with RowSink(0, tmp_path, spill_bytes=0, shape=(3,)) as sink:
        assert sink.finish().shape == (0, 3)


def test_a_spilled_header_holds_a_row_count_of_any_size():
    import io

    from tasks.search.index import _NPY_HEADER_BYTES, _npy_header

    for shape in [(0, 1280), (10**7, 1280), (10**15, 4096, 3)]:
        header = _npy_header(shape)
        assert len(header) == _NPY_HEADER_BYTES
        f = io.BytesIO(header)
        assert np.lib.format.read_magic(f) == (1, 0)
        assert np.lib.format.read_array_header_1_0(f) == (shape, False, np.dtype("<f4"))
