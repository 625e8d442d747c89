"""The registry: versioned directories, champion moves only on a win, concurrent promotions serialise."""

import json
import threading

import numpy as np
import pytest

from tasks.training.models.base import TrainingData
from tasks.training.models.linear import RidgeModel
from tasks.training.registry import ModelRegistry
from tasks.workspace import Workspace


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    data = TrainingData(rng.normal(size=(30, 4)), rng.normal(size=(30, 3)), rng.random(30), np.arange(30) % 5)
    return RidgeModel().fit(data, seed=0)


def register(registry, model, value, metric="val_mrr"):
    return registry.register(
        model,
        text_encoder="t",
        image_encoder="i",
        data_hash="abc" * 8,
        primary_metric=metric,
        metrics={"mae": 0.2, metric: value},
        params={"seed": 0},
        comparison_markdown="| a | b |",
    )


def test_register_writes_a_complete_version(tmp_path, model):
    registry = ModelRegistry(Workspace(tmp_path))
    record = register(registry, model, 0.3)
    directory = registry.root / record.version
    assert {p.name for p in directory.iterdir()} == {"model", "metadata.json", "metrics.json", "model_card.md"}
    assert json.loads((directory / "metrics.json").read_text())["val_mrr"] == 0.3
    assert "Model card" in (directory / "model_card.md").read_text()
    assert registry.load(record.version).kind == "ridge"
    assert registry.versions() == [record.version]


def test_champion_moves_only_when_beaten(tmp_path, model):
    registry = ModelRegistry(Workspace(tmp_path))
    first = register(registry, model, 0.3)
    assert registry.promote_if_better(first).promoted
    worse = register(registry, model, 0.2)
    decision = registry.promote_if_better(worse)
    assert not decision.promoted and "stays" in decision.reason
    equal = register(registry, model, 0.3)
    assert not registry.promote_if_better(equal).promoted
    assert registry.champion().version == first.version
    best = register(registry, model, 0.5)
    decision = registry.promote_if_better(best)
    assert decision.promoted and decision.previous == first.version
    assert registry.champion().version == best.version


def test_remeasured_champion_value_is_used(tmp_path, model):
    registry = ModelRegistry(Workspace(tmp_path))
    registry.promote_if_better(register(registry, model, 0.9))
    challenger = register(registry, model, 0.5)
    # on today's data the champion only reaches 0.4, so the challenger wins
    assert registry.promote_if_better(challenger, champion_value=0.4).promoted


def test_lower_is_better_metric(tmp_path, model):
    registry = ModelRegistry(Workspace(tmp_path))
    registry.promote_if_better(register(registry, model, 0.2, metric="rmse"))
    assert registry.promote_if_better(register(registry, model, 0.1, metric="rmse")).promoted


def test_concurrent_promotions_leave_a_valid_champion(tmp_path, model):
    registry = ModelRegistry(Workspace(tmp_path))
    records = [register(registry, model, v) for v in (0.1, 0.5, 0.3, 0.4, 0.2)]
    threads = [threading.Thread(target=registry.promote_if_better, args=(r,)) for r in records]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert registry.champion().primary_value == 0.5


def test_promotion_and_inbox_lock_files_live_under_locks(tmp_path, model):
    from tasks.ratings.inbox import process_inbox

    workspace = Workspace(tmp_path)
    registry = ModelRegistry(workspace)
    registry.promote_if_better(register(registry, model, 0.3))
    process_inbox(workspace)
    lock_files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*lock*"))
    assert lock_files == ["locks", "locks/ratings-store.lock", "locks/registry.lock"]
