"""The imgsearch-index flow: only new images are embedded, in shards with a progress line each, here or on a
Dask cluster; a second run updates the index instead of rebuilding it."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from PIL import Image


def new_image(source: Path, target: Path) -> None:
    """A JPEG no cache has seen (other bytes than any sample image)."""
    with Image.open(source) as image:
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(target, quality=90)


def progress(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("shard ")]


def test_index_flow_embeds_only_new_images_in_shards_then_updates(search_setup, tmp_path, caplog):
    from flows.index import IndexParams, index_flow
    from tasks.search.index import GalleryIndex

    ws = search_setup.workspace
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in search_setup.searchable[:3]:  # bytes the cache already has: not embedded again
        shutil.copy2(search_setup.gallery / name, folder / name)
    for i, name in enumerate(search_setup.searchable[3:6]):
        new_image(search_setup.gallery / name, folder / f"new_{i}.jpg")
    params = IndexParams(folder=folder, name="flow-photos", workspace=ws.root, shard_size=2)
    caplog.set_level(logging.INFO)

    first = index_flow(params)
    assert not first.incremental and first.searchable + first.flagged == 6
    lines = progress(caplog)  # fake-image is also the detector's encoder: 3 new images, shards of 2
    assert [line.split(":")[0] for line in lines] == ["shard 1/2", "shard 2/2"], lines
    assert "3 of 3 embedded (100%)" in lines[-1]
    assert any("6 new or changed images; 3 embeddings to compute" in r.getMessage() for r in caplog.records)

    caplog.clear()
    new_image(search_setup.gallery / search_setup.searchable[6], folder / "new_3.jpg")
    second = index_flow(params)
    assert second.incremental and second.searchable + second.flagged == 7
    assert [line.split(":")[0] for line in progress(caplog)] == ["shard 1/1"]
    assert any("1 new or changed images" in r.getMessage() for r in caplog.records)
    index = GalleryIndex.load(ws.index_dir("flow-photos"))
    assert len(index.images) + len(index.flagged) == 7 and index.projected is not None

    caplog.clear()
    assert index_flow(params).incremental
    assert not progress(caplog) and any("no new or changed images" in r.getMessage() for r in caplog.records)


def test_a_folder_is_embedded_a_part_at_a_time(search_setup, tmp_path, caplog, monkeypatch):
    """Its new files are hashed, planned and embedded `EMBED_CHUNK` at a time, so a folder of ten million never
    holds ten million paths and keys at once; the index is the one a single part gives."""
    import re

    import numpy as np

    from flows import index as index_module
    from flows.index import IndexParams, index_flow
    from tasks.search.index import GalleryIndex

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in search_setup.searchable[:2]:
        shutil.copy2(search_setup.gallery / name, folder / name)
    for i, name in enumerate(search_setup.searchable[2:5]):
        with Image.open(search_setup.gallery / name) as image:  # bytes no other test of this module wrote
            image.transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(folder / f"part_{i}.jpg", quality=87)
    ws = search_setup.workspace
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(index_module, "EMBED_CHUNK", 2)
    parted = index_flow(IndexParams(folder=folder, name="flow-parts", workspace=ws.root, shard_size=1))
    messages = [r.getMessage() for r in caplog.records]
    assert any("5 new or changed images, 2 at a time" in m for m in messages)
    assert [m.split(" (")[0] for m in messages if m.startswith("part ")] == ["part 1/3", "part 2/3", "part 3/3"]
    embedded = [int(re.search(r": (\d+) images with", line).group(1)) for line in progress(caplog)]
    assert sum(embedded) == 3 and "(3 in all)" in progress(caplog)[-1]

    monkeypatch.setattr(index_module, "EMBED_CHUNK", 1000)  # the same folder as one part (all cached now)
    whole = index_flow(IndexParams(folder=folder, name="flow-whole", workspace=ws.root, rebuild=True))
    assert (parted.searchable, parted.flagged) == (whole.searchable, whole.flagged)
    a, b = GalleryIndex.load(ws.index_dir("flow-parts")), GalleryIndex.load(ws.index_dir("flow-whole"))
    assert list(a.images) == list(b.images)
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
    np.testing.assert_array_equal(a.projected, b.projected)


def test_index_flow_shards_on_a_dask_cluster(search_setup, tmp_path, caplog):
    distributed = pytest.importorskip("distributed")
    from flows.index import IndexParams, index_flow

    folder = tmp_path / "photos"
    folder.mkdir()
    for i, name in enumerate(search_setup.searchable[:2]):
        new_image(search_setup.gallery / name, folder / f"dask_{i}.jpg")
    caplog.set_level(logging.INFO)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        params = IndexParams(
            folder=folder,
            name="flow-dask",
            workspace=search_setup.workspace.root,
            shard_size=1,
            dask_address=cluster.scheduler_address,
            torch_threads=1,
        )
        summary = index_flow(params)
    assert summary.searchable + summary.flagged == 2
    assert any("on the Dask cluster tcp://127.0.0.1" in r.getMessage() for r in caplog.records)
    lines = progress(caplog)
    assert len(lines) == 2 and "2 of 2 embedded (100%)" in lines[-1], lines
