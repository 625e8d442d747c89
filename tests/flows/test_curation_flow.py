"""The ratings -> child-safety -> EDA stages inside the pipeline flow, on the sample dataset."""

import json

import pandas as pd
import pytest

from flows.pipeline import RunParams, run_pipeline
from tasks.ratings.aggregate import RatingParams
from tasks.safety.text_screen import ChildContentFilter


@pytest.fixture(scope="module")
def run(prefect_harness, sample_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("workspace")
    params = RunParams(data_dir=sample_dir, workspace=root, ratings=RatingParams(expert_method="majority"))
    return run_pipeline(params), root


def test_flow_writes_safe_training_set(run):
    result, root = run
    version_dir = root / "datasets" / result.ingest.version
    pairs = pd.read_parquet(version_dir / "training_pairs.parquet")
    safety = result.safety
    assert len(pairs) == safety.pairs_after == safety.pairs_before - safety.pairs_flagged
    assert safety.pairs_before == result.ratings.pairs
    assert safety.texts_flagged > 0 and safety.images_flagged > 0 and safety.pairs_flagged > 0
    assert not ChildContentFilter().screen_series(pairs["query_text"])["flagged"].any()
    flags = pd.read_parquet(version_dir / "child_image_flags.parquet")
    assert not pairs["image"].isin(flags.loc[flags["flagged"], "image"]).any()
    summary = json.loads((version_dir / "training_summary.json").read_text())
    assert summary["rating_params"]["expert_method"] == "majority"
    assert pairs["target"].between(0, 1).all()


def test_flow_writes_eda_report(run):
    result, root = run
    html = root / "reports" / "eda" / result.ingest.version / "report.html"
    assert result.eda_report == str(html) and html.is_file()
    # every figure the sample has data for (8: captions per image, ratings per image, caption length, ...),
    # each one shown on the page
    pngs = sorted(p.name for p in html.parent.glob("*.png"))
    page = html.read_text()
    assert len(pngs) == 8 and all(name in page for name in pngs), pngs


def test_flow_publishes_artifacts(run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def keys():
        async with get_client() as client:
            wanted = ["ratings-counts", "child-safety-counts", "child-safety-summary", "eda-report", "eda-report-html"]
            found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=wanted)))
            return {a.key for a in found}

    import asyncio

    assert asyncio.run(keys()) == {
        "ratings-counts",
        "child-safety-counts",
        "child-safety-summary",
        "eda-report",
        "eda-report-html",
    }
