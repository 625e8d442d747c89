"""Ground truth of the sample, seeds 0-4, after a real pipeline run with the demo's image encoder.

Every path (search, /images/, /api/score, score by path, the HTML report, the training set) is checked against
the images the generator drew with a child; the generator's truth is read only here, never by the pipeline.
- Children a caption or a rating gives away are hidden everywhere: strict.
- Children only the pixels show (no known caption mentions them) depend on the detector at the threshold their
  captions allow (training images: their out-of-fold score, as the training set judged them). Strict on every
  seed except those in PIXELS_STILL_SHOWN, each with its measured reason (README, "Sample ground truth").
The pipeline runs once per seed and embeds each image once per encoder (Lite0 for the models, Lite0 tile views
for the detector); the checks then read the embedding cache.
The text encoder is the fake one: the safety decision never reads text vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.integration

SEEDS = range(5)
# Seeds on which the detector still shows a child only its pixels give away, with what was measured. Only these
# may fail (not strictly: a better detector makes them pass); any other seed showing a child fails the run. Empty
# since the detector scores each tile view as well as the pooled vector (seed 3 was the last; README).
PIXELS_STILL_SHOWN: dict[int, str] = {}
QUERIES = ["a person on the grass", "a dog in the snow", "a red car on the street", "people by the sea"]


@dataclass(frozen=True)
class SampleRun:
    seed: int
    data_dir: Path
    workspace: object  # tasks.workspace.Workspace
    children: frozenset[str]
    unmentioned: frozenset[str]
    test_images: frozenset[str]


@pytest.fixture(scope="module", params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def sample_run(request, prefect_harness, tmp_path_factory) -> SampleRun:
    from flows.pipeline import RunParams, run_pipeline
    from tasks.ingest.sample import generate_sample
    from tasks.training.inputs import TrainParams
    from tasks.workspace import Workspace

    root = tmp_path_factory.mktemp(f"truth{request.param}")
    truth = generate_sample(root / "data", seed=request.param)
    workspace = Workspace(root / "workspace")
    run_pipeline(
        RunParams(
            data_dir=root / "data",
            workspace=workspace.root,
            seed=request.param,
            text_encoder="fake-text",
            image_encoder="efficientnet-lite0",
            training=TrainParams(models=["ridge"], force_promote=True),
        )
    )
    test_images = frozenset(pd.read_csv(root / "data" / "test_images.csv")["image"])
    return SampleRun(
        request.param,
        root / "data",
        workspace,
        frozenset(truth.child_images),
        frozenset(truth.unmentioned_child_images),
        test_images,
    )


def test_the_sample_has_children_only_pixels_give_away(sample_run):
    assert len(sample_run.children) >= 100  # about half of the 250 scenes
    assert sample_run.unmentioned & sample_run.test_images, "no test image hides its child from the captions"
    assert sample_run.unmentioned - sample_run.test_images, "no training image hides its child from the captions"


def _paths_checks(sample_run, children: frozenset[str]) -> None:
    """No image of `children` is searchable, served, scored (by name or by path), answered by /api/search (whose
    hits carry captions) or shown in the HTML report."""
    from fastapi.testclient import TestClient

    from tasks.search.report import search_page
    from tasks.search.searcher import Searcher
    from webapp.app import create_app

    searcher = Searcher.from_workspace(sample_run.workspace)
    searchable = sorted(children & set(searcher.index.images))
    assert not searchable, f"searchable: {searchable}"
    assert set(searcher.index.images), "the gallery must keep adult images searchable"
    client = TestClient(create_app(lambda: searcher))
    for name in children & sample_run.test_images:
        assert client.get(f"/images/{name}").status_code == 404
        body = client.post("/api/score", json={"text": "a house on the street", "image": name}).json()
        assert body["refused"], name
    for query in QUERIES:
        page = search_page(searcher.get_pictures(query, 10))
        assert not [name for name in children if name in page], query
        answer = client.get("/api/search", params={"q": query, "k": 100}).text  # with each hit's own captions
        assert not [name for name in children if name in answer], query
    paths = [
        sample_run.data_dir / ("test_images" if name in sample_run.test_images else "train_images") / name
        for name in sorted(children)
    ]
    scored = searcher.score_pairs(["a house on the street"] * len(paths), paths)
    assert [p.image for p in scored if not p.refused] == []


def _trained_images(sample_run) -> set[str]:
    trained: set[str] = set()
    versions = sample_run.workspace.dataset_versions()
    assert versions
    for version in versions:
        trained |= set(pd.read_parquet(version / "training_pairs.parquet")["image"])
    return trained


def _told(sample_run) -> frozenset[str]:
    """Children whose captions or ratings give them away, as the text screen reads them (it reads "two boys in
    blue" as the police idiom, so such a child counts as shown only by its pixels)."""
    flags = pd.read_parquet(sample_run.workspace.caption_flags_path)
    return sample_run.children & frozenset(flags.loc[flags["flagged"], "image"])


def test_children_humans_give_away_are_hidden_on_every_path(sample_run):
    told = _told(sample_run)
    assert told
    _paths_checks(sample_run, told)
    assert not _trained_images(sample_run) & told


def test_children_only_pixels_show_are_hidden_on_every_path(sample_run, request):
    if sample_run.seed in PIXELS_STILL_SHOWN:
        request.applymarker(pytest.mark.xfail(reason=PIXELS_STILL_SHOWN[sample_run.seed], strict=False))
    by_pixels = sample_run.children - _told(sample_run)
    _paths_checks(sample_run, by_pixels)
    trained = sorted(_trained_images(sample_run) & by_pixels)
    assert not trained, f"in the training set: {trained}"
