"""The two-tower's optional levers: rated pairs as positives and hard negatives, seed ensembles, fold splits."""

import numpy as np
import pytest
from test_training import synthetic

from tasks.training.data import build_datasets, image_folds
from tasks.training.fit import train_and_evaluate
from tasks.training.models import load_model


def test_image_folds_partition_the_images_and_follow_the_seed():
    images = np.array([f"img{i % 23}.jpg" for i in range(100)])
    folds = image_folds(images, 5, seed=1)
    assert len(folds) == 5 and sum(len(f) for f in folds) == 23
    assert set().union(*folds) == set(images.tolist())
    assert folds == image_folds(images, 5, seed=1) and folds != image_folds(images, 5, seed=2)


def test_explicit_validation_images_are_exactly_the_held_out_side():
    pairs, captions, text, image = synthetic()
    held = image_folds(pairs["image"].to_numpy(), 4, seed=0)[2]
    train, eval_data, _ = build_datasets(pairs, captions, text, image, 0.2, 0, val_images=held)
    assert set(eval_data.val.groups) == held and not held & set(train.groups)


@pytest.mark.parametrize(
    "options",
    [
        {"rated_positive_threshold": 0.7, "hard_negative_threshold": 0.3},
        {"ensemble": 2},
    ],
)
def test_levers_train_rank_and_round_trip(options, tmp_path):
    pairs, captions, text, image = synthetic()
    train, eval_data, _ = build_datasets(pairs, captions, text, image, 0.25, 0)
    result = train_and_evaluate(
        train, eval_data, kinds=("two_tower",), seed=0, model_options={"two_tower": {"epochs": 8, **options}}
    )
    assert result.metrics.loc["two_tower", "val_mrr"] > 1.5 * result.metrics.loc["random", "val_mrr"]
    model = result.models["two_tower"]
    vectors = model.embed_texts(eval_data.val.text)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)  # retrieval stays one dot product
    pred = model.predict(eval_data.val.text, eval_data.val.image)
    model.save(tmp_path)
    assert np.allclose(load_model(tmp_path).predict(eval_data.val.text, eval_data.val.image), pred, atol=1e-5)
