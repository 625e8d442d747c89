"""The pipeline flow under a Prefect test server: stages run, results land in the workspace."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from data_contracts import ContractError
from flows.pipeline import RUN_SUMMARY_KEY, RunParams, run_pipeline, run_summary_markdown
from tasks.training.inputs import TrainParams
from tasks.training.registry import ModelRegistry

# Fake encoders and two quick models keep flow tests fast; one test below fits all four models.
FAKE_ENCODERS = {
    "text_encoder": "fake-text",
    "image_encoder": "fake-image",
    "training": TrainParams(models=["ridge", "two_tower"]),
}


def test_flow_ingests_and_writes_dataset_version(prefect_harness, sample_dir, workspace):
    state = run_pipeline(RunParams(data_dir=sample_dir, workspace=workspace.root, **FAKE_ENCODERS), return_state=True)
    result = state.result()
    version = result.ingest.version
    version_dir = workspace.root / "datasets" / version
    assert (version_dir / "train.parquet").is_file()
    assert json.loads((version_dir / "summary.json").read_text())["rows"]["queries"] == 12

    # the flow run itself carries the run summary (not one of its tasks), and it is the rendered result
    artifact = read_artifact(RUN_SUMMARY_KEY, state.state_details.flow_run_id)
    assert artifact.type == "markdown" and artifact.task_run_id is None
    assert artifact.data == run_summary_markdown(result)


def read_artifact(key: str, flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
        )
    return artifact


def test_run_summary_names_every_stage_with_its_counts_and_seconds(prefect_harness, sample_dir, workspace):
    result = run_pipeline(RunParams(data_dir=sample_dir, workspace=workspace.root, **FAKE_ENCODERS))
    stages = ("ingest", "ratings", "child safety", "eda", "embed", "image safety", "training", "gallery")
    assert set(result.seconds) == {*stages, "total"}
    assert result.seconds["total"] >= sum(result.seconds[s] for s in stages) - 0.1
    text = run_summary_markdown(result)
    table = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert f"{result.ingest.rows['queries']} queries" in table["ingest"]
    assert "texts (fake-text): 179 distinct, 0 from the cache, 179 computed" in table["embeddings"]
    assert "images (fake-image): 72 distinct, 0 from the cache, 72 computed" in table["embeddings"]
    assert f"{result.hidden_training_images} training images hidden" in table["image safety"]
    assert result.hidden_training_images > 0
    assert f"{result.gallery.searchable} searchable, {result.gallery.flagged} hidden" in table["gallery index"]
    assert f"| {result.seconds['embed']:.1f} |" in table["embeddings"]
    best = result.training.best
    value = result.training.metrics[best]["val_mrr"]
    assert f"| **{best}** | {value:.4f} |" in text  # the best model is highlighted with its headline metric
    assert set(result.training.fit_seconds) == {"ridge", "two_tower"}
    assert f"- **Champion**: {result.training.version} — this run's model was promoted" in text


def test_flow_stops_on_a_failed_contract(prefect_harness, sample_copy, workspace):
    path = sample_copy / "ExpertAnnotations.tsv"
    path.write_text(path.read_text().replace("\t4\n", "\t7\n", 1))
    with pytest.raises(ContractError, match="expert_annotations"):
        run_pipeline(RunParams(data_dir=sample_copy, workspace=workspace.root, **FAKE_ENCODERS))
    assert not (workspace.root / "datasets").exists() or not any((workspace.root / "datasets").iterdir())


def test_bad_parameters_fail_before_any_work(tmp_path):
    with pytest.raises(ValidationError, match="is not a folder"):
        RunParams(data_dir=tmp_path / "nope")
    with pytest.raises(ValidationError):
        RunParams(data_dir=tmp_path, seed=-1)


def test_flow_embeds_texts_and_images_and_reruns_from_cache(prefect_harness, sample_dir, workspace):
    params = RunParams(data_dir=sample_dir, workspace=workspace.root, **FAKE_ENCODERS)
    first = run_pipeline(params).embeddings
    assert first.counts == {"texts": 186, "train_images": 60, "test_images": 12}  # distinct texts of the sample
    assert (first.text_encoder, first.image_encoder) == ("fake-text", "fake-image")
    assert first.cache["image"].misses == 72 and first.cache["text"].hits == 0
    assert any((workspace.root / "cache" / "embeddings").iterdir())
    again = run_pipeline(params).embeddings
    assert again.cache["image"].hits == 72 and again.cache["text"].misses == 0


def test_flow_trains_registers_promotes_and_keeps_champion_on_rerun(prefect_harness, sample_dir, workspace):
    params = RunParams(
        data_dir=sample_dir,
        workspace=workspace.root,
        text_encoder="fake-text",
        image_encoder="fake-image",
        training=TrainParams(xgb_search=1, xgb_folds=2),
    )
    first = run_pipeline(params)
    training = first.training
    assert set(training.metrics) >= {"ridge", "xgboost", "study_mlp", "two_tower", "constant", "random"}
    assert training.promoted and training.reason == "no champion yet"
    registry = ModelRegistry(workspace)
    champion = registry.champion()
    assert champion.version == training.version and champion.kind == training.best
    version_dir = workspace.models / champion.version
    assert {"model", "metadata.json", "metrics.json", "model_card.md"} <= {p.name for p in version_dir.iterdir()}
    reports = workspace.root / "reports" / "training"
    assert (reports / "latest.html").is_file()
    # the report's plots lie beside it; no champion yet, so no champion-vs-challenger table
    assert {f"{training.version}-recall.png", f"{training.version}-calibration.png"} <= {
        p.name for p in reports.iterdir()
    }
    assert "Champion vs challenger" not in (reports / "latest.html").read_text()
    # the run's result carries the detector's operating point, and the numbers it reports are the ones saved beside it
    saved = json.loads(workspace.detector_path.with_suffix(".json").read_text())
    assert saved["high_recall"] == first.detector.high_recall and first.detector.high_recall["recall"] >= 0.95
    assert first.detector.label_counts["children"] > 0
    assert first.gallery.searchable + first.gallery.flagged == 12

    # Same data, same seed: the challenger only ties, so the champion stays and the run says why.
    second = run_pipeline(params)
    assert not second.training.promoted
    assert "does not beat" in second.training.reason
    assert registry.champion().version == champion.version
    assert len(registry.versions()) == 2
    # the champion was re-measured on this run's data: it appears in the comparison table
    assert any(name.startswith("champion") for name in second.training.metrics)
    page = (reports / "latest.html").read_text()
    assert "Champion vs challenger" in page and "not promoted" in page


def test_rerun_that_keeps_the_champion_leaves_the_gallery_alone(prefect_harness, sample_dir, workspace):
    from tasks.search.gallery import read_index_meta

    params = RunParams(
        data_dir=sample_dir, workspace=workspace.root, **{**FAKE_ENCODERS, "training": TrainParams(models=["ridge"])}
    )
    first = run_pipeline(params)
    assert first.training.promoted and first.gallery is not None and "champion changed" in first.gallery_reason
    meta = read_index_meta(workspace)
    assert meta["model_version"] == first.training.version
    assert meta["dataset_version"] == first.ingest.version and meta["version"]

    second = run_pipeline(params)
    assert not second.training.promoted and second.gallery is None
    assert "up to date" in second.gallery_reason and second.dataset_warning is None
    assert read_index_meta(workspace) == meta  # not rebuilt

    # the index goes missing: rebuilt for the same champion from the same dataset
    import shutil

    shutil.rmtree(workspace.index_dir("gallery"))
    third = run_pipeline(params)
    assert third.gallery is not None and "no gallery index" in third.gallery_reason
    assert read_index_meta(workspace)["model_version"] == first.training.version


def test_reindex_decision_never_indexes_another_dataset(tmp_path):
    from types import SimpleNamespace

    from tasks.search.gallery import dataset_mix_warning, reindex_decision

    champion = SimpleNamespace(version="m1", data_version="dsA")
    index = {"model_version": "m1", "dataset_version": "dsA", "safety_version": "s1", "folder": str(tmp_path)}
    assert not reindex_decision(None, None, False, "dsA", "s1").reindex
    assert not reindex_decision(champion, index, False, "dsA", "s1").reindex  # up to date
    assert not reindex_decision(champion, index, False, "dsB", "s1").reindex  # another dataset's run changes nothing
    promoted = reindex_decision(champion, index, True, "dsB", "s1")
    assert promoted.reindex and promoted.folder == ""  # the new champion's own test images
    assert reindex_decision(champion, None, False, "dsA", "s1").reindex
    refused = reindex_decision(champion, None, False, "dsB", "s1")
    assert (
        not refused.reindex and "dsA" in refused.reason and "dsB" in refused.reason and "not indexed" in refused.reason
    )
    # a stale model or a changed safety decision rebuilds the images the index already holds, whatever the run's data
    for stale in ({**index, "model_version": "m0"}, {**index, "safety_version": "s0"}, {**index, "model_version": ""}):
        decision = reindex_decision(champion, stale, False, "dsB", "s1")
        assert decision.reindex and decision.folder == str(tmp_path), stale
    custom = {**index, "dataset_version": ""}  # a folder indexed by hand stays the gallery for a new champion
    assert reindex_decision(champion, custom, True, "dsA", "s1").folder == str(tmp_path)
    # lookup settings the run asks for and the index lacks: rebuilt from the images it holds; none asked: kept
    from tasks.search.ann import AnnParams

    two_tower = {**index, "projected_for": "m1", "searchable": 500, "ann": {"kind": "exact"}}
    assert not reindex_decision(champion, two_tower, False, "dsA", "s1").reindex
    assert not reindex_decision(champion, two_tower, False, "dsA", "s1", AnnParams()).reindex  # auto: exact at 500
    wants_ivf = reindex_decision(champion, two_tower, False, "dsB", "s1", AnnParams(kind="ivf-flat"))
    assert wants_ivf.reindex and "lookup settings changed" in wants_ivf.reason and wants_ivf.folder == str(tmp_path)
    # a champion without a two-tower projection is searched exactly whatever is asked: nothing to rebuild
    assert not reindex_decision(
        champion, {**two_tower, "projected_for": ""}, False, "dsA", "s1", AnnParams(kind="ivf-flat")
    ).reindex
    warning = dataset_mix_warning(champion, "dsB", Path("/data/other"))
    assert warning and "dsA" in warning and "dsB" in warning and "/data/other" in warning
    assert dataset_mix_warning(champion, "dsA", Path("/data")) is None
