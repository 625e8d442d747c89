"""Bench: query latency (p50/p99) and peak memory of search over galleries of 100 to 1 000 000 images.

Run by hand: `python bench/search.py [--workspace DIR] [--sizes 100 10000 100000 1000000] [--queries 200]`;
writes bench/results/search.json and prints a table. Each gallery size runs in its own subprocess,
so peak RSS (`ru_maxrss`) is per size.

The timed path is `Searcher.get_pictures(query, k=10)`, the code the CLI and the web app call: text
screen, text encoder (real `minilm-l6`), two-tower text projection, one matrix-vector product over
the precomputed 128-d gallery vectors, top k, calibration. Every timed query is a new text, so the
in-memory query cache never hits; `warm_p50_ms` repeats them to show the cached case. Gallery
vectors beyond the real gallery are synthetic unit vectors (latency depends only on the count). The
model is the workspace's two-tower champion when there is one, else a randomly initialised
`TwoTowerModel` with the same input sizes (384-d MiniLM text, 1280-d EfficientNet-Lite0 images).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "search.json"
SIZES = [100, 10_000, 100_000, 1_000_000]
TARGET_P50_MS = {10_000: 20.0, 100_000: 50.0, 1_000_000: 200.0}
TARGET_RSS_MIB = {1_000_000: 4096.0}

SUBJECTS = [
    "a dog",
    "two dogs",
    "a man",
    "a woman",
    "a cyclist",
    "a surfer",
    "a brown horse",
    "a black cat",
    "an old man",
    "a group of people",
    "a skier",
    "a climber",
    "a couple",
]
ACTIONS = ["runs", "jumps", "sits", "walks", "stands", "rides", "swims", "waits", "rests"]
PLACES = [
    "on the beach",
    "in the snow",
    "on a city street",
    "in a park",
    "near a lake",
    "on a mountain",
    "in front of a building",
    "on the grass",
    "by the river",
]


def queries(n: int) -> list[str]:
    combos = itertools.product(SUBJECTS, ACTIONS, PLACES)
    return [" ".join(c) for c in itertools.islice(combos, n)]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def load_model(workspace: Path | None):
    """(model, record, source): the workspace's two-tower champion, or a random one of the same shape."""
    from tasks.training.models.torch_training import Standardizer
    from tasks.training.models.two_tower import TwoTowerModel

    if workspace is not None:
        from tasks.training.registry import ModelRegistry
        from tasks.workspace import Workspace

        registry = ModelRegistry(Workspace(workspace.resolve()))
        record = registry.champion()
        if record is not None and record.kind == "two_tower":
            return registry.load(record.version), record, f"champion {record.version}"
    import torch

    torch.manual_seed(0)
    # 128-d MLP towers, the shape every row in bench/results/search*.json was measured with; the default locked
    # text tower gives 384-d gallery vectors (three times the memory per image)
    model = TwoTowerModel(text_tower="mlp")
    model.dims = (384, 1280)
    model.net = model.build_network().eval()
    model.image_scaler = Standardizer(np.zeros(1280, np.float32), np.ones(1280, np.float32))
    record = SimpleNamespace(
        version="random-two-tower", kind="two_tower", text_encoder="minilm-l6", image_encoder="efficientnet-lite0"
    )
    return model, record, "random TwoTowerModel (no two-tower champion in the workspace)"


def synthetic_vectors(n: int, dim: int, seed: int = 0, chunk: int = 100_000) -> np.ndarray:
    """Unit vectors, generated in chunks into one float32 array, so no large temporaries inflate peak memory."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        block = rng.standard_normal((min(chunk, n - start), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + len(block)] = block
    return out


def original_get_pictures(searcher, query: str, k: int):
    """The query path as first written (the `--path original` baseline): the query goes through the on-disk
    embedding cache (a Parquet write per new query), every gallery score is calibrated, top k on a negated copy."""
    from tasks.embed.cache import embed_texts
    from tasks.search.searcher import Hit, SearchResult, validate_query

    query = validate_query(query, k)
    if searcher.content_filter.screen(query).flagged:
        raise AssertionError("bench queries are never flagged")
    text = embed_texts([query], searcher.text_encoder, searcher.workspace).matrix
    scores = searcher.model.calibrate(searcher.model.embed_texts(text) @ searcher._projected.T)[0]
    part = np.argpartition(-scores, k - 1)[:k]
    rows = part[np.lexsort((part, -scores[part]))]
    return SearchResult(query, False, None, [Hit(searcher.index.images[i], "", float(scores[i])) for i in rows])


def run_one(size: int, n_queries: int, workspace: Path | None, path: str = "searcher") -> dict:
    import pandas as pd
    import torch

    from tasks.embed.encoders.registry import get_text_encoder
    from tasks.safety.text_screen import ChildContentFilter
    from tasks.search.index import GalleryIndex
    from tasks.search.searcher import Searcher
    from tasks.workspace import Workspace

    model, record, source = load_model(workspace)
    text_encoder = get_text_encoder(record.text_encoder)
    content_filter = ChildContentFilter()
    content_filter.screen("warm up the lemmatizer")
    text_encoder.encode(["warm up the encoder"])
    rss_models = rss_mib()

    started = time.perf_counter()
    projected = synthetic_vectors(size, model.out_dim)
    index = GalleryIndex(
        folder=str(REPO / "bench" / "synthetic-gallery"),
        images=[f"synthetic_{i:07d}.jpg" for i in range(size)],
        embeddings=None,
        flagged=pd.DataFrame({"image": [], "source": [], "detail": []}),
        image_encoder=record.image_encoder,
        projected=projected,
        projected_for=record.version,
    )
    # a fresh workspace per process: the baseline's on-disk query cache must start empty for every size
    scratch = Path(tempfile.mkdtemp(prefix="imgsearch-bench-search-"))
    searcher = Searcher(model, record, text_encoder, None, index, content_filter, None, Workspace(scratch))
    build_s = time.perf_counter() - started

    search = searcher.get_pictures if path == "searcher" else (lambda q, k: original_get_pictures(searcher, q, k))
    texts = queries(n_queries + 5)
    for q in texts[:5]:  # warm-up: first calls allocate
        search(q, 10)
    timed = texts[5:]
    total, cpu, screen_t, encode_t, rank_t = [], [], [], [], []
    for q in timed:
        t0, c0 = time.perf_counter(), time.process_time()
        result = search(q, 10)
        total.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        assert not result.refused and len(result.results) == min(10, size), q
    # stage breakdown on fresh texts (the cache would hide the encoder otherwise)
    for q in queries(2 * n_queries + 5)[n_queries + 5 :]:
        t0 = time.process_time()  # CPU time: stages are short, and wall time on a shared machine is mostly waiting
        content_filter.screen(q)
        t1 = time.process_time()
        vec = searcher._query_vector(q)
        t2 = time.process_time()
        searcher.rank(q, 10)  # vector now cached: projection + matvec + top k + calibration
        t3 = time.process_time()
        screen_t.append(t1 - t0), encode_t.append(t2 - t1), rank_t.append(t3 - t2)
        del vec
    warm = []
    for q in timed[:50]:
        t0 = time.perf_counter()
        search(q, 10)
        warm.append(time.perf_counter() - t0)

    shutil.rmtree(scratch, ignore_errors=True)
    ms = lambda xs, p: float(np.percentile(np.array(xs) * 1000.0, p))  # noqa: E731
    return {
        "gallery": size,
        "queries": len(total),
        "k": 10,
        "p50_ms": ms(total, 50),
        "p99_ms": ms(total, 99),
        "mean_ms": float(np.mean(total) * 1000),
        "cpu_p50_ms": ms(cpu, 50),
        "warm_p50_ms": ms(warm, 50),
        "path": path,
        "stage_cpu_p50_ms": {
            "screen": ms(screen_t, 50),
            "text_encoder": ms(encode_t, 50),
            "project_matvec_topk": ms(rank_t, 50),
        },
        "peak_rss_mib": rss_mib(),
        "rss_after_models_mib": rss_models,
        "gallery_vectors_mib": projected.nbytes / 2**20,
        "build_s": build_s,
        "model": source,
        "torch_threads": torch.get_num_threads(),
        "stage_note": "stages are timed on the Searcher's own methods, whichever path is timed end to end",
    }


def clustered_chunks(n: int, dim: int = 128, seed: int = 0, chunk: int = 100_000):
    """Unit vectors in two levels of clusters (64 themes, n/1000 topics), noise as large as a topic's centre, so
    near neighbours are many and overlapping: not uniform noise, where every neighbour is equally far.
    Yields float32 blocks of up to `chunk` rows, so 10M vectors never sit in memory at once."""
    rng = np.random.default_rng(seed)
    themes = rng.standard_normal((64, dim)).astype(np.float32)
    themes /= np.linalg.norm(themes, axis=1, keepdims=True)
    n_topics = max(100, n // 1000)
    topics = themes[rng.integers(0, 64, n_topics)] + 0.8 * rng.standard_normal((n_topics, dim)).astype(
        np.float32
    ) / np.sqrt(dim)
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        block = topics[rng.integers(0, n_topics, m)] + rng.standard_normal((m, dim)).astype(np.float32) / np.sqrt(dim)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        yield block


def clustered_vectors(n: int, dim: int = 128, seed: int = 0, chunk: int = 100_000) -> np.ndarray:
    """`clustered_chunks` in one array (the same vectors for the same seed)."""
    out = np.empty((n, dim), dtype=np.float32)
    start = 0
    for block in clustered_chunks(n, dim, seed, chunk):
        out[start : start + len(block)] = block
        start += len(block)
    return out


def write_clustered(path: Path, n: int, dim: int = 128, seed: int = 0) -> None:
    """`clustered_vectors` written block by block to an .npy file (plain writes: nothing stays mapped)."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n, dim)})
        for block in clustered_chunks(n, dim, seed):
            f.write(np.ascontiguousarray(block, dtype="<f4").tobytes())
    os.replace(tmp, path)


def exact_top10(vectors: np.ndarray, queries_: np.ndarray, rows: int = 100_000) -> np.ndarray:
    """Exact top-10 rows of every query, over `rows` gallery rows at a time, kept as a running best, so the
    scores matrix stays (queries x rows); a memory-mapped gallery is read with plain reads."""
    from tasks.search.ann import iter_rows

    k = 10
    best_s = np.full((len(queries_), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries_), k), dtype=np.int64)
    for start, block in iter_rows(vectors, rows):
        scores = queries_ @ block.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(scores, part, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, part + start], axis=1)
        keep = np.argpartition(-cand_s, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, keep, axis=1), np.take_along_axis(cand_i, keep, axis=1)
    return best_i


def synthetic_names(n: int, prefix: str = "synthetic_"):
    """`prefix` + 8-digit row + ".jpg" as one Arrow string array, built without a Python string per name."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from tasks.search.names import ImageNames

    digits = pc.utf8_lpad(pa.array(np.arange(n, dtype=np.int64)).cast(pa.string()), width=8, padding="0")
    return ImageNames(pc.binary_join_element_wise(prefix, digits, ".jpg", ""))


def scale_files(data: Path, size: int, n_queries: int, dim: int = 128) -> dict[str, Path]:
    d = "" if dim == 128 else f"-d{dim}"  # 128-d files keep the names they had before --dim
    return {
        "vectors": data / f"clustered-{size}{d}.npy",
        "queries": data / f"queries-{n_queries}{d}.npy",
        "truth": data / f"truth-{size}-{n_queries}{d}.npy",
        "truth_s": data / f"truth-{size}-{n_queries}{d}.json",
        "gallery": data / f"gallery-{size}{d}",
    }


def prepare_scale(data: Path, size: int, n_queries: int, dim: int = 128) -> dict:
    """The gallery vectors (written block by block to disk), the queries and their exact top 10 (read block by
    block): the measured processes only open the files. Reuses files already in `data` (same seed, same data)."""
    files = scale_files(data, size, n_queries, dim)
    if not files["vectors"].is_file():
        write_clustered(files["vectors"], size, dim)
    if not files["queries"].is_file():
        np.save(files["queries"], clustered_vectors(n_queries, dim, seed=1))
    if not files["truth"].is_file():
        t0 = time.perf_counter()
        truth = exact_top10(np.load(files["vectors"], mmap_mode="r"), np.load(files["queries"]))
        files["truth_s"].write_text(json.dumps({"exact_truth_s": time.perf_counter() - t0}))
        np.save(files["truth"], truth)
    return json.loads(files["truth_s"].read_text()) if files["truth_s"].is_file() else {}


def build_scale(size: int, kind: str, data: Path, n_queries: int, dim: int = 128) -> dict:
    """Build the index from the memory-mapped vectors file (as a loaded gallery holds them) and save it."""
    import pandas as pd

    from tasks.search.ann import AnnParams
    from tasks.search.index import GalleryIndex, with_lookup

    files = scale_files(data, size, n_queries, dim)
    index = GalleryIndex(
        folder=str(data),
        images=synthetic_names(size),
        embeddings=None,
        flagged=pd.DataFrame({"image": [], "source": [], "detail": []}),
        image_encoder="synthetic",
        projected=np.load(files["vectors"], mmap_mode="r"),
        projected_for="synthetic",
        model_version="synthetic",
        ids=np.arange(size, dtype=np.int64),
        next_id=size,
        stamps=np.zeros((size, 2), dtype=np.int64),
    )
    t0 = time.perf_counter()
    index = with_lookup(index, AnnParams(kind=kind, exact_below=0))  # type: ignore[arg-type]
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    index.save(files["gallery"])
    return {"build_s": build_s, "save_s": time.perf_counter() - t0, "build_peak_rss_mib": rss_mib()}


def measure_lookup(lookup, query_vecs: np.ndarray, truth: np.ndarray, row_ids: np.ndarray, timed: int) -> dict:
    for q in query_vecs[:5]:
        lookup.search(q, 10)
    lat, recall = [], []
    for q, truth_rows in zip(query_vecs, truth, strict=True):
        t0 = time.perf_counter()
        rows, _ = lookup.search(q, 10)
        if len(lat) < timed:
            lat.append(time.perf_counter() - t0)
        recall.append(len(set(row_ids[rows].tolist()) & set(truth_rows.tolist())) / 10)
    return {
        "p50_ms": float(np.percentile(np.array(lat) * 1000, 50)),
        "p99_ms": float(np.percentile(np.array(lat) * 1000, 99)),
        "timed_queries": len(lat),
        "recall_at_10": float(np.mean(recall)),
        "recall_queries": len(recall),
    }


def serve_scale(
    size: int,
    kind: str,
    data: Path,
    n_queries: int,
    add: int,
    nprobes: list[tuple[int, int | None]],
    dim: int = 128,
    passes: int = 1,
    with_text: bool = False,
    rerun_listing: Path | None = None,
) -> dict:
    """Load the saved index (vectors memory-mapped), query it, optionally at other nprobe values, add `add` images.

    With `rerun_listing`, the process also does what a re-run of `imgsearch index DIR` holds in memory before it
    adds: it lists that folder and diffs the listing against the loaded index, and keeps both through the add and
    the save (embedding excluded), so the peak RSS is the re-run's."""
    from dataclasses import replace

    from tasks.search.ann import AnnParams, ResolvedAnn, lookup_for
    from tasks.search.index import AddedImages, GalleryIndex, apply_changes

    files = scale_files(data, size, n_queries, dim)
    query_vecs, truth = np.load(files["queries"]), np.load(files["truth"])
    t0 = time.perf_counter()
    loaded = GalleryIndex.load(files["gallery"])
    load_s = time.perf_counter() - t0
    ann = ResolvedAnn.from_dict(loaded.ann)
    lookup = lookup_for(loaded.projected, loaded.row_ids, ann, loaded.ivf)
    timed = n_queries if lookup.kind != "exact" else min(n_queries, 200)  # exact at 1M: ~50 ms a query
    row: dict = {"load_s": load_s, **measure_lookup(lookup, query_vecs, truth, loaded.row_ids, timed)}
    if passes > 1:  # the first pass reads candidate rows from a cold page cache; later ones find them cached
        row["passes"] = [{k: row[k] for k in ("p50_ms", "p99_ms", "recall_at_10")}]
        for _ in range(passes - 1):
            row["passes"].append(measure_lookup(lookup, query_vecs, truth, loaded.row_ids, timed))
        row.update({k: row["passes"][-1][k] for k in ("p50_ms", "p99_ms", "recall_at_10")})
    row["serve_peak_rss_mib"] = rss_mib()
    if lookup.kind != "exact" and nprobes:
        sweep = []
        for nprobe, candidates in nprobes:
            other_ann = replace(ann, nprobe=nprobe, candidates=candidates or ann.candidates)
            other = lookup_for(loaded.projected, loaded.row_ids, other_ann, loaded.ivf)
            measured = measure_lookup(other, query_vecs, truth, loaded.row_ids, n_queries)
            sweep.append({"nprobe": nprobe, "candidates": other_ann.candidates, **measured})
        row["nprobe_sweep"] = sweep
    held = list_and_diff(rerun_listing, loaded, row) if rerun_listing is not None else None
    if add:
        new = clustered_vectors(add, dim, seed=2)
        added = AddedImages(synthetic_names(add, "new_"), None, new, np.zeros((add, 2), dtype=np.int64))
        params = AnnParams(kind=kind, exact_below=0)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        grown = apply_changes(loaded, np.ones(size, dtype=bool), added, loaded.flagged, params)
        row["add_s"] = time.perf_counter() - t0
        grown.save(files["gallery"])
        row["add_and_save_s"] = time.perf_counter() - t0
        row["added"] = add
        assert np.array_equal(np.asarray(grown.projected[size:]), new)
        check = lookup_for(grown.projected, grown.row_ids, ResolvedAnn.from_dict(grown.ann), grown.ivf)
        assert grown.images[int(check.search(new[0], 1)[0][0])] == "new_00000000.jpg"
    row["peak_rss_mib"] = rss_mib()
    del held  # the listing and the diff, held until here as update_gallery_index holds them through the add and save
    if with_text:  # after every RSS reading above: the encoder's ~0.5 GiB is a served process's, not the index's
        row |= measure_with_text(lookup, query_vecs, min(timed, n_queries))
    return row


def list_and_diff(folder: Path, loaded, row: dict) -> tuple:
    """List `folder` and diff it against the loaded index, as a re-run of `imgsearch index` does before it embeds;
    records the times and the peak RSS after in `row`, and returns what the re-run holds from then on."""
    from tasks.search.index import folder_images, unchanged_files

    t0 = time.perf_counter()
    listing = folder_images(folder)
    row["rerun_list_s"] = time.perf_counter() - t0
    row["rerun_listed"] = len(listing[0])
    t0 = time.perf_counter()
    diff = unchanged_files(loaded, *listing)
    row["rerun_diff_s"] = time.perf_counter() - t0
    row["rerun_rss_after_diff_mib"] = rss_mib()
    return listing, diff


def measure_with_text(lookup, query_vecs: np.ndarray, timed: int) -> dict:
    """Latency of a whole query as `Searcher.get_pictures` spends it on a cache miss: the text screen and the real
    MiniLM encoder on a new text, then the index lookup (of the synthetic query vector: a synthetic gallery has no
    text for its vectors). One thread, as the lookups above."""
    import torch

    from tasks.embed.encoders.registry import get_text_encoder
    from tasks.safety.text_screen import ChildContentFilter

    torch.set_num_threads(1)
    encoder, screen = get_text_encoder("minilm-l6"), ChildContentFilter()
    texts = queries(timed + 5)
    for text in texts[:5]:  # warm-up: first calls allocate
        screen.screen(text)
        encoder.encode([text])
    whole, encode = [], []
    for text, q in zip(texts[5:], query_vecs, strict=False):
        t0 = time.perf_counter()
        if screen.screen(text).flagged:
            raise AssertionError("bench queries are never flagged")
        encoder.encode([text])
        t1 = time.perf_counter()
        lookup.search(q, 10)
        whole.append(time.perf_counter() - t0)
        encode.append(t1 - t0)
    ms = np.array(whole) * 1000
    return {
        "with_text_p50_ms": float(np.percentile(ms, 50)),
        "with_text_p99_ms": float(np.percentile(ms, 99)),
        "screen_and_encode_p50_ms": float(np.percentile(np.array(encode) * 1000, 50)),
        "with_text_queries": len(whole),
        "with_text_peak_rss_mib": rss_mib(),
    }


def listing_folder(data: Path, n: int) -> Path:
    """A folder of `n` empty JPEG-named files, made once and reused (listing costs one directory entry and one
    `stat` a file, whatever the file holds)."""
    folder = data / f"listing-{n}"
    done = data / f"listing-{n}.complete"
    if not done.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            os.close(os.open(folder / f"photo_{i:08d}.jpg", os.O_CREAT | os.O_WRONLY, 0o644))
        done.touch()
    return folder


def run_listing(folder: Path, add: int, changed: int, passes: int) -> dict:
    """Time what `imgsearch index DIR` does before it embeds anything on a re-run: list the folder
    (`folder_images`) and diff the listing against the previous index (`unchanged_files`). The previous index is
    the folder less `add` files, with 1% of the rest hidden and `changed` of the searchable ones re-stamped since."""
    import pandas as pd

    from tasks.search.index import folder_images, unchanged_files

    rss_start = rss_mib()
    listed = []
    rss_listed = 0.0
    for k in range(passes):
        start = time.perf_counter()
        names, stamps = folder_images(folder)
        listed.append(time.perf_counter() - start)
        if k == 0:  # later passes hold two listings for a moment
            rss_listed = rss_mib()
    n = len(names)
    order = np.random.default_rng(0).permutation(n)
    n_hidden = n // 100
    new, hidden, restamped = np.split(order[: add + n_hidden + changed], [add, add + n_hidden])
    searchable = np.ones(n, dtype=bool)
    searchable[new] = searchable[hidden] = False
    old_stamps = stamps.copy()
    old_stamps[restamped, 1] -= 1
    hidden = np.sort(hidden)
    previous = SimpleNamespace(
        images=names.take(np.flatnonzero(searchable)),  # as a loaded index holds them: one Arrow array
        stamps=old_stamps[searchable],
        flagged=pd.DataFrame(
            {"image": [names[i] for i in hidden], "size": stamps[hidden, 0], "mtime_ns": stamps[hidden, 1]}
        ),
    )
    rss_setup = rss_mib()  # the previous index as the benchmark builds it
    diffed = []
    for _ in range(passes):
        start = time.perf_counter()
        keep, kept, was_hidden, still = unchanged_files(previous, names, stamps)  # type: ignore[arg-type]
        diffed.append(time.perf_counter() - start)
    to_embed = int((~(kept | was_hidden)).sum())
    assert to_embed == add + changed, (to_embed, add, changed)
    assert int(keep.sum()) == len(previous.images) - changed and bool(still.all())
    return {
        "files": n,
        "added": add,
        "restamped": changed,
        "hidden": n_hidden,
        "to_embed": to_embed,
        "list_s": listed,
        "diff_s": diffed,
        "rss_before_mib": rss_start,
        "rss_after_listing_mib": rss_listed,
        "rss_before_diff_mib": rss_setup,
        "peak_rss_mib": rss_mib(),
    }


def main_listing(args) -> None:
    """Per size, in a fresh process each (peak RSS is per size): list a folder of that many files and diff it."""
    data = args.data or Path(tempfile.mkdtemp(prefix="imgsearch-bench-listing-"))
    data.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for size in parse_sizes(args.sizes):
            start = time.perf_counter()
            folder = listing_folder(data, size)
            made = time.perf_counter() - start
            add = min(args.add, size // 10)
            r = run_child(["--listing-run", f"{folder}:{add}:{add // 10}:{args.passes}"])
            r["load_avg_1_5_15"] = os.getloadavg()
            rows.append(r)
            print(
                f"{size:>9} files (made in {made:.0f} s): list {' / '.join(f'{s:.2f}' for s in r['list_s'])} s  "
                f"diff {' / '.join(f'{s:.2f}' for s in r['diff_s'])} s  to embed {r['to_embed']}  "
                f"RSS {r['rss_before_mib']:.0f} -> {r['rss_after_listing_mib']:.0f} (listed), "
                f"{r['rss_before_diff_mib']:.0f} -> {r['peak_rss_mib']:.0f} MiB (diffed)",
                flush=True,
            )
    finally:
        if args.data is None:
            shutil.rmtree(data, ignore_errors=True)
    out = args.out if args.out != RESULTS else RESULTS.with_name("search_listing.json")
    payload = {
        "command": "python bench/search.py " + " ".join(sys.argv[1:]),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg_1_5_15": os.getloadavg(),
        "what": "a re-run of `imgsearch index DIR` before any embedding: folder_images lists the folder (one stat "
        "a file, page cache warm), unchanged_files diffs it against the previous index; seconds per pass",
        "results": rows,
    }
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, out)
    print(f"wrote {out}")


BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")  # read at import: set per child


def run_child(args: list[str], threads: int = 1) -> dict:
    cmd = [sys.executable, __file__, *args]
    env = dict(os.environ, **dict.fromkeys(BLAS_THREAD_VARS, str(threads)))
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"{' '.join(args)} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_sizes(values: list[str]) -> list[int]:
    """`1e5,1e6` or `100000 1000000`."""
    return [int(float(v)) for value in values for v in value.split(",") if v]


def main_scale(args) -> None:
    """Per size: one process writes the vectors and the exact truth to disk; per kind, one process builds and saves
    the index from the memory-mapped vectors, another loads it, queries it and adds images (so peak RSS is per
    phase, and never includes the benchmark's own ground truth)."""
    data = args.data or Path(tempfile.mkdtemp(prefix="imgsearch-bench-scale-"))
    data.mkdir(parents=True, exist_ok=True)
    out = args.out if args.out != RESULTS else RESULTS.with_name("search_scale.json")
    old = json.loads(out.read_text()) if out.is_file() else {}
    rows: list[dict] = []
    try:
        for size in parse_sizes(args.sizes):
            dim = ["--dim", str(args.dim)]
            prep = run_child(["--scale-prep", f"{size}:{args.queries}:{data}", *dim])
            for kind in args.kinds.split(","):
                add = args.add if size >= 1_000_000 else 0
                built = run_child(["--scale-build", f"{size}:{kind}:{args.queries}:{data}", *dim], args.build_threads)
                built["build_threads"] = args.build_threads
                served = run_child(
                    [
                        "--scale-serve",
                        f"{size}:{kind}:{args.queries}:{data}:{add}:{args.nprobes}:{args.passes}:{int(args.with_text)}",
                        *dim,
                        *(["--rerun-listing", str(args.rerun_listing)] if args.rerun_listing else []),
                    ]
                )
                files = scale_files(data, size, args.queries, args.dim)
                meta = json.loads((files["gallery"] / "index.json").read_text())
                r = {"gallery": size, "kind": kind, "dim": args.dim, "ann": meta["ann"], **prep, **built, **served}
                r["peak_rss_mib"] = max(r["build_peak_rss_mib"], r["peak_rss_mib"])
                r["load_avg_1_5_15"] = os.getloadavg()
                shutil.rmtree(files["gallery"], ignore_errors=True)
                rows.append(r)
                print(
                    f"{r['gallery']:>9} {r['kind']:>8} build {r['build_s']:7.1f} s  p50 {r['p50_ms']:7.2f} ms  "
                    f"p99 {r['p99_ms']:7.2f} ms  recall@10 {r['recall_at_10']:.4f}  RSS {r['peak_rss_mib']:6.0f} MiB"
                    + (f"  add {r['added']}: {r['add_and_save_s']:.1f} s" if "added" in r else ""),
                    flush=True,
                )
                if "with_text_p50_ms" in r:
                    print(
                        f"{'':>19} with the text screen and MiniLM: p50 {r['with_text_p50_ms']:7.2f} ms  "
                        f"p99 {r['with_text_p99_ms']:7.2f} ms (screen + encode p50 {r['screen_and_encode_p50_ms']:.2f})"
                    )
                if "rerun_list_s" in r:
                    print(
                        f"{'':>19} re-run: listed {r['rerun_listed']} files in {r['rerun_list_s']:.1f} s, diffed in "
                        f"{r['rerun_diff_s']:.1f} s, RSS {r['rerun_rss_after_diff_mib']:.0f} MiB after the diff"
                    )
                for k, p in enumerate(r.get("passes", []), 1):
                    print(f"{'':>19} pass {k}: p50 {p['p50_ms']:7.2f} ms  p99 {p['p99_ms']:7.2f} ms")
                for s in r.get("nprobe_sweep", []):
                    print(
                        f"{'':>19} nprobe {s['nprobe']:>5}, candidates {s.get('candidates', '')}: "
                        f"p50 {s['p50_ms']:7.2f} ms  recall {s['recall_at_10']:.4f}"
                    )
    finally:
        if args.data is None:
            shutil.rmtree(data, ignore_errors=True)
    # rows of sizes and kinds not run this time are kept, with the command that measured them
    command = "python bench/search.py " + " ".join(sys.argv[1:])
    for r in rows:
        r["command"] = command
    fresh = {(r["gallery"], r["kind"], r["dim"]) for r in rows}
    kept = [
        {
            **r,
            "command": r.get("command", old.get("command", "")),
            "load_avg_1_5_15": r.get("load_avg_1_5_15", old.get("load_avg_1_5_15")),
        }
        for r in old.get("results", [])
        if (r["gallery"], r["kind"], r.get("dim", 128)) not in fresh
    ]
    payload = {
        "command": command,
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "threads": 1,  # lookups and adds; builds: each row's build_threads (1 where a row has none)
        "load_avg_1_5_15": os.getloadavg(),
        "vectors": "clustered synthetic unit vectors of `dim` dimensions (128 where a row has none: the MLP "
        "towers' space; 384: MiniLM's, the locked text tower's); see clustered_chunks",
        "rss_note": "build_peak_rss_mib: the process that builds the index from the memory-mapped vectors and "
        "saves it; peak_rss_mib: the larger of that and the process that loads it, queries it and adds images. "
        "Rows without build_peak_rss_mib were measured in one process that also held the vectors and the truth.",
        "results": sorted(kept + rows, key=lambda r: (r.get("dim", 128), r["gallery"], r["kind"])),
    }
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, out)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=[str(s) for s in SIZES], help="gallery sizes (1e5,1e6 or 100000)")
    parser.add_argument(
        "--scale",
        action="store_true",
        help="index lookup only (exact and IVF) on clustered vectors, with recall@10 and adding --add images; "
        "writes bench/results/search_scale.json",
    )
    parser.add_argument("--kinds", default="exact,ivf-sq8", help="with --scale: index kinds to compare")
    parser.add_argument("--dim", type=int, default=128, help="with --scale: the vectors' dimension")
    parser.add_argument(
        "--add",
        type=int,
        default=10_000,
        help="with --scale: images added to the 1M+ indexes; with --listing: new files (at most a tenth)",
    )
    parser.add_argument("--scale-prep", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--scale-build", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--scale-serve", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--listing",
        action="store_true",
        help="time listing a folder of --sizes files and diffing it against a previous index (a re-run of "
        "`imgsearch index DIR`), with --add new files; writes bench/results/search_listing.json",
    )
    parser.add_argument("--listing-run", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--rerun-listing",
        type=Path,
        default=None,
        help="with --scale: the process that loads the index also lists this folder and diffs it against the "
        "index before adding, holding both through the add and the save (the memory of an `imgsearch index` re-run)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="with --scale: keep vectors and truth here; with --listing: the folders (reused when present)",
    )
    parser.add_argument(
        "--nprobes",
        default="",
        help="with --scale: also measure the IVF indexes at these nprobe values (1,2,...), each optionally with "
        "its candidates a result (800/50)",
    )
    parser.add_argument(
        "--build-threads",
        type=int,
        default=1,
        help="with --scale: BLAS and faiss threads of the process that builds the index (lookups and adds stay on "
        "one); `imgsearch index` builds on every core, rows measured before 2026-12-07 on one",
    )
    parser.add_argument("--queries", type=int, default=200, help="timed queries per size (distinct texts)")
    parser.add_argument(
        "--with-text",
        action="store_true",
        help="with --scale: also time whole queries, the text screen and the real MiniLM encoder on a new text "
        "before each lookup (with_text_p50_ms, with_text_p99_ms)",
    )
    parser.add_argument(
        "--passes",
        type=int,
        default=1,
        help="with --scale: run the queries this many times at the default settings and report the last pass "
        "(each pass is kept under 'passes'); the first reads re-scored rows from a cold page cache; with --listing: "
        "list and diff this many times",
    )
    parser.add_argument("--workspace", type=Path, default=None, help="use this workspace's two-tower champion if any")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # internal: one size, JSON to stdout
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON")
    parser.add_argument(
        "--path",
        choices=["searcher", "original"],
        default="searcher",
        help="searcher: Searcher.get_pictures; original: the first version of the query path (baseline)",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch and BLAS threads per process (0: library default)"
    )
    args = parser.parse_args()
    if args.scale_prep is not None:
        size, n_queries, data = args.scale_prep.split(":", 2)
        print(json.dumps(prepare_scale(Path(data), int(size), int(n_queries), args.dim)))
        return
    if args.scale_build is not None:
        size, kind, n_queries, data = args.scale_build.split(":", 3)
        print(json.dumps(build_scale(int(size), kind, Path(data), int(n_queries), args.dim)))
        return
    if args.scale_serve is not None:
        size, kind, n_queries, data, add, nprobes, passes, with_text = args.scale_serve.split(":")
        probes = [(int(p.split("/")[0]), int(p.split("/")[1]) if "/" in p else None) for p in nprobes.split(",") if p]
        served = serve_scale(
            int(size),
            kind,
            Path(data),
            int(n_queries),
            int(add),
            probes,
            args.dim,
            int(passes),
            with_text == "1",
            args.rerun_listing,
        )
        print(json.dumps(served))
        return
    if args.listing_run is not None:
        folder, add, changed, passes = args.listing_run.rsplit(":", 3)
        print(json.dumps(run_listing(Path(folder), int(add), int(changed), int(passes))))
        return
    if args.scale:
        main_scale(args)
        return
    if args.listing:
        main_listing(args)
        return
    main_latency(args)


def main_latency(args) -> None:
    if args.one is not None:
        if args.threads > 0:
            import torch

            torch.set_num_threads(args.threads)
        print(json.dumps(run_one(args.one, args.queries, args.workspace, args.path)))
        return

    rows = []
    for size in parse_sizes(args.sizes):
        cmd = [
            sys.executable,
            __file__,
            "--one",
            str(size),
            "--queries",
            str(args.queries),
            "--threads",
            str(args.threads),
            "--path",
            args.path,
        ]
        if args.workspace:
            cmd += ["--workspace", str(args.workspace)]
        env = dict(os.environ)
        if args.threads > 0:  # BLAS reads these at import, so they are set for the child process
            env.update(dict.fromkeys((*BLAS_THREAD_VARS, "IMGSEARCH_TORCH_THREADS"), str(args.threads)))
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"size {size} failed")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        target = TARGET_P50_MS.get(size)
        r["p50_target_ms"], r["p50_ok"] = target, (None if target is None else r["p50_ms"] < target)
        mem_target = TARGET_RSS_MIB.get(size)
        r["rss_target_mib"], r["rss_ok"] = mem_target, (None if mem_target is None else r["peak_rss_mib"] < mem_target)
        sys.stderr.write(f"done {size}\n")

    header = (
        f"{'gallery':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu p50':>8} {'warm p50':>9} "
        f"{'screen*':>7} {'encoder*':>8} {'rank*':>7} {'peak RSS MiB':>13}  target"
    )
    print(header)
    for r in rows:
        st = r["stage_cpu_p50_ms"]
        verdict = []
        if r["p50_target_ms"]:
            verdict.append(f"p50<{r['p50_target_ms']:.0f} {'ok' if r['p50_ok'] else 'MISSED'}")
        if r["rss_target_mib"]:
            verdict.append(f"rss<{r['rss_target_mib']:.0f} {'ok' if r['rss_ok'] else 'MISSED'}")
        print(
            f"{r['gallery']:>9} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{r['cpu_p50_ms']:>8.2f} {r['warm_p50_ms']:>9.2f} {st['screen']:>7.2f} "
            f"{st['text_encoder']:>8.2f} {st['project_matvec_topk']:>7.2f} "
            f"{r['peak_rss_mib']:>13.0f}  {', '.join(verdict)}"
        )
    print(
        "p50/p99: wall time of get_pictures(query, k=10), every query a new text; cpu p50: its CPU time;\n"
        "warm p50: the same queries again (query-vector cache); *: p50 CPU ms of each stage"
    )
    load = os.getloadavg()
    payload = {
        "command": "python bench/search.py " + " ".join(sys.argv[1:]),
        "machine": platform.platform(),
        "threads": args.threads,
        "path": args.path,
        "cpus": os.cpu_count(),
        "load_avg_1_5_15": load,
        "model": rows[0]["model"] if rows else "",
        "results": {str(r["gallery"]): r for r in rows},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
