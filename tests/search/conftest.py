"""One trained workspace for every search test: the real pipeline flow on the sample, fake encoders.

The flow runs once per session (about 30 s). The fake colour-histogram image features make a weak
child detector whose thresholds hide nearly every image or nearly none; so the fixture sets both of
its thresholds to the 60th percentile of the gallery's scores, which leaves both searchable and
detector-hidden images to test with. Human flags (captions, ratings) are untouched.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FAKE = {"text_encoder": "fake-text", "image_encoder": "fake-image"}


@dataclass(frozen=True)
class SearchSetup:
    workspace: object  # tasks.workspace.Workspace
    gallery: Path  # folder indexed as "gallery"
    searchable: list[str]
    flagged: pd.DataFrame  # image, source, detail
    caption_flags: pd.DataFrame

    def flagged_by(self, source: str) -> list[str]:
        return self.flagged.loc[self.flagged["source"] == source, "image"].tolist()


@pytest.fixture(scope="session")
def search_setup(prefect_harness, sample_dir, tmp_path_factory) -> SearchSetup:
    from flows.pipeline import RunParams, run_pipeline
    from tasks.embed.cache import embed_image_files
    from tasks.embed.encoders.registry import get_image_encoder
    from tasks.safety.image_detector import ChildImageDetector, Thresholds
    from tasks.search.gallery import index_folder
    from tasks.training.inputs import TrainParams
    from tasks.workspace import Workspace

    root = tmp_path_factory.mktemp("search")
    workspace = Workspace(root / "workspace")
    result = run_pipeline(
        RunParams(
            data_dir=sample_dir,
            workspace=workspace.root,
            **FAKE,
            # the champion must be a two-tower (the tests exercise its vector lookup); with fake encoders and 14
            # validation queries a ridge model beside it wins or loses by chance, so it is not trained
            training=TrainParams(models=["two_tower"], force_promote=True),
        )
    )
    assert result.training.promoted, result.training
    # the run itself indexed the 12 test images as the gallery "gallery" (the fixture re-indexes it below)
    assert result.gallery.name == "gallery" and result.gallery.searchable + result.gallery.flagged == 12
    assert result.gallery.folder == str((sample_dir / "test_images").resolve())

    # The gallery: every sample image (train and test), so caption-flagged images are among them.
    gallery = root / "gallery"
    gallery.mkdir()
    for sub in ("train_images", "test_images"):
        for path in (sample_dir / sub).iterdir():
            shutil.copy2(path, gallery / path.name)

    detector = ChildImageDetector.load(workspace.detector_path)
    assert detector.encoder_id == "fake-image"  # a non-Lite image encoder is its own detector encoder
    names = sorted(p.name for p in gallery.iterdir())
    scores = detector.scores(
        embed_image_files([gallery / n for n in names], get_image_encoder("fake-image"), workspace).matrix
    )
    threshold = float(np.quantile(scores, 0.6))
    ChildImageDetector(detector.model, detector.encoder_id, Thresholds(threshold, threshold)).save(
        workspace.detector_path
    )

    summary = index_folder(gallery, "gallery", workspace)
    index_dir = workspace.index_dir("gallery")
    flagged = pd.read_parquet(index_dir / "flagged.parquet")
    searchable = pd.read_parquet(index_dir / "images.parquet")["image"].tolist()
    assert summary.searchable == len(searchable) >= 10
    assert {"captions", "detector"} <= set(flagged["source"]), flagged
    return SearchSetup(workspace, gallery, searchable, flagged, pd.read_parquet(workspace.caption_flags_path))


@pytest.fixture(scope="session")
def searcher(search_setup):
    from tasks.search.searcher import Searcher

    return Searcher.from_workspace(search_setup.workspace)


@pytest.fixture(scope="session")
def api(searcher):
    from fastapi.testclient import TestClient

    from webapp.app import create_app

    with TestClient(create_app(lambda: searcher)) as client:
        yield client


def clustered_vectors(n: int, *, seed: int, dim: int, centres: int) -> np.ndarray:
    """`n` unit vectors drawn around `centres` random centres: neighbours that are not trivial to find, unlike
    uniform noise (bench/search.py draws its large galleries the same way)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((centres, dim)).astype(np.float32)
    x = centers[rng.integers(0, centres, n)] + 0.7 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def clustered():
    """The synthetic-gallery generator, for the index tests: `clustered(n, seed=, dim=, centres=)`."""
    return clustered_vectors
