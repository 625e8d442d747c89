"""`imgsearch index DIR` again on a changed folder: only new files are embedded, removed and replaced ones leave at
once, a new child image is hidden, and a failed update leaves the last good index."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def photos(search_setup, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in search_setup.searchable[:6]:
        shutil.copy2(search_setup.gallery / name, folder / name)
    return folder


def encoded_files(monkeypatch) -> list[str]:
    """Names of the files the image encoder is asked to embed from here on."""
    from tasks.embed import cache

    seen: list[str] = []
    real = cache.encode_image_files

    def spy(encoder, paths, *args, **kwargs):
        seen.extend(p.name for p in paths)
        return real(encoder, paths, *args, **kwargs)

    monkeypatch.setattr(cache, "encode_image_files", spy)
    return seen


@pytest.mark.parametrize("kind", ["exact", "ivf-flat", "ivf-sq8"])
def test_an_update_adds_new_files_and_drops_removed_and_flagged_ones(kind, search_setup, photos, monkeypatch):
    from tasks.search.ann import AnnParams
    from tasks.search.gallery import index_folder
    from tasks.search.index import GalleryIndex
    from tasks.search.searcher import Searcher

    ws, name = search_setup.workspace, f"photos-{kind}"
    params = AnnParams(kind=kind, exact_below=0)
    first = index_folder(photos, name, ws, ann_params=params)
    assert (first.searchable, first.incremental, first.lookup) == (6, False, kind)
    before = GalleryIndex.load(ws.index_dir(name))

    # new files: two searchable images and a child image under a name no caption knows
    child = search_setup.flagged_by("detector")[0]
    shutil.copy2(search_setup.gallery / child, photos / "upload_child.jpg")
    for new in search_setup.searchable[6:8]:
        shutil.copy2(search_setup.gallery / new, photos / new)
    gone = search_setup.searchable[0]
    (photos / gone).unlink()
    # a searchable file replaced by a child image under the same name must not keep its old vector
    replaced = search_setup.searchable[1]
    shutil.copy2(search_setup.gallery / child, photos / replaced)
    os.utime(photos / replaced, ns=(1, 1))

    seen = encoded_files(monkeypatch)
    second = index_folder(photos, name, ws, ann_params=params)
    assert second.incremental and second.lookup == kind
    assert second.changes["added"] == 2 and second.searchable == 6 - 2 + 2
    # only the files the cache had not seen were embedded (the sample's images are all cached by now)
    assert set(seen) <= {"upload_child.jpg", replaced, *search_setup.searchable[6:8]}

    after = GalleryIndex.load(ws.index_dir(name))
    hidden = {"upload_child.jpg", replaced} | set(search_setup.flagged["image"])
    assert not set(after.images) & hidden and gone not in after.images
    assert {"upload_child.jpg", replaced} <= set(after.flagged["image"])
    kept = [n for n in before.images if n in after.images]
    # stable ids: kept images keep theirs, new ones get ids never used before
    assert [int(before.row_ids[before.images.index(n)]) for n in kept] == [
        int(after.row_ids[after.images.index(n)]) for n in kept
    ]
    assert after.row_ids[-2:].min() >= before.next_id
    if kind != "exact":
        assert after.ivf.ntotal == len(after.images)

    searcher = Searcher.from_workspace(ws, index_name=name)
    assert searcher._lookup is not None and searcher._lookup.kind == kind
    for query in ["a person", "a dog", "playing outside", "red", "a family", "snow", "a ball"]:
        returned = {h.image for h in searcher.get_pictures(query, 10).results}
        assert returned == set(after.images), query  # 6 images, k=10: every searchable one, nothing else


@pytest.mark.parametrize("kind", ["exact", "ivf-sq8"])
def test_an_update_that_only_removes_keeps_the_other_vectors(kind, search_setup, photos):
    """Nothing new to embed: the kept images keep their vectors and the index its kind (they once all vanished)."""
    from tasks.search.ann import AnnParams
    from tasks.search.gallery import index_folder
    from tasks.search.index import GalleryIndex
    from tasks.search.searcher import Searcher

    ws, name = search_setup.workspace, f"photos-removal-{kind}"
    params = AnnParams(kind=kind, exact_below=0)
    index_folder(photos, name, ws, ann_params=params)
    before = GalleryIndex.load(ws.index_dir(name))
    (photos / before.images[0]).unlink()
    unchanged = index_folder(photos, name, ws, ann_params=params)
    assert unchanged.incremental and unchanged.changes["removed"] == 1 and unchanged.lookup == kind
    after = GalleryIndex.load(ws.index_dir(name))
    assert after.images == before.images[1:]
    np.testing.assert_array_equal(after.projected, before.projected[1:])
    np.testing.assert_array_equal(after.embeddings, before.embeddings[1:])
    # and a run with nothing changed at all keeps them too
    assert index_folder(photos, name, ws, ann_params=params).searchable == len(after.images)
    again = GalleryIndex.load(ws.index_dir(name))
    np.testing.assert_array_equal(again.projected, after.projected)
    returned = {h.image for h in Searcher.from_workspace(ws, index_name=name).get_pictures("a dog", 10).results}
    assert returned == set(after.images)


def test_approximate_search_over_a_small_gallery_equals_exact_search(search_setup, photos):
    """With every list probed, IVF answers exactly as the matrix product does, scores included."""
    from tasks.search.ann import AnnParams
    from tasks.search.gallery import index_folder
    from tasks.search.searcher import Searcher

    ws = search_setup.workspace
    index_folder(photos, "photos-exact", ws, ann_params=AnnParams(kind="exact"))
    index_folder(photos, "photos-ivf", ws, ann_params=AnnParams(kind="ivf-flat", exact_below=0))
    exact = Searcher.from_workspace(ws, index_name="photos-exact")
    approx = Searcher.from_workspace(ws, index_name="photos-ivf")
    for query in ["a dog", "a person in red", "snow"]:
        a, b = exact.get_pictures(query, 3), approx.get_pictures(query, 3)
        assert [h.image for h in a.results] == [h.image for h in b.results]
        np.testing.assert_allclose([h.score for h in a.results], [h.score for h in b.results], atol=1e-6)


def test_a_failed_update_leaves_the_last_good_index(search_setup, photos, monkeypatch):
    from tasks.search import gallery
    from tasks.search.gallery import index_folder
    from tasks.search.index import GalleryIndex

    ws = search_setup.workspace
    index_folder(photos, "photos-fail", ws)
    good = (ws.index_dir("photos-fail") / "index.json").read_text()
    shutil.copy2(search_setup.gallery / search_setup.searchable[7], photos / search_setup.searchable[7])

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(gallery, "update_gallery_index", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        index_folder(photos, "photos-fail", ws)
    assert (ws.index_dir("photos-fail") / "index.json").read_text() == good
    assert len(GalleryIndex.load(ws.index_dir("photos-fail")).images) == 6
    assert not [p for p in ws.index_dir("photos-fail").parent.iterdir() if p.name.endswith(".tmp")]


def test_new_safety_flags_hide_an_indexed_image_without_a_rebuild(search_setup, photos, monkeypatch):
    """When the safety decision changes, every file is decided again from cached vectors; the newly hidden
    image leaves the index, the others keep their ids."""
    from tasks.search import gallery
    from tasks.search.gallery import index_folder
    from tasks.search.index import GalleryIndex

    ws = search_setup.workspace
    index_folder(photos, "photos-flags", ws)
    before = GalleryIndex.load(ws.index_dir("photos-flags"))
    target = before.images[2]
    from tasks.safety.policy import SafetyPolicy

    decide = SafetyPolicy.decide_files

    def decide_with_a_new_flag(self, paths, features, digests=None):
        out = decide(self, paths, features, digests)
        out.loc[out["image"] == target, ["hidden", "source", "detail"]] = [True, "captions", "new human flag"]
        return out

    monkeypatch.setattr(SafetyPolicy, "decide_files", decide_with_a_new_flag)
    monkeypatch.setattr(gallery, "safety_version", lambda workspace: "new-flags")
    summary = index_folder(photos, "photos-flags", ws)
    assert summary.incremental and summary.changes["newly_hidden"] == 1
    after = GalleryIndex.load(ws.index_dir("photos-flags"))
    assert target not in after.images and target in set(after.flagged["image"])
    assert after.safety_version == "new-flags"


def test_a_folder_decided_in_chunks_is_indexed_as_in_one_piece(search_setup, photos, monkeypatch):
    """A large folder is decided a chunk at a time (the detector's features of one chunk held at once); the index
    must be the same, hidden files and all, for a build and for an update."""
    import tasks.search.index as index_module
    from tasks.search.gallery import index_folder
    from tasks.search.index import GalleryIndex

    ws = search_setup.workspace
    whole = index_folder(search_setup.gallery, "whole", ws)
    monkeypatch.setattr(index_module, "DECIDE_CHUNK", 3)
    chunked = index_folder(search_setup.gallery, "chunked", ws)
    a, b = GalleryIndex.load(ws.index_dir("whole")), GalleryIndex.load(ws.index_dir("chunked"))
    assert (chunked.searchable, chunked.flagged) == (whole.searchable, whole.flagged) and whole.flagged > 0
    assert list(a.images) == list(b.images)
    assert list(a.flagged["image"]) == list(b.flagged["image"])
    np.testing.assert_array_equal(np.asarray(a.embeddings), np.asarray(b.embeddings))
    np.testing.assert_allclose(np.asarray(a.projected), np.asarray(b.projected), rtol=1e-5, atol=1e-6)

    # an update in chunks of 2: two shown files and a child image arrive
    index_folder(photos, "photos", ws)
    monkeypatch.setattr(index_module, "DECIDE_CHUNK", 2)
    child = search_setup.flagged_by("detector")[0]
    shutil.copy2(search_setup.gallery / child, photos / "upload_child.jpg")
    for new in search_setup.searchable[6:8]:
        shutil.copy2(search_setup.gallery / new, photos / new)
    updated = index_folder(photos, "photos", ws)
    after = GalleryIndex.load(ws.index_dir("photos"))
    assert updated.incremental and updated.changes["added"] == 2 and updated.searchable == 8
    assert "upload_child.jpg" in set(after.flagged["image"]) and "upload_child.jpg" not in after.images
    rows = [list(a.images).index(n) for n in search_setup.searchable[6:8]]
    np.testing.assert_array_equal(np.asarray(after.embeddings)[-2:], np.asarray(a.embeddings)[rows])


def test_deciding_a_folder_reads_each_file_once_to_hash_it(search_setup, monkeypatch):
    """The image encoder's cache, the detector's and the decision (which matches bytes to labelled training
    images) share one hash of each file; each used to hash it again."""
    from collections import Counter

    from tasks.embed import cache
    from tasks.search.gallery import index_folder

    hashed: Counter[str] = Counter()
    real = cache.file_sha256

    def spy(path, *args, **kwargs):
        hashed[os.path.basename(path)] += 1
        return real(path, *args, **kwargs)

    monkeypatch.setattr(cache, "file_sha256", spy)
    summary = index_folder(search_setup.gallery, "hashed-once", search_setup.workspace)
    assert summary.searchable and summary.flagged
    assert set(hashed.values()) == {1} and len(hashed) == summary.searchable + summary.flagged


def test_a_build_whose_vectors_spill_to_disk_equals_one_in_memory(search_setup, monkeypatch):
    """Over `SPILL_BYTES`, a build's shown vectors and their projections go to temporary files beside the indexes
    (never all in memory), saving links them into the index folder, and they are deleted afterwards."""
    import gc

    import tasks.search.index as index_module
    from tasks.search.gallery import index_folder
    from tasks.search.index import GalleryIndex

    ws = search_setup.workspace
    index_folder(search_setup.gallery, "in-memory", ws)
    made: list[str] = []
    real = index_module.tempfile.mkstemp

    def spy(*args, **kwargs):
        fd, name = real(*args, **kwargs)
        made.append(name)
        return fd, name

    monkeypatch.setattr(index_module.tempfile, "mkstemp", spy)
    monkeypatch.setattr(index_module, "SPILL_BYTES", 0)
    index_folder(search_setup.gallery, "spilled", ws)
    assert len(made) == 2 and all(os.path.dirname(n) == str(ws.index_root) for n in made)
    gc.collect()
    assert not any(os.path.exists(n) for n in made)
    a, b = GalleryIndex.load(ws.index_dir("in-memory")), GalleryIndex.load(ws.index_dir("spilled"))
    assert list(a.images) == list(b.images) and list(a.flagged["image"]) == list(b.flagged["image"])
    np.testing.assert_array_equal(np.asarray(a.embeddings), np.asarray(b.embeddings))
    np.testing.assert_array_equal(np.asarray(a.projected), np.asarray(b.projected))


def test_a_folder_lists_its_jpeg_files_sorted_with_their_stamps(tmp_path):
    from tasks.search.index import folder_images

    for name in ["b.jpg", "a.JPEG", "c.jpeg", "notes.txt", "d.png", "photo.jpg.bak"]:
        (tmp_path / name).write_bytes(b"x" * len(name))
    (tmp_path / "dir.jpg").mkdir()  # a folder with a JPEG's name is not an image
    (tmp_path / "e.jpg").symlink_to(tmp_path / "b.jpg")  # a link to an image is one, stamped as its target
    os.utime(tmp_path / "c.jpeg", ns=(1_000_000_000, 1_700_000_000_123_456_789))

    names, stamps = folder_images(tmp_path)

    assert names == ["a.JPEG", "b.jpg", "c.jpeg", "e.jpg"]
    assert stamps.dtype == np.int64 and stamps.shape == (4, 2)
    for name, (size, mtime_ns) in zip(names, stamps, strict=True):
        stat = (tmp_path / name).stat()
        assert (size, mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    assert stamps[2, 1] == 1_700_000_000_123_456_789


def test_a_listing_sorts_names_of_any_script_as_python_does(tmp_path):
    from tasks.search.index import folder_images

    names = ["été.jpg", "Zebra.jpg", "ärger.jpg", "a.jpg", "фото.jpg", "日本.jpg", "ab.jpg", "b.jpg"]
    for i, name in enumerate(names):
        (tmp_path / name).write_bytes(b"x" * (i + 1))

    listed, stamps = folder_images(tmp_path)

    assert listed == sorted(names)
    assert [int(size) for size in stamps[:, 0]] == [(tmp_path / n).stat().st_size for n in sorted(names)]


def test_a_file_name_that_is_not_utf8_is_named_in_the_error(tmp_path):
    from tasks.search.index import folder_images

    (tmp_path / "fine.jpg").write_bytes(b"x")
    os.close(os.open(os.path.join(os.fsencode(tmp_path), b"caf\xe9.jpg"), os.O_CREAT | os.O_WRONLY))

    with pytest.raises(ValueError, match=r"caf.*\.jpg.*not valid UTF-8"):
        folder_images(tmp_path)


def test_an_empty_folder_lists_nothing(tmp_path):
    from tasks.search.index import folder_images

    names, stamps = folder_images(tmp_path)
    assert names == [] and stamps.shape == (0, 2)


def test_a_listing_is_diffed_against_the_previous_index_by_name_size_and_mtime():
    from types import SimpleNamespace

    from tasks.search.index import unchanged_files
    from tasks.search.names import ImageNames

    previous = SimpleNamespace(
        images=ImageNames(["a.jpg", "b.jpg", "c.jpg"]),
        stamps=np.array([[1, 10], [2, 20], [3, 30]], dtype=np.int64),
        flagged=pd.DataFrame({"image": ["h.jpg", "g.jpg"], "size": [5, 6], "mtime_ns": [50, 60]}),
    )
    # a same, b touched, c gone, g re-written under its name, h still hidden, n new
    names = ["a.jpg", "b.jpg", "g.jpg", "h.jpg", "n.jpg"]
    stamps = np.array([[1, 10], [2, 21], [6, 61], [5, 50], [7, 70]], dtype=np.int64)

    keep, kept, hidden, still = unchanged_files(previous, names, stamps)  # type: ignore[arg-type]

    assert keep.tolist() == [True, False, False]
    assert kept.tolist() == [True, False, False, False, False]
    assert hidden.tolist() == [False, False, False, True, False]
    assert still.tolist() == [True, False]


@pytest.mark.parametrize("among_sorted", [True, False])
@pytest.mark.parametrize("chunk", [3, 1000])
def test_names_are_joined_by_row_whichever_side_is_hashed(among_sorted, chunk, monkeypatch):
    """`_rows_in` hashes the smaller side, and a sorted listing a slice at a time; the rows must not change."""
    import tasks.search.index as index_module
    from tasks.search.names import ImageNames

    monkeypatch.setattr(index_module, "_JOIN_CHUNK", chunk)
    rng = np.random.default_rng(0)
    among = [f"img_{i:04d}.jpg" for i in rng.choice(5000, 40, replace=False)]
    among = sorted(among) if among_sorted else among
    row = {name: k for k, name in enumerate(among)}
    for names in (
        [among[5], "absent.jpg", among[0], among[-1], "zzz.jpg", "a.jpg"],  # fewer than among: hashed instead
        [*rng.permutation(among).tolist(), *[f"new_{i}.jpg" for i in range(50)]],  # more than among
        [],
    ):
        expected = [row.get(n, -1) for n in names]
        assert index_module._rows_in(names, ImageNames(among).arrow).tolist() == expected
    duplicates = [among[1], among[1], "absent.jpg"]
    assert index_module._rows_in(duplicates, ImageNames(among).arrow).tolist() == [1, 1, -1]
