"""Group folds for the quality benchmark: seeded, disjoint folds of images, and builds that hold out exactly one."""

import numpy as np
from test_training import synthetic

from tasks.training.data import build_datasets, image_folds


def test_image_folds_partition_the_images_and_follow_the_seed():
    images = np.array([f"img{i % 23}.jpg" for i in range(100)])
    folds = image_folds(images, 5, seed=1)
    assert len(folds) == 5 and sum(len(f) for f in folds) == 23
    assert set().union(*folds) == set(images.tolist())
    assert folds == image_folds(images, 5, seed=1) and folds != image_folds(images, 5, seed=2)


def test_explicit_validation_images_are_exactly_the_held_out_side():
    pairs, captions, text, image = synthetic()
    held = image_folds(pairs["image"].to_numpy(), 4, seed=0)[2]
    train, eval_data, _ = build_datasets(pairs, captions, text, image, 0.2, 0, held_out_images=held)
    assert set(eval_data.val.groups) == held and not held & set(train.groups)
