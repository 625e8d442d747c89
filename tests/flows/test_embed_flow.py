"""The embedding flow under a Prefect test server: cached reruns, and the same vectors on a two-worker Dask cluster."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from flows.embed import EmbedParams, embed_flow
from tasks.embed.encoders.base import ModelNotAvailableError

FAKES = {"text_encoder": "fake-text", "image_encoder": "fake-image"}


def test_embed_flow_embeds_everything_once(prefect_harness, sample_dir, workspace, caplog):
    import logging
    import re

    caplog.set_level(logging.INFO)
    params = EmbedParams(data_dir=sample_dir, workspace=workspace.root, shard_size=40, **FAKES)
    first = embed_flow(params)
    assert first.summary.counts == {"texts": 186, "train_images": 60, "test_images": 12}
    assert first.summary.cache["image"].misses == 72 and first.summary.shards > 2
    # shard tasks in this process count their batches: a line per tenth of the images, through Prefect's logger
    line = re.compile(r"^embedding images with fake-image: (\d+)/72 rows \((\d+)%\)")
    tenths = [
        int(m[2]) // 10 for r in caplog.records if r.name.startswith("prefect") and (m := line.match(r.getMessage()))
    ]
    assert tenths == list(range(1, 11))
    assert first.train_images.lookup([first.train_images.keys[0]]).shape == (1, 48)

    second = embed_flow(params)
    assert second.summary.shards == 0
    assert second.summary.cache["image"].hits == 72 and second.summary.cache["text"].misses == 0
    np.testing.assert_array_equal(first.texts.matrix, second.texts.matrix)


def test_dask_cluster_gives_the_same_embeddings(prefect_harness, sample_dir, tmp_path):
    distributed = pytest.importorskip("distributed")
    local = embed_flow(EmbedParams(data_dir=sample_dir, workspace=tmp_path / "local", shard_size=16, **FAKES))
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        params = EmbedParams(
            data_dir=sample_dir,
            workspace=tmp_path / "dask",
            shard_size=16,
            dask_address=cluster.scheduler_address,
            torch_threads=1,
            **FAKES,
        )
        remote = embed_flow(params)
    assert remote.summary.shards == local.summary.shards > 2
    assert (local.summary.workers, remote.summary.workers) == (1, 2)  # both Dask workers took shards
    for name in ("texts", "train_images", "test_images"):
        ours, theirs = getattr(local, name), getattr(remote, name)
        assert ours.keys == theirs.keys
        np.testing.assert_array_equal(ours.matrix, theirs.matrix)


def test_missing_encoder_fails_before_ingestion(prefect_harness, sample_dir, workspace):
    with pytest.raises(ModelNotAvailableError):
        embed_flow(EmbedParams(data_dir=sample_dir, workspace=workspace.root, text_encoder="no-such-model-here"))
    assert not (workspace.root / "datasets").exists()


def test_bad_embed_parameters_fail_before_any_work(tmp_path):
    with pytest.raises(ValidationError):
        EmbedParams(data_dir=tmp_path, shard_size=0)
    with pytest.raises(ValidationError, match="is not a folder"):
        EmbedParams(data_dir=tmp_path / "nope")
