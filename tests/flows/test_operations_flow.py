"""Operations flows under a Prefect test server: the ratings inbox and its event, retrain, backfill, concurrency."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from flows.operations import (
    AllBatchesQuarantinedError,
    InboxParams,
    OperationResult,
    RetrainParams,
    backfill,
    ingest_ratings,
    retrain,
)
from tasks.ratings.inbox import load_ratings_store
from tasks.ratings.tasks import MERGED_EVENT, STORE_RESOURCE_ID
from tasks.training.registry import ModelRegistry

FAST = {"text_encoder": "fake-text", "image_encoder": "fake-image", "training": {"models": ["ridge", "two_tower"]}}


@pytest.fixture
def events(monkeypatch):
    """Every event the flows emit, captured instead of sent."""
    import prefect.events

    sent = []

    def capture(event, resource, payload=None, **kwargs):
        sent.append({"event": event, "resource": resource, "payload": payload})

    monkeypatch.setattr(prefect.events, "emit_event", capture)
    return sent


def rating_lines(sample_dir, kind: str, n: int, offset: int = 0) -> str:
    """Ratings of real (image, query_id) pairs of the sample: they pass every contract and reference check."""
    train = pd.read_csv(sample_dir / "train_dataset.csv")
    pairs = train.iloc[offset : offset + n]
    if kind == "crowd":
        return "".join(f"{r.image}\t{r.query_id}\t1.0\t3\t0\n" for r in pairs.itertuples())
    return "".join(f"{r.image}\t{r.query_id}\t4\t4\t3\n" for r in pairs.itertuples())


def drop(workspace, name: str, content: str) -> None:
    (workspace.inbox / name).write_text(content)


def inbox_params(sample_dir, workspace) -> InboxParams:
    return InboxParams(data_dir=sample_dir, workspace=workspace.root)


def test_inbox_flow_merges_good_quarantines_bad_and_ignores_duplicates(prefect_harness, sample_dir, workspace, events):
    drop(workspace, "crowd_2026-11.tsv", rating_lines(sample_dir, "crowd", 4))
    drop(workspace, "expert_2026-11.tsv", rating_lines(sample_dir, "expert", 3, offset=10))
    drop(workspace, "crowd_bad.tsv", rating_lines(sample_dir, "crowd", 2).replace("\t1.0\t", "\t1.7\t"))
    result = ingest_ratings(inbox_params(sample_dir, workspace))

    by_file = {o.file: o for o in result.outcomes}
    assert by_file["crowd_2026-11.tsv"].status == "merged" and by_file["crowd_2026-11.tsv"].rows == 4
    assert by_file["expert_2026-11.tsv"].status == "merged" and by_file["expert_2026-11.tsv"].rows == 3
    assert by_file["crowd_bad.tsv"].status == "quarantined" and "share_yes" in by_file["crowd_bad.tsv"].reason
    assert result.merged_rows == 7 and len(result.merged_batches) == 2
    # the known ids came from the dataset version the flow prepared
    assert (workspace.root / "datasets" / result.dataset_version / "summary.json").is_file()

    (event,) = events
    assert event["event"] == MERGED_EVENT and event["resource"]["prefect.resource.id"] == STORE_RESOURCE_ID
    assert sorted(b["batch_id"] for b in event["payload"]["batches"]) == sorted(result.merged_batches)
    assert event["payload"]["rows"] == 7

    # re-delivery: the same crowd file again, under another name -> duplicate, nothing merged, no event
    drop(workspace, "crowd_again.tsv", rating_lines(sample_dir, "crowd", 4))
    again = ingest_ratings(inbox_params(sample_dir, workspace))
    assert [o.status for o in again.outcomes] == ["duplicate"] and again.merged_rows == 0
    assert len(events) == 1
    store = load_ratings_store(workspace)
    assert len(store.crowd) == 4 and len(store.expert) == 3

    # an empty inbox: a quiet, successful run
    assert ingest_ratings(inbox_params(sample_dir, workspace)).outcomes == [] and len(events) == 1


def test_empty_inbox_poll_writes_no_artifact_and_runs_no_task(prefect_harness, sample_dir, workspace, events):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterId

    drop(workspace, ".copy-in-progress.tsv", rating_lines(sample_dir, "crowd", 2))  # hidden: not a batch yet
    state = ingest_ratings(inbox_params(sample_dir, workspace), return_state=True)
    assert state.is_completed() and state.result().outcomes == [] and state.result().dataset_version is None
    run_id = state.state_details.flow_run_id

    async def written():
        async with get_client() as client:
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
            )
            tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
            return artifacts, tasks

    artifacts, tasks = asyncio.run(written())
    assert artifacts == [] and tasks == []
    assert events == [] and not list((workspace.root / "datasets").glob("*")), "nothing ingested for an empty poll"


def test_unexpected_file_in_the_inbox_is_reported_once(prefect_harness, sample_dir, workspace, events):
    drop(workspace, "ratings.csv", rating_lines(sample_dir, "crowd", 2))
    state = ingest_ratings(inbox_params(sample_dir, workspace), return_state=True)
    assert state.is_failed(), "the only file was quarantined: an operator must look"
    with pytest.raises(AllBatchesQuarantinedError, match=r"ratings.csv: unexpected file name"):
        state.result()
    assert list(workspace.quarantine.glob("*ratings.csv.reason.txt"))
    assert ingest_ratings(inbox_params(sample_dir, workspace)).outcomes == [], "the next poll is quiet again"


def test_inbox_flow_fails_when_every_file_is_bad(prefect_harness, sample_dir, workspace, events):
    drop(workspace, "crowd_bad.tsv", "nope.jpg\tnope.jpg#0\t1.0\t3\t0\n")
    state = ingest_ratings(inbox_params(sample_dir, workspace), return_state=True)
    assert state.is_failed()
    with pytest.raises(AllBatchesQuarantinedError, match="nope.jpg"):
        state.result()
    assert events == []
    assert list(workspace.quarantine.glob("*crowd_bad.tsv.reason.txt"))


def test_retrain_uses_the_cache_and_promotes_only_a_better_model(prefect_harness, sample_dir, workspace, events):
    params = RetrainParams(data_dir=sample_dir, workspace=workspace.root, **FAST)
    first = retrain(params)
    assert first.run.training.promoted and "no champion yet" in first.run.training.reason

    drop(workspace, "expert_new.tsv", rating_lines(sample_dir, "expert", 5))
    assert ingest_ratings(inbox_params(sample_dir, workspace)).merged_rows == 5
    second = retrain(params)
    cache = second.run.embeddings.cache
    assert cache["image"].misses == 0 and cache["text"].misses == 0 and cache["image"].hits == 72
    assert "| image | 72 | 72 | 0 |" in second.summary_markdown
    assert "1 merged batch(es) included" in second.summary_markdown
    champion = ModelRegistry(workspace).champion()
    if second.run.training.promoted:
        assert champion.version == second.run.training.version
    else:
        # the challenger lost: the champion stays and the summary says why
        assert champion.version == first.run.training.version
        assert "does not beat" in second.summary_markdown and "Not promoted" in second.summary_markdown


def test_backfill_with_a_new_encoder_reembeds_and_retrains(prefect_harness, sample_dir, workspace):
    base = {
        "data_dir": sample_dir,
        "workspace": workspace.root,
        "text_encoder": "fake-text",
        "training": {"models": ["ridge"]},
        "index_gallery": False,
    }
    first = backfill(image_encoder="fake-image", **base)
    assert first.run.embeddings.cache["image"].misses == 72

    other = backfill(image_encoder="fake-image-b", **base)
    cache = other.run.embeddings.cache
    assert cache["image"].misses == 72 and cache["text"].misses == 0  # new image encoder, texts from the cache
    registry = ModelRegistry(workspace)
    assert registry.record(other.run.training.version).image_encoder == "fake-image-b"

    # forced: everything re-embedded; the old cache parts stay until the new ones are written and read back
    parts_before = set((workspace.embedding_cache_dir("fake-image-b")).glob("part-*.parquet"))
    forced = backfill(image_encoder="fake-image-b", force_reembed=True, **base)
    cache = forced.run.embeddings.cache
    assert cache["image"].hits == 0 and cache["image"].misses == 72
    assert cache["text"].hits == 0 and cache["text"].misses == cache["text"].unique
    assert "forced re-embed" in forced.summary_markdown
    assert parts_before < set(workspace.embedding_cache_dir("fake-image-b").glob("part-*.parquet"))
    # and the next run reads the cache back complete
    assert backfill(image_encoder="fake-image-b", **base).run.embeddings.cache["image"].hits == 72


def test_ann_parameters_of_a_backfill_reach_the_gallery_index(prefect_harness, sample_dir, workspace):
    """An override in the flow's parameters is what the built index holds; a later run that asks for other
    settings re-indexes for them alone (same champion)."""
    from tasks.search.gallery import read_index_meta
    from tasks.search.index import GalleryIndex

    base = {"data_dir": sample_dir, "workspace": workspace.root, "text_encoder": "fake-text"}
    base |= {"image_encoder": "fake-image", "training": {"models": ["two_tower"]}}  # projected vectors: IVF applies
    first = backfill(**base, ann={"kind": "ivf-flat", "exact_below": 0, "candidates": 3, "nprobe": 5})
    assert first.run.training.promoted and first.run.gallery.lookup == "ivf-flat"
    index = GalleryIndex.load(workspace.index_dir("gallery"))
    assert index.ann["kind"] == "ivf-flat" and index.ann["candidates"] == 3
    # a gallery this small trains a single list, so nprobe is capped there
    assert index.ann["nlist"] == index.ivf.nlist == 1 and index.ann["nprobe"] == 1
    assert type(index.ivf).__name__ == "IndexIVFFlat" and index.ivf.ntotal == len(index.images)

    second = backfill(**base, ann={"kind": "ivf-sq8"})
    assert not second.run.training.promoted  # the same model again: only the lookup settings changed
    assert "lookup settings changed" in second.run.gallery_reason
    index = GalleryIndex.load(workspace.index_dir("gallery"))
    assert index.ann["kind"] == "ivf-sq8" and type(index.ivf).__name__ == "IndexIVFScalarQuantizer"
    assert read_index_meta(workspace)["ann"]["kind"] == "ivf-sq8"  # (no settings asked: see test_reindex_decision)


def test_backfill_rejects_an_unknown_encoder_before_any_work(prefect_harness, sample_dir, workspace):
    with pytest.raises(ValueError, match="unknown image encoder"):
        backfill(data_dir=sample_dir, workspace=workspace.root, text_encoder="fake-text", image_encoder="nope")
    assert not (workspace.root / "datasets").exists()


def test_two_concurrent_retrains_leave_a_valid_registry_and_store(prefect_harness, sample_dir, workspace, events):
    drop(workspace, "crowd_a.tsv", rating_lines(sample_dir, "crowd", 3))
    drop(workspace, "expert_b.tsv", rating_lines(sample_dir, "expert", 3, offset=5))
    params = RetrainParams(data_dir=sample_dir, workspace=workspace.root, **{**FAST, "training": {"models": ["ridge"]}})
    results, errors = [], []

    def run(fn, *args):
        try:
            results.append(fn(*args))
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [
        threading.Thread(target=run, args=(ingest_ratings, inbox_params(sample_dir, workspace))),
        threading.Thread(target=run, args=(ingest_ratings, inbox_params(sample_dir, workspace))),
        threading.Thread(target=run, args=(retrain, params)),
        threading.Thread(target=run, args=(retrain, params)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors, errors
    assert len(results) == 4

    registry = ModelRegistry(workspace)
    champion = registry.champion()
    assert champion is not None and champion.version in registry.versions()
    registry.load(champion.version)  # the champion's files are complete
    trained = [r for r in results if isinstance(r, OperationResult) and not r.skipped]
    # a retrain that found nothing new since the other one (both merges already in) ends without training
    assert 1 <= len(trained) == len(registry.versions()) <= 2
    store = load_ratings_store(workspace)
    assert len(store.crowd) == 3 and len(store.expert) == 3
    assert store.crowd["batch_id"].nunique() == 1 and store.expert["batch_id"].nunique() == 1
    assert len(events) <= 2 and sum(len(e["payload"]["batches"]) for e in events) == 2


def test_a_crash_mid_retrain_leaves_the_last_good_state(prefect_harness, sample_dir, workspace, monkeypatch):
    import fcntl

    import tasks.training.registry

    params = RetrainParams(data_dir=sample_dir, workspace=workspace.root, **{**FAST, "training": {"models": ["ridge"]}})
    good = retrain(params).run.training.version

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash while writing the model version")

    monkeypatch.setattr(tasks.training.registry, "model_card", crash)  # dies inside the version's atomic_dir
    workspace.last_retrain_path.unlink()  # or the same inputs would end the retrain before it trains
    with pytest.raises(RuntimeError, match="simulated crash"):
        retrain(params)
    registry = ModelRegistry(workspace)
    assert registry.versions() == [good] and registry.champion().version == good
    assert not [
        p for p in workspace.models.iterdir() if p.name.startswith(".") and p.is_dir()
    ]  # no half-written version
    with open(workspace.lock_path("training"), "a+") as handle:  # the lock went with the failed run
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_retrains_coalesce_after_several_merges_in_a_row(prefect_harness, sample_dir, workspace, events):
    params = RetrainParams(data_dir=sample_dir, workspace=workspace.root, **{**FAST, "training": {"models": ["ridge"]}})
    first = retrain(params)
    assert not first.skipped and first.run is not None
    recorded = workspace.read_last_retrain()
    assert recorded["model_version"] == first.run.training.version and recorded["store_batches"] == 0

    again = retrain(params)  # nothing merged since: ends at once and says so
    assert again.skipped and again.run is None
    assert "skipped" in again.summary_markdown and "Nothing new since the last good retrain" in again.summary_markdown
    assert len(ModelRegistry(workspace).versions()) == 1

    # three merges in a row queue three retrains: the first trains on all three batches, the others end at once
    for k in range(3):
        drop(workspace, f"crowd_{k}.tsv", rating_lines(sample_dir, "crowd", 2, offset=2 * k))
        assert ingest_ratings(inbox_params(sample_dir, workspace)).merged_rows == 2
    assert len(events) == 3
    queued = [retrain(params) for _ in events]
    assert [r.skipped for r in queued] == [False, True, True]
    assert "3 merged batch(es) included" in queued[0].summary_markdown
    assert workspace.read_last_retrain()["store_batches"] == 3
    assert len(ModelRegistry(workspace).versions()) == 2

    # retrains queued at the same time take the training lock in turn: only the first has anything new
    drop(workspace, "expert_new.tsv", rating_lines(sample_dir, "expert", 3))
    assert ingest_ratings(inbox_params(sample_dir, workspace)).merged_rows == 3
    results: list[OperationResult] = []
    threads = [threading.Thread(target=lambda: results.append(retrain(params))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert sorted(r.skipped for r in results) == [False, True, True]
    assert len(ModelRegistry(workspace).versions()) == 3

    # a backfill is an explicit rebuild: it always trains
    assert not backfill(
        sample_dir, "fake-text", "fake-image", training={"models": ["ridge"]}, workspace=workspace.root
    ).skipped
