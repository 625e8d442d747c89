"""The fine-tuned child detector: the encoder that serves it computes what the fit scored, its weights are found
again in a new process, a fit learns, and a pipeline run trains it once and reuses it while its labels stand.

Real EfficientNet-Lite0 weights (from the installed package) on a few small generated images: seconds each."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tasks.safety.tuned_detector import FinetuneParams

QUICK = FinetuneParams(epochs=2, batch=4)


def images(folder, colours: list[tuple[int, int, int]], size=(96, 72)) -> list:
    """One JPEG per colour: a filled background with a lighter disc off centre (so the quadrants differ)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, colour in enumerate(colours):
        image = Image.new("RGB", size, colour)
        ImageDraw.Draw(image).ellipse((8 + 3 * k, 6, 40 + 3 * k, 38), fill=tuple(min(255, c + 90) for c in colour))
        paths.append(folder / f"img_{k:02d}.jpg")
        image.save(paths[-1], quality=95)
    return paths


@pytest.fixture
def clean_registry(monkeypatch):
    """A process that has registered no tuned weights (as a new server or CLI process starts)."""
    from tasks.embed.encoders.registry import get_image_encoder
    from tasks.safety import tuned_detector

    monkeypatch.setattr(tuned_detector, "_REGISTERED", {})
    monkeypatch.setattr(tuned_detector, "_SEARCH_DIRS", [])
    get_image_encoder.cache_clear()
    yield
    get_image_encoder.cache_clear()


def fitted(tmp_path, n: int = 8, params: FinetuneParams = QUICK):
    from tasks.safety.tuned_detector import fit_tail, trunk_maps

    reds = [(200, 40 + 10 * k, 30) for k in range(n // 2)]
    blues = [(30, 40 + 10 * k, 200) for k in range(n - n // 2)]
    paths = images(tmp_path / "imgs", reds + blues)
    labels = np.array([1] * len(reds) + [0] * len(blues))
    maps = trunk_maps(paths, params.trained_from)
    return paths, labels, maps, fit_tail(maps, labels, params, seed=0)


@pytest.mark.parametrize("trained_from", [QUICK.trained_from, 15])
def test_the_served_encoder_computes_what_the_fit_scored(trained_from, tmp_path, clean_registry):
    """Search and scoring read the tuned encoder's rows through `TunedLinear`; they equal the training forward
    pass on the same images (up to the trunk maps' float16 storage). With the head convolution alone trained (the
    default) and with Lite0's last block trained too (`trained_from=15`), whose weights the encoder loads as well."""
    import dataclasses

    from tasks.embed.encoders.batching import encode_image_files
    from tasks.embed.encoders.registry import get_image_encoder
    from tasks.safety.tuned_detector import TunedLinear, is_tuned, save_tail, tail_features, tail_scores

    params = dataclasses.replace(QUICK, trained_from=trained_from)
    paths, _, maps, tail = fitted(tmp_path, params=params)
    encoder_id = save_tail(tail, params, tmp_path / "tuned")
    assert is_tuned(encoder_id) and (tmp_path / "tuned" / f"{encoder_id}.pt").is_file()
    rows = encode_image_files(get_image_encoder(encoder_id), paths)
    assert rows.shape == (len(paths), 5 * 1280)
    np.testing.assert_allclose(rows, tail_features(tail, maps), rtol=0, atol=2e-2)
    served = TunedLinear.from_tail(tail, views=5).predict_proba(rows)[:, 1]
    np.testing.assert_allclose(served, tail_scores(tail, maps), atol=5e-3)
    # the same tensors give the same id: a refit that learned nothing new does not fork the embedding cache
    assert save_tail(tail, params, tmp_path / "tuned") == encoder_id


@pytest.mark.parametrize("bf16", [True, False])
def test_a_fit_learns_the_labels_and_keeps_float32_weights(bf16, tmp_path, clean_registry):
    """Training in bfloat16 (where the CPU has it; float32 elsewhere) leaves float32 weights that score in
    float32, so the served encoder is the same network either way."""
    import dataclasses

    import torch
    from sklearn.metrics import roc_auc_score

    from tasks.safety.tuned_detector import fit_tail, tail_scores

    _, labels, maps, _ = fitted(tmp_path, n=12)
    tail = fit_tail(maps, labels, dataclasses.replace(QUICK, bf16=bf16), seed=0)
    assert {p.dtype for p in tail.parameters()} == {torch.float32}
    scores = tail_scores(tail, maps)
    assert scores.dtype == np.float32 and roc_auc_score(labels, scores) == 1.0


def test_maps_and_fits_side_by_side_in_worker_processes_equal_those_computed_in_turn(tmp_path, monkeypatch):
    """The trunk maps in chunks over two processes, and the fold fits and the final fit over two processes, give
    what one process computes in turn on one thread: the same maps, out-of-fold scores and final weights."""
    from sklearn.model_selection import StratifiedKFold

    from tasks.parallel import on_one_thread
    from tasks.safety import tuned_detector
    from tasks.safety.tuned_detector import fit_folds_and_final, trunk_maps, trunk_maps_side_by_side

    paths, labels, maps, _ = fitted(tmp_path, n=8)
    monkeypatch.setattr(tuned_detector, "TRUNK_CHUNK", 3)  # three chunks: the order of the pieces is kept
    seen: list[int] = []
    chunked = trunk_maps_side_by_side(paths, QUICK.trained_from, workers=2, progress=seen.append)
    assert seen == [3, 6, 8]
    in_turn = on_one_thread(trunk_maps, paths, QUICK.trained_from)
    for a, b in zip(chunked, in_turn, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)

    folds = list(StratifiedKFold(2, shuffle=True, random_state=0).split(np.zeros(len(labels)), labels))
    lines: list[str] = []
    apart = fit_folds_and_final(maps, labels, folds, QUICK, seed=3, workers=2, log=lines.append)
    alone = on_one_thread(fit_folds_and_final, maps, labels, folds, QUICK, 3, 1)
    assert [line.split(":")[0] for line in lines] == ["final fit on every labelled image", "fold 1/2", "fold 2/2"]
    np.testing.assert_allclose(apart.oof, alone.oof, rtol=0, atol=1e-6)
    assert (apart.oof > 0).all()  # every image scored by the fit that did not see it
    for (name, a), (_, b) in zip(apart.final.state_dict().items(), alone.final.state_dict().items(), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-6, err_msg=name)


def test_packed_maps_give_back_each_images_views_and_tensors_share_one_buffer():
    """Fits in worker processes receive the maps as one flat array (joblib memory-maps it once for every fit);
    indexing gives each image's views, of whatever shapes, unchanged."""
    import pickle

    from tasks.safety.tuned_detector import PackedMaps, _as_tensors

    rng = np.random.default_rng(0)
    shapes = [[(4, 2, 3), (4, 3, 2)], [(4, 2, 2), (4, 1, 3)], [(4, 3, 3), (4, 2, 3)]]
    maps = [[rng.standard_normal(shape).astype(np.float16) for shape in views] for views in shapes]
    packed = PackedMaps.pack(maps)
    assert len(packed) == 3 and packed.flat.ndim == 1 and packed.flat.dtype == np.float16
    again = pickle.loads(pickle.dumps(packed))
    for i, views in enumerate(maps):
        for a, b in zip(packed[i], views, strict=True):
            np.testing.assert_array_equal(a, b)
        assert [v.shape for v in again[i]] == [v.shape for v in views]
    tensors = _as_tensors([packed[i] for i in (2, 0)])
    assert [[tuple(t.shape) for t in views] for views in tensors] == [shapes[2], shapes[0]]
    np.testing.assert_array_equal(tensors[1][1].numpy(), maps[0][1].astype(np.float32))
    flat = [t for views in tensors for t in views]  # end to end in one float32 buffer, in order
    for a, b in zip(flat, flat[1:], strict=False):
        assert b.data_ptr() == a.data_ptr() + 4 * a.numel()
    with pytest.raises(ValueError, match="same number of views"):
        PackedMaps.pack([maps[0], maps[1][:1]])


def test_a_fit_needs_both_classes(tmp_path):
    from tasks.safety.tuned_detector import fit_tail

    with pytest.raises(ValueError, match="both child and other"):
        fit_tail([[np.zeros((192, 7, 7), np.float16)]] * 3, np.zeros(3), QUICK, seed=0)


def test_a_loaded_detector_finds_its_weights_and_a_missing_file_says_where_it_looked(tmp_path, clean_registry):
    from tasks.embed.encoders.registry import get_image_encoder
    from tasks.safety import tuned_detector
    from tasks.safety.image_detector import ChildImageDetector, Thresholds
    from tasks.safety.tuned_detector import TUNED_DIR_NAME, TunedLinear, save_tail, weights_path

    _, _, _, tail = fitted(tmp_path)
    encoder_id = save_tail(tail, QUICK, tmp_path / "safety" / TUNED_DIR_NAME)
    detector = ChildImageDetector(TunedLinear.from_tail(tail, 5), encoder_id, Thresholds(0.3, 0.8))
    detector.save(tmp_path / "safety" / "child-detector.joblib")

    tuned_detector._REGISTERED.clear()  # a new process: nothing registered, and no default workspace holds it
    with pytest.raises(FileNotFoundError, match=encoder_id):
        get_image_encoder(encoder_id)
    loaded = ChildImageDetector.load(tmp_path / "safety" / "child-detector.joblib")
    assert weights_path(loaded.encoder_id) == tmp_path / "safety" / TUNED_DIR_NAME / f"{encoder_id}.pt"
    assert get_image_encoder(loaded.encoder_id).dim == 5 * 1280


def test_which_detector_a_run_trains():
    from tasks.safety.policy import ImageSafetyParams

    tiles = "efficientnet-lite0-tileviews"
    assert ImageSafetyParams().finetunes(tiles, labelled=972, children=300)
    assert not ImageSafetyParams().finetunes(tiles, labelled=199, children=105)  # the sample: linear
    assert not ImageSafetyParams(detector="linear").finetunes(tiles, labelled=972, children=300)
    assert ImageSafetyParams(detector="finetuned").finetunes(tiles, labelled=50, children=20)
    assert not ImageSafetyParams().finetunes("fake-image", labelled=972, children=300)
    with pytest.raises(ValueError, match="detector_encoder"):
        ImageSafetyParams(detector="finetuned").finetunes("fake-image", labelled=972, children=300)


@pytest.mark.integration
def test_a_run_fine_tunes_once_and_reuses_the_fit_while_the_labels_stand(
    prefect_harness, tmp_path, monkeypatch, clean_registry
):
    """The pipeline with the fine-tuned detector on a small sample: the detector, its report and every decision
    read the tuned encoder; a second run with the same labelled images trains nothing; a new process (nothing
    registered) decides test images through the saved weights."""
    from flows.pipeline import RunParams, run_pipeline
    from tasks.embed.encoders.registry import get_image_encoder
    from tasks.ingest.sample import generate_sample
    from tasks.safety import tuned_detector
    from tasks.safety.policy import ImageSafetyParams, SafetyPolicy
    from tasks.training.inputs import TrainParams
    from tasks.workspace import Workspace

    monkeypatch.setattr(tuned_detector, "FinetuneParams", lambda: QUICK)
    generate_sample(tmp_path / "data", seed=1, n_train=40, n_test=8)
    workspace = Workspace(tmp_path / "ws")
    params = RunParams(
        data_dir=tmp_path / "data",
        workspace=workspace.root,
        text_encoder="fake-text",
        image_encoder="fake-image",
        image_safety=ImageSafetyParams(detector="finetuned", detector_encoder="efficientnet-lite0-tileviews"),
        training=TrainParams(models=["ridge"], force_promote=True),
    )
    run_pipeline(params)
    report = json.loads(workspace.detector_path.with_suffix(".json").read_text())
    assert tuned_detector.is_tuned(report["encoder_id"])
    assert report["high_recall"]["recall"] >= 0.95
    assert len(list(workspace.tuned_detector_dir.glob("fit-*.joblib"))) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("the labelled images did not change: nothing should be trained")

    monkeypatch.setattr(tuned_detector, "trunk_maps", no_training)
    monkeypatch.setattr(tuned_detector, "fit_tail", no_training)
    run_pipeline(params)
    assert json.loads(workspace.detector_path.with_suffix(".json").read_text()) == report

    tuned_detector._REGISTERED.clear()
    get_image_encoder.cache_clear()
    policy = SafetyPolicy.load(workspace)
    assert policy.detector.encoder_id == report["encoder_id"]
    tests = sorted((tmp_path / "data" / "test_images").glob("*.jpg"))
    rows = get_image_encoder(policy.detector.encoder_id).encode_images([Image.open(p) for p in tests])
    decisions = policy.decide_files(tests, rows)
    assert len(decisions) == len(tests) and decisions["hidden"].dtype == bool


def test_pruning_keeps_the_newest_fits_their_weights_and_the_served_detector(tmp_path):
    import os

    import joblib

    from tasks.safety.tasks import TunedFit, prune_tuned_fits

    folder = tmp_path / "tuned"
    folder.mkdir()
    for k in range(5):  # fit 0 is the oldest
        encoder_id = f"efficientnet-lite0-tileviews-tuned-{k:016x}"
        (folder / f"{encoder_id}.pt").write_bytes(b"weights")
        path = folder / f"fit-{k}.joblib"
        joblib.dump(TunedFit(encoder_id, None, [], np.zeros(0), np.zeros(0)), path)
        os.utime(path, (1000 + k, 1000 + k))
    served = "efficientnet-lite0-tileviews-tuned-0000000000000000"
    assert prune_tuned_fits(folder, keep=3, also_keep={served}) == 2 + 1  # fits 0 and 1, weights of fit 1
    assert sorted(p.name for p in folder.glob("fit-*")) == ["fit-2.joblib", "fit-3.joblib", "fit-4.joblib"]
    assert sorted(p.stem[-1] for p in folder.glob("*.pt")) == ["0", "2", "3", "4"]
