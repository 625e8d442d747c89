"""Behaviour of the ranking model (the two-tower), as Made-With-ML's model tier tests it: what it must do
(minimum functionality), what must not change its answer (invariance) and which way an input must move it
(direction). Tiny synthetic data and the fake text encoder keep each fit to a second or two."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tasks.embed.encoders.fakes import FakeTextEncoder
from tasks.search.index import top_k
from tasks.training.models.base import TrainingData
from tasks.training.models.two_tower import TwoTowerModel

COLOURS = ("red", "blue", "green", "yellow", "black")
OBJECTS = ("ball", "car", "dog", "kite", "boat")
# Each image shows one coloured object; its captions name both, in different words.
TEMPLATES = ("a {c} {o}", "{c} {o} in the sun", "the {o} is {c}")
ENCODER = FakeTextEncoder()
EPOCHS = 15


def image_vectors(seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Image features that carry the colour and the object, in a space of their own (not the text space)."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(ENCODER.dim, 40))
    names, rows = [], []
    for c, o in itertools.product(COLOURS, OBJECTS):
        concept = ENCODER.encode([c])[0] + ENCODER.encode([o])[0]
        names.append(f"{c}_{o}.jpg")
        rows.append(concept @ mixing + 0.05 * rng.normal(size=40))
    return names, np.asarray(rows, dtype=np.float32)


CAPTIONS = [(t.format(c=c, o=o), f"{c}_{o}.jpg") for c, o in itertools.product(COLOURS, OBJECTS) for t in TEMPLATES]


def rated_pairs(seed: int = 0) -> list[tuple[str, str, float]]:
    """(caption, image, target): own captions rated 1, two mismatched images per caption rated 0..0.2."""
    rng = np.random.default_rng(seed)
    names, _ = image_vectors()
    pairs = [(text, image, 1.0) for text, image in CAPTIONS]
    for text, own in CAPTIONS:
        for other in rng.choice([n for n in names if n != own], size=2, replace=False):
            pairs.append((text, str(other), float(rng.uniform(0, 0.2))))
    return pairs


def training_data(pairs: list[tuple[str, str, float]]) -> TrainingData:
    names, images = image_vectors()
    row_of = {name: k for k, name in enumerate(names)}
    return TrainingData(
        text=ENCODER.encode([p[0] for p in pairs]),
        image=images[[row_of[p[1]] for p in pairs]],
        target=np.array([p[2] for p in pairs], dtype=np.float32),
        groups=np.array([p[1] for p in pairs]),
        positives_text=ENCODER.encode([c[0] for c in CAPTIONS]),
        positives_image=images[[row_of[c[1]] for c in CAPTIONS]],
        positives_groups=np.array([c[1] for c in CAPTIONS]),
    )


def fit(data: TrainingData) -> TwoTowerModel:
    return TwoTowerModel(epochs=EPOCHS, batch_size=64, hidden=64, dim=32, patience=EPOCHS).fit(data, seed=0)


def ranking(model: TwoTowerModel, query: str, gallery: np.ndarray, k: int = 5) -> list[int]:
    """The gallery rows of the top k for a query, the way search ranks: encode, project, score, top k."""
    scores = model.score_matrix(ENCODER.encode([query]), gallery)[0]
    return top_k(scores, k).tolist()


@pytest.fixture(scope="module")
def model() -> TwoTowerModel:
    return fit(training_data(rated_pairs()))


@pytest.fixture(scope="module")
def gallery() -> tuple[list[str], np.ndarray]:
    return image_vectors()


def test_minimum_functionality_own_image_ranks_first(model, gallery):
    names, vectors = gallery
    queries = [(f"a {c} {o}", f"{c}_{o}.jpg") for c, o in itertools.product(COLOURS, OBJECTS)]
    first = [names[ranking(model, query, vectors, k=1)[0]] == image for query, image in queries]
    assert np.mean(first) >= 0.8, f"own image first for {sum(first)} of {len(first)} queries"


def test_invariance_to_case_and_punctuation(model, gallery):
    _, vectors = gallery
    for query in ("a red ball", "the kite is green", "black boat in the sun"):
        noisy = query.upper().replace(" ", " , ") + "!!!"
        assert ranking(model, noisy, vectors) == ranking(model, query, vectors), noisy


def test_invariance_to_gallery_order(model, gallery):
    names, vectors = gallery
    order = np.random.default_rng(1).permutation(len(names))
    for query in ("a blue car", "yellow dog in the sun"):
        direct = [names[r] for r in ranking(model, query, vectors)]
        shuffled = [names[order[r]] for r in ranking(model, query, vectors[order])]
        assert shuffled == direct, query


def test_invariance_to_the_scale_of_the_text_vector(model, gallery):
    _, vectors = gallery
    text = ENCODER.encode(["a green kite"])
    scaled, plain = model.score_matrix(3.0 * text, vectors)[0], model.score_matrix(text, vectors)[0]
    np.testing.assert_allclose(scaled, plain, rtol=1e-4, atol=1e-6)  # float32 rounding only
    assert top_k(scaled, 5).tolist() == top_k(plain, 5).tolist()


def test_direction_a_pair_rated_higher_scores_higher(model):
    data = training_data(rated_pairs())
    scores = model.predict(data.text, data.image)
    high, low = scores[data.target >= 0.99], scores[data.target <= 0.2]
    assert high.mean() > low.mean() + 0.2
    # and pair by pair: nearly every own caption scores above the typical mismatched pair
    assert np.mean(high > np.median(low)) >= 0.9


def test_direction_raising_ratings_raises_those_pairs_scores():
    pairs = rated_pairs()
    # the mismatched pairs that show a ball: a second run sees them rated 1 instead of 0..0.2
    raised = [k for k, (_, image, target) in enumerate(pairs) if target < 0.5 and image.endswith("_ball.jpg")]
    assert len(raised) >= 5
    boosted = [(t, i, 1.0) if k in raised else (t, i, y) for k, (t, i, y) in enumerate(pairs)]
    data = training_data(pairs)
    before = fit(data).predict(data.text[raised], data.image[raised])
    after = fit(training_data(boosted)).predict(data.text[raised], data.image[raised])
    assert after.mean() > before.mean() + 0.05, (before.mean(), after.mean())
