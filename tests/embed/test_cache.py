"""The content-addressed cache: reruns embed only what is new or changed; corrupt parts are rebuilt."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tasks.embed import cache as embedding_cache
from tasks.embed.cache import (
    EmbeddingCache,
    Embeddings,
    embed_image_files,
    embed_texts,
)
from tasks.embed.encoders.fakes import FakeImageEncoder, FakeTextEncoder


class CountingTextEncoder(FakeTextEncoder):
    def __init__(self):
        super().__init__()
        self.seen: list[str] = []

    def encode(self, texts):
        self.seen += texts
        return super().encode(texts)


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for i, colour in enumerate(["red", "green", "blue", "yellow", "purple"]):
        path = folder / f"img{i}.jpg"
        Image.new("RGB", (60 + i, 40), colour).save(path)
        paths.append(path)
    return paths


def test_texts_rerun_hits_the_cache_and_rows_stay_aligned(workspace):
    enc = CountingTextEncoder()
    texts = ["a dog", "a cat", "a dog", "a bird"]
    first, report = embed_texts(texts, enc, workspace)
    assert (report.requested, report.unique, report.hits, report.misses) == (4, 3, 0, 3)
    assert enc.seen == ["a dog", "a cat", "a bird"]
    np.testing.assert_array_equal(first[0], first[2])
    np.testing.assert_array_equal(first, FakeTextEncoder().encode(texts))

    again, report = embed_texts(["a bird", "a fish", "a dog"], enc, workspace)
    assert (report.hits, report.misses) == (2, 1)
    assert enc.seen[3:] == ["a fish"]
    np.testing.assert_array_equal(again[0], first[3])
    np.testing.assert_array_equal(embed_texts(["a cat"], enc, workspace).matrix[0], first[1])


def test_changed_image_file_is_re_embedded(workspace, images):
    enc = FakeImageEncoder()
    first, report = embed_image_files(images, enc, workspace, batch_size=2, num_workers=2)
    assert (report.hits, report.misses) == (0, 5)
    Image.new("RGB", (60, 40), "white").save(images[0])
    second, report = embed_image_files(images, enc, workspace, batch_size=2)
    assert (report.hits, report.misses) == (4, 1)
    assert not np.allclose(first[0], second[0])
    np.testing.assert_array_equal(first[1:], second[1:])
    np.testing.assert_array_equal(second, enc.encode_images([Image.open(p) for p in images]))


def test_same_bytes_under_another_name_are_not_re_embedded(workspace, images, tmp_path):
    enc = FakeImageEncoder()
    embed_image_files(images, enc, workspace)
    copy = tmp_path / "renamed.jpg"
    copy.write_bytes(images[2].read_bytes())
    vectors, report = embed_image_files([copy], enc, workspace)
    assert report.hits == 1 and report.misses == 0


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other-encoder"])
def test_corrupt_part_is_detected_quarantined_and_rebuilt(workspace, images, damage, caplog):
    enc = FakeImageEncoder()
    clean = embed_image_files(images, enc, workspace).matrix
    cache_dir = workspace.embedding_cache_dir(enc.encoder_id)
    (part,) = cache_dir.glob("part-*.parquet")
    if damage == "truncate":
        part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    elif damage == "garbage":
        part.write_bytes(b"not a parquet file at all")
    else:
        # A part that another encoder wrote, e.g. a folder copied by hand: its vectors must not be used.
        foreign = EmbeddingCache(workspace.root / "elsewhere", "someone-else").add(["k"], np.ones((1, 3), np.float32))
        foreign.replace(part)

    with caplog.at_level("WARNING", logger=embedding_cache.__name__):
        rebuilt, report = embed_image_files(images, enc, workspace)
    assert report.corrupt_parts == 1 and report.misses == 5
    assert "corrupt" in caplog.text
    np.testing.assert_array_equal(rebuilt, clean)
    assert list(workspace.embedding_quarantine_dir(enc.encoder_id).glob("*.corrupt"))
    # The rebuilt cache is whole again: a third run is all hits.
    assert embed_image_files(images, enc, workspace).report.hits == 5


def test_many_parts_are_compacted_without_losing_vectors(workspace, monkeypatch):
    monkeypatch.setattr(embedding_cache, "MAX_PARTS", 3)
    enc = FakeTextEncoder()
    texts = [f"text number {i}" for i in range(6)]
    for text in texts:
        embed_texts([text], enc, workspace)
    cache = EmbeddingCache.for_workspace(workspace, enc.encoder_id)
    assert len(cache) == 6
    assert len(cache.parts()) <= 3 + 1  # compacted on load once past MAX_PARTS, then one more part per call
    cache.compact()
    assert len(cache.parts()) == 1
    reread = EmbeddingCache.for_workspace(workspace, enc.encoder_id)
    np.testing.assert_array_equal(reread.get([embedding_cache.text_sha256(t) for t in texts]), enc.encode(texts))


def test_cache_refuses_vectors_of_another_dimension(workspace):
    cache = EmbeddingCache.for_workspace(workspace, "fake-text")
    cache.add(["a"], np.ones((1, 4), np.float32))
    with pytest.raises(ValueError, match="dimension 5"):
        cache.add(["b"], np.ones((1, 5), np.float32))


def test_empty_inputs_give_empty_matrices(workspace):
    assert embed_texts([], FakeTextEncoder(), workspace).matrix.shape[0] == 0


def test_embeddings_lookup_by_name():
    emb = Embeddings(("a.jpg", "b.jpg"), np.array([[1, 2], [3, 4]], np.float32), "fake-image")
    np.testing.assert_array_equal(emb.lookup(["b.jpg", "a.jpg"]), [[3, 4], [1, 2]])
    assert emb.dim == 2 and len(emb) == 2
    with pytest.raises(KeyError, match="c.jpg"):
        emb.lookup(["c.jpg"])
    with pytest.raises(ValueError):
        Embeddings(("a",), np.zeros((2, 2)), "x")


def test_compaction_leaves_parts_written_by_another_process(workspace):
    ours = EmbeddingCache.for_workspace(workspace, "fake-text")
    ours.add(["a"], np.ones((1, 2), np.float32))
    ours.add(["b"], np.full((1, 2), 2, np.float32))
    theirs = EmbeddingCache.for_workspace(workspace, "fake-text")
    theirs.add(["c"], np.full((1, 2), 3, np.float32))  # written after `ours` read the folder
    ours.compact()
    fresh = EmbeddingCache.for_workspace(workspace, "fake-text")
    np.testing.assert_array_equal(fresh.get(["a", "b", "c"]), [[1, 1], [2, 2], [3, 3]])


def test_non_finite_vectors_are_never_cached(workspace):
    class NanEncoder(FakeTextEncoder):
        def encode(self, texts):
            out = super().encode(texts)
            out[-1, 0] = np.nan
            return out

    with pytest.raises(ValueError, match="1 non-finite vector"):
        embed_texts(["fine", "broken"], NanEncoder(), workspace)
    assert not list(workspace.embedding_cache_dir("fake-text").glob("part-*"))


# Bit rot: a part carries a checksum of its content; a single flipped bit is caught like a truncation.


def _flip(path, position: int, bit: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 1 << bit
    path.write_bytes(bytes(data))


def test_single_bit_flips_anywhere_in_a_part_are_caught(tmp_path):
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((20, 64)).astype(np.float32)
    keys = [f"{i:064x}" for i in range(20)]
    clean = EmbeddingCache(tmp_path / "clean", "fake-image").add(keys, matrix)
    size = clean.stat().st_size
    vectors_at = clean.read_bytes().find(matrix[0].tobytes())
    assert vectors_at > 0
    # 30 positions spread over the whole file, and 10 inside the vector data (the bytes of the first vectors).
    positions = [(i * 2 + 1) * size // 60 for i in range(30)] + [vectors_at + 97 * i + 5 for i in range(10)]
    outcomes = {"quarantined": 0, "unchanged": 0}
    for n, position in enumerate(positions):
        folder = tmp_path / f"flip-{n}"
        folder.mkdir()
        part = folder / clean.name
        part.write_bytes(clean.read_bytes())
        _flip(part, position, n % 8)
        cache = EmbeddingCache(folder, "fake-image", quarantine=tmp_path / "quarantine")
        missing = cache.missing(keys)
        if cache.corrupt_parts:
            assert missing == keys and not part.exists(), "a quarantined part's vectors are all recomputed"
            outcomes["quarantined"] += 1
        else:  # a bit no decoded value depends on (padding, statistics): what is read must be the original
            np.testing.assert_array_equal(cache.get(keys), matrix)
            outcomes["unchanged"] += 1
        if n >= 30:
            assert cache.corrupt_parts == 1, f"a flip in the vector data at byte {position} went unnoticed"
    assert outcomes["quarantined"] >= 30


def test_flipped_image_part_is_rebuilt_with_the_right_vectors(workspace, images, caplog):
    enc = FakeImageEncoder()
    clean = embed_image_files(images, enc, workspace).matrix
    (part,) = workspace.embedding_cache_dir(enc.encoder_id).glob("part-*.parquet")
    # The fake vectors hold few distinct values, so Parquet stores them once in a dictionary page: flip 1.0f there.
    position = part.read_bytes().find(np.float32(1.0).tobytes())
    assert position > 0
    _flip(part, position + 2, 3)
    with caplog.at_level("WARNING", logger=embedding_cache.__name__):
        rebuilt, report = embed_image_files(images, enc, workspace)
    assert report.corrupt_parts == 1 and report.misses == 5 and "checksum mismatch" in caplog.text
    np.testing.assert_array_equal(rebuilt, clean)
    assert embed_image_files(images, enc, workspace).report.hits == 5


def _write_part(path, keys, matrix, metadata):
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel(), pa.float32()), matrix.shape[1])
    table = pa.table({"key": pa.array(keys, pa.string()), "vector": vectors}).replace_schema_metadata(metadata)
    pq.write_table(table, path)


def test_part_from_before_checksums_is_trusted_once_and_rewritten_with_one(workspace):
    folder = workspace.embedding_cache_dir("fake-text")
    folder.mkdir(parents=True, exist_ok=True)
    matrix = np.arange(6, dtype=np.float32).reshape(2, 3)
    _write_part(
        folder / "part-00000000000000000001-old.parquet", ["a", "b"], matrix, {b"imgsearch.encoder_id": b"fake-text"}
    )
    cache = EmbeddingCache.for_workspace(workspace, "fake-text")
    np.testing.assert_array_equal(cache.get(["a", "b"]), matrix)
    (part,) = cache.parts()
    assert "old" not in part.name
    import pyarrow.parquet as pq

    assert embedding_cache.META_SHA256 in pq.read_schema(part).metadata
    assert EmbeddingCache.for_workspace(workspace, "fake-text").corrupt_parts == 0


def test_part_whose_checksum_key_was_damaged_is_not_taken_for_an_old_one(workspace):
    folder = workspace.embedding_cache_dir("fake-text")
    folder.mkdir(parents=True, exist_ok=True)
    matrix = np.ones((1, 3), np.float32)
    damaged_key = {b"imgsearch.encoder_id": b"fake-text", b"imgsearch.content_sha257": b"0" * 64}
    _write_part(folder / "part-00000000000000000001-x.parquet", ["a"], matrix, damaged_key)
    cache = EmbeddingCache.for_workspace(workspace, "fake-text")
    assert cache.missing(["a"]) == ["a"] and cache.corrupt_parts == 1


# Lookups read only the parts that hold their keys: with a large gallery, an update of a few images or one file
# scored by path must not read every vector ever cached.


def _cache_with_parts(folder, sizes, dim=4):
    cache = EmbeddingCache(folder, "fake-image")
    keys, start = [], 0
    for size in sizes:
        part_keys = [f"{i:064x}" for i in range(start, start + size)]
        cache.add(part_keys, np.arange(start * dim, (start + size) * dim, dtype=np.float32).reshape(size, dim))
        keys.append(part_keys)
        start += size
    return keys


def test_a_lookup_reads_only_the_parts_that_hold_its_keys(tmp_path, monkeypatch):
    keys = _cache_with_parts(tmp_path / "c", [3, 3, 3])
    read = []
    real = embedding_cache._read_part
    monkeypatch.setattr(embedding_cache, "_read_part", lambda path, enc: read.append(path) or real(path, enc))

    cache = EmbeddingCache(tmp_path / "c", "fake-image")
    wanted = [keys[1][2], keys[1][0]]
    assert cache.missing(wanted + ["absent"]) == ["absent"]
    np.testing.assert_array_equal(cache.get(wanted), [[20, 21, 22, 23], [12, 13, 14, 15]])
    assert len(cache) == 9 and cache.dim == 4
    assert [p.name for p in read] == [sorted((tmp_path / "c").glob("part-*"))[1].name]  # one part, read once


def test_compaction_merges_small_parts_and_leaves_large_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(embedding_cache, "WRITE_CHUNK", 4)
    monkeypatch.setattr(embedding_cache, "PART_BYTES", 10 * 4 * 4)  # 10 rows of 4 floats a part
    keys = _cache_with_parts(tmp_path / "c", [9, 2, 2, 2, 2, 2, 2])
    large = sorted((tmp_path / "c").glob("part-*"))[0]

    cache = EmbeddingCache(tmp_path / "c", "fake-image")
    cache.compact()

    parts = sorted((tmp_path / "c").glob("part-*"))
    assert large in parts and len(parts) == 3  # the large part, then 12 small rows as 10 + 2 at most
    sizes = sorted(pq.ParquetFile(p).metadata.num_rows for p in parts)
    assert sizes == [2, 9, 10]
    flat = [k for part in keys for k in part]
    fresh = EmbeddingCache(tmp_path / "c", "fake-image")
    assert fresh.missing(flat) == []
    np.testing.assert_array_equal(fresh.get(flat), np.arange(21 * 4, dtype=np.float32).reshape(21, 4))


def test_a_part_merged_away_by_another_process_is_found_in_the_merged_part(tmp_path):
    keys = _cache_with_parts(tmp_path / "c", [2, 2, 2])
    ours = EmbeddingCache(tmp_path / "c", "fake-image")
    assert len(ours) == 6  # indexed the three parts, read no vectors
    EmbeddingCache(tmp_path / "c", "fake-image").compact()  # another process merges them into one
    assert len(list((tmp_path / "c").glob("part-*"))) == 1

    flat = [k for part in keys for k in part]
    assert ours.missing(flat) == [] and ours.corrupt_parts == 0
    np.testing.assert_array_equal(ours.get(flat), np.arange(24, dtype=np.float32).reshape(6, 4))


def test_a_corrupt_part_costs_only_its_own_keys(tmp_path):
    keys = _cache_with_parts(tmp_path / "c", [3, 3])
    second = sorted((tmp_path / "c").glob("part-*"))[1]
    data = bytearray(second.read_bytes())
    at = data.find(np.float32(13.0).tobytes())
    data[at + 1] ^= 0x10
    second.write_bytes(bytes(data))

    cache = EmbeddingCache(tmp_path / "c", "fake-image", quarantine=tmp_path / "q")
    assert cache.missing(keys[0]) == [] and cache.corrupt_parts == 0 and second.exists()
    assert cache.missing(keys[0] + keys[1]) == keys[1] and cache.corrupt_parts == 1 and not second.exists()
    np.testing.assert_array_equal(cache.get(keys[0]), np.arange(12, dtype=np.float32).reshape(3, 4))


def test_parts_read_are_kept_up_to_a_budget_and_read_again_when_needed(tmp_path, monkeypatch):
    keys = _cache_with_parts(tmp_path / "c", [3, 3, 3])
    monkeypatch.setattr(embedding_cache, "KEEP_BYTES", 3 * 4 * 4)  # one part's vectors
    cache = EmbeddingCache(tmp_path / "c", "fake-image")
    flat = [k for part in keys for k in part]

    assert cache.missing(flat) == []
    np.testing.assert_array_equal(cache.get(flat[::-1]), np.arange(36, dtype=np.float32).reshape(9, 4)[::-1])
    assert len(cache._vectors) == 1  # the budget held: the other parts were dropped and read again for get


def test_key_rows_find_the_latest_row_of_every_key_as_a_dict_would(monkeypatch):
    """The compact key index (sorted digests, then a dict of recent adds folded in) agrees with a dict of the keys,
    across folds, re-added keys, dropped parts, and keys that are not sha256 hex."""
    import hashlib

    from tasks.embed.cache import KeyRows

    rng = np.random.default_rng(0)
    hex_keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(90_000)]
    other = ["plain", "", "ünïcödé", "A" * 64, "g" * 64, hex_keys[0].upper()]
    rows, expected = KeyRows(), {}
    for number, start in enumerate(range(0, 90_000, 9_000)):
        part = hex_keys[start : start + 9_000] + (other if number == 3 else [])
        if number % 2:  # some keys come back in a later part: they point there now
            part += list(rng.choice(hex_keys[:start], 500, replace=False)) if start else []
        where = number << 32 | np.arange(len(part), dtype=np.int64)
        rows.add(part, where)
        expected.update(zip(part, where.tolist(), strict=True))
        probe = list(rng.choice(hex_keys, 2_000)) + other + ["never added", "0" * 64]
        assert rows.find(probe).tolist() == [expected.get(k, -1) for k in probe]
    assert len(rows) == len(expected)

    # keys whose digests share the first half: sorted by the second, and the latest of each still wins
    twins = [f"{1:016x}{n:016x}{0:032x}" for n in (5, 3, 9)]
    for number, part in ((20, twins), (21, twins[1:2]), (22, twins[::-1])):
        where = number << 32 | np.arange(len(part), dtype=np.int64)
        rows.add(part, where)
        expected.update(zip(part, where.tolist(), strict=True))
    rows._fold()
    assert rows.find(twins).tolist() == [expected[k] for k in twins]

    rows.drop_parts({1, 3})
    expected = {k: v for k, v in expected.items() if v >> 32 not in {1, 3}}
    everything = hex_keys + other + twins
    assert rows.find(everything).tolist() == [expected.get(k, -1) for k in everything]
    assert len(rows) == len(expected)


def test_two_keys_with_one_digest_never_get_each_others_vector(tmp_path):
    """The index keeps 128 bits of a key; the stored key of every row found is checked, so a key whose digest
    another key took is reported missing (and recomputed), never served the other's vector."""
    from tasks.embed.cache import key_digests

    a = "0123456789abcdef" * 2 + "fedcba9876543210" * 2
    b = "fedcba9876543210" * 2 + "0123456789abcdef" * 2  # the halves swapped: the same XOR-folded digest
    assert [h.tolist() for h in key_digests([a])] == [h.tolist() for h in key_digests([b])]
    cache = EmbeddingCache(tmp_path / "c", "fake-image")
    cache.add([a], np.full((1, 4), 1.0, np.float32))
    cache.add([b], np.full((1, 4), 2.0, np.float32))
    fresh = EmbeddingCache(tmp_path / "c", "fake-image")
    assert fresh.missing([a, b]) == [a]
    np.testing.assert_array_equal(fresh.get([b]), np.full((1, 4), 2.0, np.float32))
    with pytest.raises(KeyError):
        fresh.get([a])
    fresh.add([a], np.full((1, 4), 1.0, np.float32))  # recomputed: now `b` is the one to recompute
    np.testing.assert_array_equal(fresh.get([a]), np.full((1, 4), 1.0, np.float32))
    assert fresh.missing([a, b]) == [b]
