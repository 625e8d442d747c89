"""A running server follows retrains: champion and index swapped under load, over real uvicorn on 127.0.0.1.

Each answer must equal what the state named in its `X-Imgsearch-Model` / `X-Imgsearch-Index` headers answers
(computed beforehand for all four model x index combinations), so an answer that mixed two states fails.
Everything is bounded in count and time; waits are generous for a loaded two-core machine, and the only
timed assertion is the product's target: a new state is served within 10 s of the swap.
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import requests

QUERIES = [
    "a dog jumps over a fence",
    "a red ball on the grass",
    "two people walking on a beach",
    "a man riding a bike",
    "a blue car in the street",
    "a woman with an umbrella",
    "a little girl playing",  # refused: the same answer in every state
    "green trees and a house",
]
TOTAL_REQUESTS = 1200
CLIENTS = 4
MAX_SWAPS = 40
SERVED_WITHIN = 10.0  # seconds: the target for a new state to be served
LOAD_DEADLINE = 300.0  # seconds for the whole load phase, however loaded the machine is


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Swappable:
    """A copy of the search workspace with two champions and two gallery indexes that can be put in place."""

    workspace: object
    champions: dict[str, str]  # name -> champion.json text
    indexes: dict[str, Path]  # name -> stashed index folder
    versions: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)  # names -> (model, index)

    def apply(self, champion: str, index: str) -> None:
        from tasks.training.registry import CHAMPION_FILE
        from tasks.workspace import atomic_dir, write_text_atomic

        write_text_atomic(self.workspace.models / CHAMPION_FILE, self.champions[champion])
        with atomic_dir(self.workspace.index_dir("gallery")) as tmp:
            for path in self.indexes[index].iterdir():
                shutil.copy2(path, tmp / path.name)


def _answer(searcher, query: str) -> dict:
    from webapp.app import search_answer

    return search_answer(searcher, query, 5)


@pytest.fixture(scope="module")
def swappable(search_setup, tmp_path_factory):
    from tasks.embed.encoders.registry import get_image_encoder, get_text_encoder
    from tasks.search.gallery import index_folder
    from tasks.search.searcher import Searcher
    from tasks.training.models.base import TrainingData
    from tasks.training.models.linear import RidgeModel
    from tasks.training.registry import CHAMPION_FILE, ModelRegistry
    from tasks.workspace import Workspace

    root = tmp_path_factory.mktemp("swap")
    shutil.copytree(search_setup.workspace.root, root / "workspace", symlinks=True)
    workspace = Workspace(root / "workspace")
    registry = ModelRegistry(workspace)
    champion_a = registry.champion()
    # a second champion: a ridge model on random data, so its scores differ from the first one's everywhere
    rng = np.random.default_rng(7)
    text_dim = get_text_encoder(champion_a.text_encoder).dim
    image_dim = get_image_encoder(champion_a.image_encoder).dim
    n = 200
    data = TrainingData(
        text=rng.normal(size=(n, text_dim)).astype(np.float32),
        image=rng.normal(size=(n, image_dim)).astype(np.float32),
        target=rng.random(n).astype(np.float32),
        groups=np.array([f"img{i % 20}" for i in range(n)]),
    )
    record_b = registry.register(
        RidgeModel().fit(data, seed=0),
        text_encoder=champion_a.text_encoder,
        image_encoder=champion_a.image_encoder,
        data_hash=champion_a.data_hash,
        primary_metric=champion_a.primary_metric,
        metrics={champion_a.primary_metric: 0.0},
        params={"test": "second champion"},
    )
    pointer = (workspace.models / CHAMPION_FILE).read_text()
    champions = {"A": pointer, "B": json.dumps({**json.loads(pointer), "version": record_b.version})}

    stash = root / "stash"
    shutil.copytree(workspace.index_dir("gallery"), stash / "A")
    half = root / "gallery-b"
    half.mkdir()
    for name in search_setup.searchable[::2]:
        shutil.copy2(search_setup.gallery / name, half / name)
    index_folder(half, "gallery", workspace)
    shutil.copytree(workspace.index_dir("gallery"), stash / "B")
    swap = Swappable(workspace, champions, {"A": stash / "A", "B": stash / "B"})

    expected: dict[tuple[str, str], dict[str, dict]] = {}
    for champion, index in itertools.product("AB", "AB"):
        swap.apply(champion, index)
        searcher = Searcher.from_workspace(workspace)
        key = (searcher.record.version, searcher.index.version)
        swap.versions[(champion, index)] = key
        expected[key] = {q: _answer(searcher, q) for q in QUERIES}
    assert len(expected) == 4, "each combination must have its own versions"
    swap.apply("A", "A")
    return swap, expected


@pytest.fixture(scope="module")
def server(swappable):
    import uvicorn

    from tasks.search.serving import ServingStates
    from webapp.app import create_app
    from webapp.limits import uvicorn_config

    swap, _ = swappable
    states = ServingStates.for_workspace(swap.workspace, "gallery", check_every=0.25)
    port = _free_port()
    uv = uvicorn.Server(uvicorn_config(create_app(states=states), "127.0.0.1", port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", states
    uv.should_exit = True
    thread.join(timeout=20)


def test_swaps_under_load_never_fail_or_mix_states(swappable, server):
    swap, expected = swappable
    url, states = server
    lock = threading.Lock()
    counter = itertools.count()
    done = threading.Event()
    failures: list[str] = []
    mixed: list[str] = []
    served: dict[tuple[str, str], int] = {}
    first_seen: dict[tuple[str, str], float] = {}
    started = time.monotonic()

    def client(seed: int) -> None:
        session = requests.Session()
        rng = np.random.default_rng(seed)
        while time.monotonic() - started < LOAD_DEADLINE:
            n = next(counter)
            if n >= TOTAL_REQUESTS:
                break
            query = QUERIES[int(rng.integers(len(QUERIES)))]
            try:
                response = session.get(f"{url}/api/search", params={"q": query, "k": 5}, timeout=60)
            except requests.RequestException as err:
                with lock:
                    failures.append(f"{query!r}: {type(err).__name__}: {err}")
                continue
            key = (response.headers.get("x-imgsearch-model", ""), response.headers.get("x-imgsearch-index", ""))
            with lock:
                if response.status_code != 200:
                    failures.append(f"{query!r}: HTTP {response.status_code} {response.text[:200]}")
                elif key not in expected or response.json() != expected[key][query]:
                    mixed.append(f"{query!r} answered as {key}: {response.text[:300]}")
                else:
                    served[key] = served.get(key, 0) + 1
                    first_seen.setdefault(key, time.monotonic())

    latencies: list[float] = []

    def swapper() -> None:
        order = itertools.cycle([("B", "A"), ("B", "B"), ("A", "B"), ("A", "A")])
        for _ in range(MAX_SWAPS):
            if done.is_set():
                return
            champion, index = next(order)
            key = swap.versions[(champion, index)]
            with lock:
                first_seen.pop(key, None)
            swapped = time.monotonic()
            swap.apply(champion, index)
            # wait (bounded) until the new state answers, so every swap is really served before the next one
            while not done.is_set() and time.monotonic() - swapped < 3 * SERVED_WITHIN:
                with lock:
                    seen = first_seen.get(key)
                if seen is not None:
                    latencies.append(seen - swapped)
                    break
                time.sleep(0.02)
            time.sleep(0.1)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    swapping = threading.Thread(target=swapper)
    for thread in threads:
        thread.start()
    swapping.start()
    for thread in threads:
        thread.join(timeout=LOAD_DEADLINE + 60)
    done.set()
    swapping.join(timeout=60)

    total = sum(served.values()) + len(failures) + len(mixed)
    logging.getLogger(__name__).warning(
        f"{total} requests in {time.monotonic() - started:.1f} s from {CLIENTS} clients, {len(latencies)} swaps "
        f"served, swap-to-served s: max {max(latencies, default=float('nan')):.2f}, "
        f"median {float(np.median(latencies)) if latencies else float('nan'):.2f}; "
        f"answers per state {sorted(served.values())}; reloads {states.reloads}"
    )
    assert not failures, failures[:5]
    assert not mixed, mixed[:5]
    assert total >= 1000
    assert len(served) >= 3 and len(latencies) >= 3, (served, latencies)
    assert max(latencies) <= SERVED_WITHIN, latencies

    # and once the load is over: a last swap is reported by /healthz within the target
    swap.apply("B", "B")
    want = swap.versions[("B", "B")]
    deadline = time.monotonic() + SERVED_WITHIN
    health = {}
    while time.monotonic() < deadline:
        health = requests.get(f"{url}/healthz", timeout=30).json()
        if (health["model_version"], health["index_version"]) == want:
            break
        time.sleep(0.1)
    assert (health["model_version"], health["index_version"]) == want, health
    assert health["last_reload_error"] is None
    assert health["dataset_version"] and health["index_version"]


def test_a_failed_load_keeps_the_old_state_and_is_reported(swappable, server):
    from tasks.training.registry import CHAMPION_FILE
    from tasks.workspace import write_text_atomic

    swap, _ = swappable
    url, _ = server
    swap.apply("A", "A")
    want = swap.versions[("A", "A")]

    def health_until(predicate) -> dict:
        deadline = time.monotonic() + 3 * SERVED_WITHIN
        body = {}
        while time.monotonic() < deadline:
            response = requests.get(f"{url}/healthz", timeout=30)
            body = response.json()
            if predicate(body, response):
                return body
            time.sleep(0.1)
        raise AssertionError(f"/healthz never got there: {body}")

    health_until(lambda b, r: (b["model_version"], b["index_version"]) == want)
    pointer = json.loads(swap.champions["A"])
    write_text_atomic(swap.workspace.models / CHAMPION_FILE, json.dumps({**pointer, "version": "no-such-version"}))
    failed = health_until(lambda b, r: b["last_reload_error"] is not None)
    assert "no-such-version" in failed["last_reload_error"]["error"]
    assert (failed["model_version"], failed["index_version"]) == want  # still the old state
    search = requests.get(f"{url}/api/search", params={"q": "a dog"}, timeout=30)
    assert search.status_code == 200 and search.headers["x-imgsearch-model"] == want[0]
    swap.apply("B", "A")
    recovered = health_until(lambda b, r: b["model_version"] == swap.versions[("B", "A")][0])
    assert recovered["last_reload_error"] is None


def test_long_urls_and_bodies_get_a_status_not_a_reset(server, search_setup):
    url, _ = server
    for length in (9 * 1024, 64 * 1024, 1024 * 1024):
        response = requests.get(f"{url}/api/search", params={"q": "a" * length}, timeout=60)
        assert response.status_code == 414, (length, response.status_code)
        assert response.headers["x-content-type-options"] == "nosniff"
    big = {"text": "a dog", "image": "x" * (20 * 1024)}
    assert requests.post(f"{url}/api/score", json=big, timeout=60).status_code == 413
    huge = b"{" + b" " * (8 * 1024 * 1024) + b"}"
    response = requests.post(f"{url}/api/score", data=huge, headers={"content-type": "application/json"}, timeout=60)
    assert response.status_code == 413

    def chunks():
        for _ in range(40):
            yield b" " * 1024

    response = requests.post(
        f"{url}/api/score", data=chunks(), headers={"content-type": "application/json"}, timeout=60
    )
    assert response.status_code == 413
    ok = requests.post(f"{url}/api/score", json={"text": "a dog", "image": search_setup.searchable[0]}, timeout=60)
    assert ok.status_code == 200 and ok.headers["x-imgsearch-model"]


def test_the_first_load_tries_again_when_the_index_is_swapped_while_it_is_read():
    """A server that starts while `imgsearch index` swaps the folder reads it again instead of answering 503;
    a missing champion or index still fails at once, and a folder that keeps changing fails in the end."""
    from types import SimpleNamespace

    from tasks.search.index import IndexChangedError, SearchUnavailableError
    from tasks.search.serving import FIRST_LOAD_TRIES, ServingStates

    calls: list[int] = []
    searcher = SimpleNamespace(
        index=SimpleNamespace(version="index-1", built="", dataset_version="data-1"),
        record=SimpleNamespace(version="model-1", data_version="data-1"),
    )

    def swapped_twice(previous):
        calls.append(1)
        if len(calls) <= 2:
            raise IndexChangedError("gallery index changed while it was read")
        return searcher

    states = ServingStates(swapped_twice, check_every=None)
    assert states.current().index_version == "index-1" and len(calls) == 3

    def missing(previous):
        calls.append(1)
        raise SearchUnavailableError("no champion model")

    calls.clear()
    with pytest.raises(SearchUnavailableError, match="no champion"):
        ServingStates(missing, check_every=None).current()
    assert len(calls) == 1

    def always_changing(previous):
        calls.append(1)
        raise IndexChangedError("gallery index changed while it was read")

    calls.clear()
    with pytest.raises(IndexChangedError):
        ServingStates(always_changing, check_every=None).current()
    assert len(calls) == FIRST_LOAD_TRIES
