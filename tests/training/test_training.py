"""Training and evaluation on synthetic embeddings with a known latent structure."""

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from tasks.training.data import build_datasets, split_by_image
from tasks.training.fit import better, select_best, train_and_evaluate
from tasks.training.metrics import kendall_tau_c, regression_metrics, retrieval_metrics
from tasks.training.models import load_model


@dataclass
class Table:
    keys: list
    matrix: np.ndarray

    def lookup(self, keys):
        index = {k: i for i, k in enumerate(self.keys)}
        return self.matrix[[index[k] for k in keys]]


def synthetic(n_images=60, captions=3, seed=0, latent=6):
    """Images and captions share a latent vector; text and image live in different spaces."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n_images, latent))
    a, b = rng.normal(size=(latent, 24)), rng.normal(size=(latent, 32))
    images = [f"img{i}.jpg" for i in range(n_images)]
    image_table = Table(images, (z @ b + 0.1 * rng.normal(size=(n_images, 32))).astype(np.float32))
    qids, qz = [], []
    for i in range(n_images):
        for n in range(captions):
            qids.append(f"img{i}.jpg#{n}")
            qz.append(z[i] + 0.3 * rng.normal(size=latent))
    qz = np.array(qz)
    text_table = Table(qids, (qz @ a + 0.1 * rng.normal(size=(len(qids), 24))).astype(np.float32))
    rows = []
    for i, image in enumerate(images):
        for q in rng.choice(len(qids), size=8, replace=False):
            cos = qz[q] @ z[i] / (np.linalg.norm(qz[q]) * np.linalg.norm(z[i]))
            target = float(np.clip((cos + 1) / 2 + 0.05 * rng.normal(), 0, 1))
            rows.append((image, qids[q], target, target if rng.random() < 0.5 else np.nan))
    pairs = pd.DataFrame(rows, columns=["image", "query_id", "target", "expert_score"]).drop_duplicates(
        ["image", "query_id"]
    )
    captions_frame = pd.DataFrame({"query_id": qids, "image": [q.split("#")[0] for q in qids], "safe": True})
    return pairs, captions_frame, text_table, image_table


def test_split_keeps_each_image_on_one_side():
    pairs, *_ = synthetic()
    train_idx, val_idx = split_by_image(pairs, 0.25, seed=1)
    assert not set(pairs.iloc[train_idx]["image"]) & set(pairs.iloc[val_idx]["image"])
    assert len(train_idx) + len(val_idx) == len(pairs)
    again = split_by_image(pairs, 0.25, seed=1)
    assert (again[0] == train_idx).all()


def test_retrieval_metrics_exact_values_and_ties():
    scores = np.array([[0.9, 0.1, 0.2], [0.3, 0.2, 0.8], [0.5, 0.5, 0.5]])
    m = retrieval_metrics(scores, np.array([0, 0, 1]))
    # ranks: 1, 2, and uniform over {1,2,3} for the constant row
    assert m["r1"] == pytest.approx((1 + 0 + 1 / 3) / 3)
    assert m["mrr"] == pytest.approx((1 + 0.5 + (1 + 1 / 2 + 1 / 3) / 3) / 3)
    assert m["r5"] == pytest.approx(1.0)
    ndcg_third = (1 + 1 / np.log2(3) + 1 / np.log2(4)) / 3
    assert m["ndcg10"] == pytest.approx((1 + 1 / np.log2(3) + ndcg_third) / 3)


def test_regression_and_tau():
    assert regression_metrics(np.array([0.5, 1.0]), np.array([0.0, 1.0])) == pytest.approx(
        {"rmse": np.sqrt(0.125), "mae": 0.25}
    )
    assert kendall_tau_c(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.0, 0.3, 0.6, np.nan])) == pytest.approx(1.0)
    assert kendall_tau_c(np.ones(4), np.array([0.0, 0.3, 0.6, 1.0])) == 0.0


def test_better_and_select_respect_metric_direction():
    assert better("rmse", 0.1, 0.2) and not better("mrr", 0.1, 0.2) and better("mrr", 0.1, float("nan"))
    table = pd.DataFrame({"rmse": [0.2, 0.1], "val_mrr": [0.5, 0.3]}, index=["a", "b"])
    assert select_best(table, "rmse", ["a", "b"]) == "b"
    assert select_best(table, "val_mrr", ["a", "b"]) == "a"
    with pytest.raises(ValueError, match="primary metric"):
        select_best(table, "nope", ["a"])


@pytest.fixture(scope="module")
def outcome():
    pairs, captions, text, image = synthetic()
    test_q = captions[captions["query_id"].str.endswith("#0")].head(20)
    gallery = sorted(test_q["image"])
    train, eval_data, summary = build_datasets(
        pairs, captions, text, image, 0.25, seed=0, test_queries=test_q, test_gallery=gallery, test_image_emb=image
    )
    assert summary.val_images > 0 and summary.train_positives > 0
    options = {"xgboost": {"n_search": 2, "n_folds": 2}, "study_mlp": {"epochs": 15}, "two_tower": {"epochs": 25}}
    return train_and_evaluate(train, eval_data, seed=0, model_options=options), eval_data


def test_every_model_and_baseline_has_every_metric(outcome):
    result, _ = outcome
    assert set(result.metrics.index) == {"ridge", "xgboost", "study_mlp", "two_tower", "constant", "random"}
    for column in ("rmse", "mae", "tau_c", "val_mrr", "r1", "r5", "r10", "mrr", "ndcg10", "safe_mrr"):
        assert result.metrics[column].notna().all(), column
    assert result.best in {"ridge", "xgboost", "study_mlp", "two_tower"}


def test_ranking_model_beats_baselines_on_ranking(outcome):
    result, _ = outcome
    m = result.metrics
    assert m.loc["two_tower", "mrr"] > 2 * m.loc["random", "mrr"]
    assert m.loc["two_tower", "val_mrr"] > m.loc["ridge", "val_mrr"]
    assert m.loc["constant", "r1"] == pytest.approx(1 / 20)


def test_predictions_in_unit_interval_and_models_round_trip(outcome, tmp_path):
    result, eval_data = outcome
    for kind, model in result.models.items():
        pred = model.predict(eval_data.val.text, eval_data.val.image)
        assert np.isfinite(pred).all() and (pred >= 0).all() and (pred <= 1).all(), kind
        directory = tmp_path / kind
        directory.mkdir()
        model.save(directory)
        again = load_model(directory)
        assert np.allclose(again.predict(eval_data.val.text, eval_data.val.image), pred, atol=1e-5), kind


def test_same_seed_same_metrics():
    pairs, captions, text, image = synthetic(n_images=30)
    train, eval_data, _ = build_datasets(pairs, captions, text, image, 0.25, seed=3)
    opts = {"two_tower": {"epochs": 5}}
    a = train_and_evaluate(train, eval_data, kinds=("ridge", "two_tower"), seed=3, model_options=opts).metrics
    b = train_and_evaluate(train, eval_data, kinds=("ridge", "two_tower"), seed=3, model_options=opts).metrics
    pd.testing.assert_frame_equal(a, b)


def test_one_line_per_model_fitted_with_its_seconds_and_validation_metric(caplog):
    import logging
    import re

    pairs, captions, text, image = synthetic(n_images=30)
    train, eval_data, _ = build_datasets(pairs, captions, text, image, 0.25, seed=3)
    caplog.set_level(logging.INFO, logger="tasks.training.fit")
    result = train_and_evaluate(
        train, eval_data, kinds=("ridge", "two_tower"), seed=3, model_options={"two_tower": {"epochs": 3}}
    )
    line = re.compile(r"^fitted (\w+) \((\d)/2\) in [\d.]+ s: val_mrr = ([\d.]+)$")
    fitted = [m.groups() for r in caplog.records if (m := line.match(r.getMessage()))]
    assert [(kind, n) for kind, n, _ in fitted] == [("ridge", "1"), ("two_tower", "2")]
    for kind, _, value in fitted:
        assert float(value) == pytest.approx(result.metrics.loc[kind, "val_mrr"], abs=5e-5)


def test_unknown_model_is_refused():
    pairs, captions, text, image = synthetic(n_images=20)
    train, eval_data, _ = build_datasets(pairs, captions, text, image, 0.25, seed=0)
    with pytest.raises(ValueError, match="unknown model"):
        train_and_evaluate(train, eval_data, kinds=("ridge", "nope"))


def test_ndcg_is_sklearns_and_equals_the_expectation_over_random_tie_breaks():
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 3, size=(40, 15)).astype(float)  # many ties
    relevant = rng.integers(0, 15, size=40)
    truth = np.eye(15)[relevant]
    ndcg = retrieval_metrics(scores, relevant)["ndcg10"]
    assert ndcg == pytest.approx(ndcg_score(truth, scores, k=10))
    # the reference: average the discount over every rank the relevant image can take among its ties
    own = scores[np.arange(40), relevant][:, None]
    higher, ties = (scores > own).sum(axis=1), (scores == own).sum(axis=1) - 1
    expected = [
        np.mean([1 / np.log2(r + 1) if r <= 10 else 0.0 for r in range(h + 1, h + t + 2)])
        for h, t in zip(higher, ties, strict=True)
    ]
    assert ndcg == pytest.approx(np.mean(expected))
    assert retrieval_metrics(np.zeros((3, 1)), np.zeros(3, dtype=int))["ndcg10"] == 1.0  # a one-image gallery


def test_mean_reciprocal_rank_breaks_ties_at_random_in_expectation():
    from tasks.training.metrics import mean_reciprocal_rank

    # ranks 1, 2, and uniform over {1, 2, 3}
    scores = np.array([[0.9, 0.1, 0.2], [0.3, 0.2, 0.8], [0.5, 0.5, 0.5]])
    assert mean_reciprocal_rank(scores, np.array([0, 0, 1])) == pytest.approx((1 + 0.5 + 11 / 18) / 3)


def test_champion_is_evaluated_once_on_this_runs_data(outcome):
    from tasks.training.fit import measure_champion

    result, eval_data = outcome

    class Record:
        version, kind, text_encoder, image_encoder = "v1", "ridge", "t", "i"
        metrics = {"val_mrr": 0.123}

    class Registry:
        loads = 0

        def champion(self):
            return Record()

        def load(self, version):
            self.loads += 1
            return result.models["ridge"]

    registry = Registry()
    measured = measure_champion(registry, eval_data, "t", "i")
    assert registry.loads == 1
    assert measured.value("val_mrr") == pytest.approx(result.metrics.loc["ridge", "val_mrr"])
    assert measured.table_row() == measured.metrics
    # other encoders: nothing is loaded, and only the stored metrics compare
    other = measure_champion(registry, eval_data, "t", "other-image-encoder")
    assert registry.loads == 1 and other.value("val_mrr") is None and other.table_row() == {"val_mrr": 0.123}


def test_recall_curve_by_hand_with_a_tie():
    from tasks.training.metrics import recall_curve

    # query 0: own image first; query 1: two images above it; query 2: tied with one other image for first
    scores = np.array([[0.9, 0.1, 0.2, 0.0], [0.3, 0.2, 0.8, 0.5], [0.7, 0.7, 0.1, 0.0]])
    curve = recall_curve(scores, np.array([0, 0, 1]), max_k=4)
    assert curve == pytest.approx([(1 + 0 + 0.5) / 3, (1 + 0 + 1) / 3, (1 + 1 + 1) / 3, 1.0])
    # the same tie handling as the table's r1 / r5 / r10
    full = retrieval_metrics(scores, np.array([0, 0, 1]))
    assert recall_curve(scores, np.array([0, 0, 1]))[0] == pytest.approx(full["r1"])


def test_training_report_has_plots_winner_explanations_and_champion(outcome, tmp_path):
    import re

    from tasks.training.fit import ChampionMeasure, curve_set
    from tasks.training.registry import ModelRecord, PromotionDecision
    from tasks.training.tasks import Comparison, Registration, training_page

    result, eval_data = outcome
    champion_record = ModelRecord("v0001", "ridge", "t", "i", "h", "val_mrr", {"val_mrr": 0.01}, {}, "now")
    champion = ChampionMeasure(champion_record, dict(result.metrics.loc["ridge"]), [0.1] * 10)
    comparison = Comparison(result, None, champion, 1.0, eval_data.val_expert, curve_set(eval_data))  # type: ignore[arg-type]
    record = ModelRecord("v0002", result.best, "t", "i", "h", "val_mrr", {}, {}, "now")
    decision = PromotionDecision(True, "beats the champion on val_mrr", "v0002", "v0001", 0.5, 0.01)
    page = training_page(comparison, Registration(record, decision), ["a note"], tmp_path)

    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == 2 and all((tmp_path / name).stat().st_size > 1000 for name in images)
    assert f'<tr class="best"><th>{result.best} <span class="mark">★ best</span>' in page
    assert page.count('class="best"') == 1
    # every column is explained in a tooltip and in the legend, prefixes too
    assert "<abbr title=" in page and "Kendall&#39;s tau-c" in page and "NDCG@10" in page
    assert "val_: validation captions" in page and "safe_: only the test captions" in page
    assert "Champion vs challenger" in page and "champion: ridge (v0001)" in page and "re-measured on this run" in page
    assert "promoted — beats the champion on val_mrr" in page


def test_calibration_bins_mean_prediction_per_expert_score():
    from tasks.training.report import calibration_bins

    expert = np.array([0.0, 0.0, 0.5, np.nan, 1.0])
    bins = calibration_bins(np.array([0.1, 0.3, 0.5, 0.9, 0.8]), expert)
    assert bins["expert"].tolist() == [0.0, 0.5, 1.0] and bins["pairs"].tolist() == [2, 1, 1]
    assert bins["mean_predicted"].tolist() == pytest.approx([0.2, 0.5, 0.8])
    many = calibration_bins(np.linspace(0, 1, 101), np.linspace(0, 1, 101), max_bins=4)
    assert len(many) == 4 and many["pairs"].sum() == 101


def test_training_report_without_champion_has_no_head_to_head(outcome, tmp_path):
    from tasks.training.fit import curve_set
    from tasks.training.registry import ModelRecord, PromotionDecision
    from tasks.training.tasks import Comparison, Registration, training_page

    result, eval_data = outcome
    comparison = Comparison(result, None, None, 1.0, eval_data.val_expert, curve_set(eval_data))  # type: ignore[arg-type]
    record = ModelRecord("v0001", result.best, "t", "i", "h", "val_mrr", {}, {}, "now")
    decision = PromotionDecision(True, "first model", "v0001", None, 0.5, None)
    page = training_page(comparison, Registration(record, decision), [], tmp_path)
    assert "Champion vs challenger" not in page and (tmp_path / "v0001-recall.png").exists()


@pytest.mark.parametrize(
    ("text_tower", "image_tower"), [("identity", "linear"), ("linear", "linear"), ("mlp", "linear")]
)
def test_two_tower_with_a_locked_text_tower_or_a_linear_image_tower_ranks_and_round_trips(
    text_tower, image_tower, tmp_path
):
    from tasks.training.models.two_tower import TwoTowerModel

    pairs, captions, text_table, image_table = synthetic()
    train, eval_data, _ = build_datasets(pairs, captions, text_table, image_table, 0.25, seed=0)
    model = TwoTowerModel(epochs=25, text_tower=text_tower, image_tower=image_tower).fit(train, seed=0)
    vr = eval_data.val_retrieval
    mrr = retrieval_metrics(model.score_matrix(vr.text, vr.image), vr.relevant)["mrr"]
    chance = retrieval_metrics(np.zeros((len(vr), len(vr.image))), vr.relevant)["mrr"]
    assert mrr > 2 * chance
    if text_tower == "identity":  # the query vector is the text encoder's own, normalised, and the hubness 1
        text, d = model.embed_texts(vr.text), vr.text.shape[1]
        assert np.allclose(text[:, :d], vr.text / np.linalg.norm(vr.text, axis=1, keepdims=True), atol=1e-6)
        assert np.array_equal(text[:, d:], np.ones((len(text), 1), dtype=np.float32))
        assert model.embed_images(vr.image).shape[1] == d + 1 == model.out_dim
    model.save(tmp_path)
    again = load_model(tmp_path)
    assert (again.text_tower, again.image_tower) == (text_tower, image_tower)
    assert np.allclose(again.score_matrix(vr.text, vr.image), model.score_matrix(vr.text, vr.image), atol=1e-6)


def test_two_tower_refuses_an_unknown_tower():
    from tasks.training.models.two_tower import TwoTowerModel

    with pytest.raises(ValueError, match="text_tower must be one of"):
        TwoTowerModel(text_tower="transformer")


def test_a_two_tower_saved_before_the_tower_options_loads_with_mlp_towers(tmp_path):
    import json

    from tasks.training.models.two_tower import TwoTowerModel

    pairs, captions, text_table, image_table = synthetic()
    train, eval_data, _ = build_datasets(pairs, captions, text_table, image_table, 0.25, seed=0)
    model = TwoTowerModel(epochs=3, text_tower="mlp", image_tower="mlp", members=1, neighbours=0).fit(train, seed=0)
    model.save(tmp_path)
    meta = json.loads((tmp_path / "two_tower.json").read_text())
    keys = ("text_tower", "image_tower", "members", "neighbours", "neighbour_weight", "neighbour_temperature")
    for key in (*keys, "hub_penalty", "hub_neighbours"):
        del meta[key]  # the file as earlier versions wrote it
    (tmp_path / "two_tower.json").write_text(json.dumps(meta))
    vr = eval_data.val_retrieval
    again = load_model(tmp_path)
    assert (again.text_tower, again.image_tower, again.members, again.neighbours) == ("mlp", "mlp", 1, 0)
    assert again.hub_penalty == 0.0
    assert np.allclose(again.score_matrix(vr.text, vr.image), model.score_matrix(vr.text, vr.image), atol=1e-6)


def test_two_tower_calibrated_on_expert_pairs_ranks_the_same_and_fits_the_experts(tmp_path):
    from tasks.training.models.two_tower import MIN_EXPERT_PAIRS, TwoTowerModel

    pairs, captions, text_table, image_table = synthetic()
    # experts agree more readily than the crowd: their pairs' targets sit higher for the same match
    expert = pairs["expert_score"].notna()
    pairs.loc[expert, "target"] = np.clip(pairs.loc[expert, "target"] + 0.3, 0, 1)
    pairs.loc[expert, "expert_score"] = pairs.loc[expert, "target"]
    train, eval_data, _ = build_datasets(pairs, captions, text_table, image_table, 0.25, seed=0)
    assert train.expert is not None and train.expert.sum() >= MIN_EXPERT_PAIRS
    by_ratings = TwoTowerModel(epochs=5).fit(train, seed=0)
    by_experts = TwoTowerModel(epochs=5, calibrate_on="experts").fit(train, seed=0)

    vr = eval_data.val_retrieval
    ratings_scores, expert_scores = (
        by_ratings.score_matrix(vr.text, vr.image),
        by_experts.score_matrix(vr.text, vr.image),
    )
    assert np.array_equal(np.argsort(-ratings_scores, axis=1), np.argsort(-expert_scores, axis=1))
    rows = train.expert
    gap = {
        name: abs(float(np.mean(model.predict(train.text[rows], train.image[rows]) - train.target[rows])))
        for name, model in (("ratings", by_ratings), ("experts", by_experts))
    }
    assert gap["experts"] < gap["ratings"] / 2

    by_experts.save(tmp_path)
    again = load_model(tmp_path)
    assert again.calibrate_on == "experts"
    assert np.allclose(again.score_matrix(vr.text, vr.image), expert_scores, atol=1e-6)


def test_two_tower_with_few_expert_pairs_calibrates_on_every_rated_pair():
    from tasks.training.models.two_tower import MIN_EXPERT_PAIRS, TwoTowerModel

    pairs, captions, text_table, image_table = synthetic()
    train, _, _ = build_datasets(pairs, captions, text_table, image_table, 0.25, seed=0)
    assert train.expert is not None
    few = train.expert.copy()
    few[np.flatnonzero(few)[MIN_EXPERT_PAIRS - 1 :]] = False
    train = dataclasses.replace(train, expert=few)
    by_ratings = TwoTowerModel(epochs=3).fit(train, seed=0)
    by_experts = TwoTowerModel(epochs=3, calibrate_on="experts").fit(train, seed=0)
    assert np.allclose(by_ratings.predict(train.text, train.image), by_experts.predict(train.text, train.image))
    with pytest.raises(ValueError, match="calibrate_on must be one of"):
        TwoTowerModel(calibrate_on="crowd")


@pytest.mark.parametrize("text_tower", ["identity", "mlp"])
def test_a_two_tower_seed_ensemble_scores_the_mean_member_cosine_with_one_vector_an_image(text_tower, tmp_path):
    import torch

    from tasks.training.models.two_tower import TwoTowerModel

    pairs, captions, text_table, image_table = synthetic()
    train, eval_data, _ = build_datasets(pairs, captions, text_table, image_table, 0.25, seed=0)
    model = TwoTowerModel(epochs=6, text_tower=text_tower, members=3, neighbours=0).fit(train, seed=0)
    vr = eval_data.val_retrieval
    texts, images = model.embed_texts(vr.text), model.embed_images(vr.image)
    # one vector an image: the text encoder's dimension with a locked text tower, the members side by side otherwise
    assert texts.shape[1] == images.shape[1] == model.out_dim == (24 if text_tower == "identity" else 3 * model.dim)
    with torch.no_grad():
        t, i = torch.from_numpy(model._text_in(vr.text)), torch.from_numpy(model._image_in(vr.image))
        member_cosines = [(m.embed_text(t) @ m.embed_image(i).T).numpy() for m in model.net.members]
    np.testing.assert_allclose(texts @ images.T, np.mean(member_cosines, axis=0), atol=1e-5)
    mrr = retrieval_metrics(model.score_matrix(vr.text, vr.image), vr.relevant)["mrr"]
    assert mrr > 2 * retrieval_metrics(np.zeros((len(vr), len(vr.image))), vr.relevant)["mrr"]

    model.save(tmp_path)
    again = load_model(tmp_path)
    assert again.members == 3
    assert np.allclose(again.score_matrix(vr.text, vr.image), model.score_matrix(vr.text, vr.image), atol=1e-6)
    with pytest.raises(ValueError, match="members must be at least 1"):
        TwoTowerModel(members=0)


def test_caption_memory_lookup_is_the_similarity_weighted_mean_of_the_nearest_captions():
    from tasks.training.models.two_tower import CaptionMemory

    memory = CaptionMemory(
        image=np.eye(3, dtype=np.float32),
        text=np.array([[1, 0], [0, 1], [-1, 0]], dtype=np.float32),
        groups=np.array([7, 8, 9]),
    )
    query = np.array([[1.0, 0.5, 0.0]], dtype=np.float32) / np.sqrt(1.25)
    sims = np.array([1.0, 0.5]) / np.sqrt(1.25)  # to the first two training images; the third is not among k=2
    for temperature in (0.1, 1.0):
        w = np.exp(sims / temperature) / np.exp(sims / temperature).sum()
        expected = w / np.linalg.norm(w)  # w[0] * [1, 0] + w[1] * [0, 1], normalised
        np.testing.assert_allclose(memory.lookup(query, 2, temperature)[0], expected, atol=1e-6)
    # leaving the nearest image's captions out: the next two are looked up instead
    w = np.exp(np.array([0.5, 0.0]) / np.sqrt(1.25))
    expected = np.array([-w[1], w[0]]) / np.linalg.norm(w)
    np.testing.assert_allclose(memory.lookup(query, 2, 1.0, exclude=np.array([7]))[0], expected, atol=1e-6)
    # a step of any size gives the same vectors
    many = np.vstack([query, np.eye(3, dtype=np.float32), query])
    np.testing.assert_allclose(memory.lookup(many, 2, 0.5, chunk=1), memory.lookup(many, 2, 0.5), atol=1e-7)
    # a memory of one image, left out: nothing to look up, so no caption vector at all
    one = CaptionMemory(memory.image[:1], memory.text[:1], memory.groups[:1])
    assert np.array_equal(one.lookup(query, 5, 1.0, exclude=np.array([7])), np.zeros((1, 2), dtype=np.float32))


def test_caption_neighbours_add_the_nearest_training_captions_to_each_image_vector_and_round_trip(tmp_path):
    from tasks.training.models.two_tower import TwoTowerModel

    pairs, captions, text_table, image_table = synthetic()
    train, eval_data, _ = build_datasets(pairs, captions, text_table, image_table, 0.25, seed=0)
    plain = TwoTowerModel(epochs=4, neighbours=0).fit(train, seed=0)
    model = TwoTowerModel(epochs=4, neighbours=5, neighbour_weight=2.0, neighbour_temperature=0.2, hub_penalty=0.0).fit(
        train, seed=0
    )
    assert plain.memory is None and model.memory is not None
    assert len(model.memory.text) == len(train.positives_text)  # every training caption, nothing else
    vr = eval_data.val_retrieval
    # the networks are the same (the neighbours are no part of training): the vectors differ by the captions
    features = model._image_in(vr.image)
    units = features / np.linalg.norm(features, axis=1, keepdims=True)
    looked_up = model.memory.lookup(units, 5, 0.2)
    expected = (plain.embed_images(vr.image) + 2.0 * looked_up) / 3.0
    np.testing.assert_allclose(model.embed_images(vr.image), expected, atol=1e-5)
    mrr = retrieval_metrics(model.score_matrix(vr.text, vr.image), vr.relevant)["mrr"]
    assert mrr > 2 * retrieval_metrics(np.zeros((len(vr), len(vr.image))), vr.relevant)["mrr"]

    model.save(tmp_path)
    again = load_model(tmp_path)
    assert (again.neighbours, again.neighbour_weight, again.neighbour_temperature) == (5, 2.0, 0.2)
    assert np.allclose(again.score_matrix(vr.text, vr.image), model.score_matrix(vr.text, vr.image), atol=1e-6)
    with pytest.raises(ValueError, match="neighbour_temperature above 0"):
        TwoTowerModel(neighbour_temperature=0)


def test_a_training_image_is_calibrated_without_its_own_captions(monkeypatch):
    """Its own captions are in the memory: looked up with them, a training image would match its captions better
    than any new image can, and the score's a and b would be fitted to that."""
    from tasks.training.models import two_tower
    from tasks.training.models.two_tower import CaptionMemory, TwoTowerModel

    calls = []
    lookup = CaptionMemory.lookup

    def recording(self, image, k, temperature, exclude=None, chunk=0):
        calls.append(exclude)
        return lookup(self, image, k, temperature, exclude, chunk)

    monkeypatch.setattr(two_tower.CaptionMemory, "lookup", recording)
    pairs, captions, text_table, image_table = synthetic()
    train, _, _ = build_datasets(pairs, captions, text_table, image_table, 0.25, seed=0)
    model = TwoTowerModel(epochs=2, neighbours=1, neighbour_temperature=0.01).fit(train, seed=0)
    assert model.memory is not None and len(calls) == 1 and calls[0] is not None
    excluded = calls[0]  # one image code per rated training image (its pairs share its vector)
    names = np.unique(train.groups)
    assert excluded.tolist() == list(range(len(names)))
    code_of = dict(zip(train.positives_groups, model.memory.groups, strict=True))
    with_captions = [code for code, name in enumerate(names) if name in code_of]
    assert len(with_captions) > len(names) / 2
    assert all(code_of[names[code]] == excluded[code] for code in with_captions)

    # with one neighbour a training image's nearest training image is itself; left out, it is another image
    features = model._image_in(train.positives_image)
    units = features / np.linalg.norm(features, axis=1, keepdims=True)
    text = model._text_vectors(train.positives_text)
    own = lookup(model.memory, units, 1, 0.01)
    left_out = lookup(model.memory, units, 1, 0.01, exclude=model.memory.groups)
    assert np.mean(np.sum(own * text, axis=1) > 0.999) > 0.3
    assert np.mean(np.sum(left_out * text, axis=1) > 0.999) == 0.0


def test_calibration_computes_an_images_vector_once_for_all_its_pairs():
    """Rated pairs repeat their image: its gallery vector is computed once and repeated, which gives what computing
    it for every pair gives (to round-off: the similarity products are batched differently, which can swap the
    50th and 51st caption neighbour of an image); a group whose rows differ is computed row by row."""
    import torch

    from tasks.training.models.two_tower import TwoTowerModel

    pairs, captions, text_table, image_table = synthetic()
    train, _, _ = build_datasets(pairs, captions, text_table, image_table, 0.25, seed=0)
    model = TwoTowerModel(epochs=2, members=2).fit(train, seed=0)
    codes = np.unique(train.groups, return_inverse=True)[1].reshape(-1)
    images = torch.from_numpy(model._image_in(train.image))
    assert len(np.unique(codes)) < len(codes) / 3
    changed = images.clone()
    changed[np.flatnonzero(codes == codes[0])[-1]] += 1.0  # one pair of the first image differs
    with torch.no_grad():
        np.testing.assert_allclose(model._pair_gallery(images, codes), model._gallery(images, codes), atol=1e-3)
        assert model._pair_gallery(images, None).shape == model._gallery(images, None).shape
        np.testing.assert_allclose(model._pair_gallery(changed, codes), model._gallery(changed, codes), atol=1e-3)


def test_caption_memory_hubness_is_the_mean_of_the_highest_caption_similarities():
    from tasks.training.models.two_tower import CaptionMemory

    memory = CaptionMemory(
        image=np.eye(3, dtype=np.float32),
        text=np.array([[1, 0], [0, 1], [-1, 0]], dtype=np.float32),
        groups=np.array([7, 8, 9]),
    )
    vectors = np.array([[0.6, 0.8], [0.0, -1.0]], dtype=np.float32)
    # similarities to the three captions: [0.6, 0.8, -0.6] and [0, -1, 0]
    np.testing.assert_allclose(memory.hubness(vectors, 2), [0.7, 0.0], atol=1e-6)
    np.testing.assert_allclose(memory.hubness(vectors, 1), [0.8, 0.0], atol=1e-6)
    # the first row leaves out image 8's caption (its best match), the second image 7's
    np.testing.assert_allclose(memory.hubness(vectors, 2, exclude=np.array([8, 7])), [0.0, -0.5], atol=1e-6)
    np.testing.assert_allclose(memory.hubness(vectors, 5, chunk=1), memory.hubness(vectors, 5), atol=1e-7)
    one = CaptionMemory(memory.image[:1], memory.text[:1], memory.groups[:1])
    assert np.array_equal(one.hubness(vectors[:1], 3, exclude=np.array([7])), np.zeros(1, dtype=np.float32))


def test_the_hubness_term_lowers_each_image_by_its_likeness_to_all_captions_in_one_product(tmp_path):
    """The gallery vector's last entry is the image's offset and the query's is 1: the score is still one inner
    product, and it equals the cosine without the term minus hub_penalty times the image's hubness."""
    from tasks.training.models import two_tower
    from tasks.training.models.two_tower import CaptionMemory, TwoTowerModel

    pairs, captions, text_table, image_table = synthetic()
    train, eval_data, _ = build_datasets(pairs, captions, text_table, image_table, 0.25, seed=0)
    plain = TwoTowerModel(epochs=4, neighbours=5, hub_penalty=0.0).fit(train, seed=0)
    model = TwoTowerModel(epochs=4, neighbours=5, hub_penalty=0.5, hub_neighbours=3).fit(train, seed=0)
    vr = eval_data.val_retrieval
    before, vectors = plain.embed_texts(vr.text) @ plain.embed_images(vr.image).T, plain.embed_images(vr.image)
    assert model.memory is not None and model.out_dim == vectors.shape[1] + 1
    hub = model.memory.hubness(vectors, 3)
    assert hub.std() > 0  # the images differ in it, so it can change a ranking
    after = model.embed_texts(vr.text) @ model.embed_images(vr.image).T
    np.testing.assert_allclose(after, before - 0.5 * hub[None, :], atol=1e-5)
    # the score's a and b are fitted with the term, so the scores stay calibrated
    assert not np.allclose(model.calibrate(after), plain.calibrate(after))

    model.save(tmp_path)
    again = load_model(tmp_path)
    assert (again.hub_penalty, again.hub_neighbours) == (0.5, 3)
    assert np.allclose(again.score_matrix(vr.text, vr.image), model.score_matrix(vr.text, vr.image), atol=1e-6)
    without_memory = TwoTowerModel(epochs=2, neighbours=0, hub_penalty=0.5).fit(train, seed=0)
    assert without_memory.embed_images(vr.image).shape[1] == without_memory.out_dim == vr.text.shape[1]
    with pytest.raises(ValueError, match="hub_penalty must be at least 0"):
        TwoTowerModel(hub_penalty=-1)

    # when a and b are fitted, a training image's hubness leaves its own captions out, as its lookup does
    calls = []
    hubness = CaptionMemory.hubness

    def recording(self, vectors, k, exclude=None, chunk=0):
        calls.append(exclude)
        return hubness(self, vectors, k, exclude, chunk)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(two_tower.CaptionMemory, "hubness", recording)
        TwoTowerModel(epochs=2, neighbours=5, hub_penalty=0.5).fit(train, seed=0)
    # one code per rated training image, each that image's (its pairs share one vector)
    assert len(calls) == 1 and calls[0] is not None
    assert calls[0].tolist() == list(range(len(np.unique(train.groups))))


def test_training_parameters_reach_the_two_tower_constructor():
    from tasks.training.inputs import TrainParams
    from tasks.training.models.two_tower import TwoTowerModel

    params = TrainParams(
        two_tower_calibration="experts", two_tower_members=3, two_tower_image="linear", two_tower_neighbours=7
    )
    model = TwoTowerModel(**params.model_options("two_tower"))
    assert (model.calibrate_on, model.members, model.image_tower, model.text_tower, model.neighbours) == (
        "experts",
        3,
        "linear",
        "identity",
        7,
    )
    defaults = TwoTowerModel(**TrainParams().model_options("two_tower"))
    assert (defaults.neighbours, defaults.hub_penalty) == (TwoTowerModel().neighbours, TwoTowerModel().hub_penalty)
    assert TwoTowerModel(**TrainParams(two_tower_hub_penalty=0).model_options("two_tower")).hub_penalty == 0
    with pytest.raises(ValueError):
        TrainParams(two_tower_members=0)
    with pytest.raises(ValueError):
        TrainParams(two_tower_calibration="crowd")  # type: ignore[arg-type]


def test_models_fitted_side_by_side_in_worker_processes_equal_those_fitted_in_turn():
    """Two worker processes: the two-tower's members train as separate pieces, the other kinds whole (and come
    back through their save format). Every model scores as the one fitted in turn does, with the same metrics."""
    pairs, captions, text, image = synthetic(n_images=30)
    train, eval_data, _ = build_datasets(pairs, captions, text, image, 0.25, seed=3)
    kinds = ("ridge", "xgboost", "study_mlp", "two_tower")
    opts = {
        "xgboost": {"n_search": 2, "n_folds": 2},
        "study_mlp": {"epochs": 3},
        "two_tower": {"epochs": 4, "members": 2},
    }
    in_turn = train_and_evaluate(train, eval_data, kinds=kinds, seed=3, model_options=opts)
    side_by_side = train_and_evaluate(train, eval_data, kinds=kinds, seed=3, model_options=opts, workers=2)
    pd.testing.assert_frame_equal(in_turn.metrics, side_by_side.metrics)
    for kind in kinds:
        a = in_turn.models[kind].predict(eval_data.val.text, eval_data.val.image)
        b = side_by_side.models[kind].predict(eval_data.val.text, eval_data.val.image)
        np.testing.assert_array_equal(a, b, err_msg=kind)
    assert side_by_side.models["two_tower"].members == 2


def test_fit_workers_follow_the_parameter_and_the_training_set_size():
    from tasks.training.inputs import PARALLEL_MIN_PAIRS, TrainParams

    assert TrainParams().workers_for(PARALLEL_MIN_PAIRS - 1) == 1
    assert 1 <= TrainParams().workers_for(PARALLEL_MIN_PAIRS) <= 4
    assert TrainParams(fit_workers=3).workers_for(10) == 3
