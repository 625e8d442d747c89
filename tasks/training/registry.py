"""The model registry: versioned model directories and a champion pointer that moves only on a win.

Layout under the workspace's `models/` folder:
    <version>/model/          the model's own files (see tasks/training/models)
    <version>/metadata.json   encoder ids, data hash, parameters, primary metric
    <version>/metrics.json    every metric of this model, plus the run's comparison table
    <version>/model_card.md   a short human-readable card
    champion.json             {"version", "primary_metric", "value", ...}
Every write is atomic and promotion holds the workspace lock `registry`, so concurrent runs cannot corrupt it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from tasks.training.metrics import SHOWN_METRICS
from tasks.training.models import PairModel, load_model
from tasks.workspace import Workspace, atomic_dir, dataset_version, write_json_atomic, write_text_atomic

CHAMPION_FILE = "champion.json"
REGISTRY_LOCK = "registry"


@dataclass(frozen=True)
class ModelRecord:
    version: str
    kind: str
    text_encoder: str
    image_encoder: str
    data_hash: str
    primary_metric: str
    metrics: dict
    params: dict
    created: str

    @property
    def data_version(self) -> str:
        return dataset_version(self.data_hash)

    @property
    def primary_value(self) -> float:
        return float(self.metrics.get(self.primary_metric, math.nan))


@dataclass(frozen=True)
class PromotionDecision:
    promoted: bool
    reason: str
    champion: str | None
    previous: str | None
    challenger_value: float
    champion_value: float | None


class ModelRegistry:
    """The registry of one workspace: its `models/` folder, promotions under the workspace lock `registry`."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.root = workspace.models

    def register(
        self,
        model: PairModel,
        *,
        text_encoder: str,
        image_encoder: str,
        data_hash: str,
        primary_metric: str,
        metrics: dict,
        params: dict,
        comparison_markdown: str = "",
    ) -> ModelRecord:
        created = datetime.now(UTC)
        fingerprint = hashlib.sha256(
            json.dumps(
                [model.kind, text_encoder, image_encoder, data_hash, params], sort_keys=True, default=str
            ).encode()
        ).hexdigest()[:8]
        version = f"{created:%Y%m%dT%H%M%S%f}-{model.kind}-{fingerprint}"
        record = ModelRecord(
            version=version,
            kind=model.kind,
            text_encoder=text_encoder,
            image_encoder=image_encoder,
            data_hash=data_hash,
            primary_metric=primary_metric,
            metrics={k: float(v) for k, v in metrics.items()},
            params=params,
            created=created.isoformat(),
        )
        with atomic_dir(self.root / version) as tmp:
            (tmp / "model").mkdir()
            model.save(tmp / "model")
            meta = {k: v for k, v in asdict(record).items() if k != "metrics"}
            write_json_atomic(tmp / "metadata.json", meta)
            write_json_atomic(tmp / "metrics.json", record.metrics)
            write_text_atomic(tmp / "model_card.md", model_card(record, comparison_markdown))
        return record

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and (p / "metadata.json").is_file())

    def record(self, version: str) -> ModelRecord:
        directory = self.root / version
        meta = json.loads((directory / "metadata.json").read_text())
        metrics = json.loads((directory / "metrics.json").read_text())
        return ModelRecord(metrics=metrics, **meta)

    def load(self, version: str) -> PairModel:
        return load_model(self.root / version / "model")

    def champion(self) -> ModelRecord | None:
        pointer = self.root / CHAMPION_FILE
        if not pointer.is_file():
            return None
        version = json.loads(pointer.read_text())["version"]
        if not (self.root / version / "metadata.json").is_file():
            raise FileNotFoundError(f"{pointer} names version {version}, which is not in {self.root}")
        return self.record(version)

    def promote_if_better(
        self, challenger: ModelRecord, champion_value: float | None = None, force: bool = False
    ) -> PromotionDecision:
        """Move the champion pointer to `challenger` if it beats the champion on the primary metric.

        `champion_value` is the champion's primary metric re-measured on the challenger's evaluation
        data, when the caller could do that; otherwise the champion's stored value is used.
        """
        metric, value = challenger.primary_metric, challenger.primary_value
        # two runs promote one after the other, never interleaved
        with self.workspace.lock(REGISTRY_LOCK):
            current = self.champion()
            previous = current.version if current else None
            if current is not None and champion_value is None:
                champion_value = float(current.metrics.get(metric, math.nan))
            if math.isnan(value):
                return PromotionDecision(False, f"challenger has no {metric}", previous, None, value, champion_value)
            reason = promotion_reason(metric, value, current, champion_value, force)
            if reason is None:
                reason = (
                    f"{metric} {value:.4f} does not beat the champion's {champion_value:.4f}; champion {previous} stays"
                )
                return PromotionDecision(False, reason, previous, previous, value, champion_value)
            pointer = {"version": challenger.version, "primary_metric": metric, "value": value, "previous": previous}
            write_json_atomic(
                self.root / CHAMPION_FILE, pointer | {"promoted": datetime.now(UTC).isoformat(), "reason": reason}
            )
            return PromotionDecision(True, reason, challenger.version, previous, value, champion_value)


def promotion_reason(
    metric: str, value: float, current: ModelRecord | None, champion_value: float | None, force: bool
) -> str | None:
    """Why a challenger with `value` on `metric` becomes champion, or None when it does not."""
    from tasks.training.fit import better

    if current is None:
        return "no champion yet"
    if force:
        return "promotion forced"
    if champion_value is not None and better(metric, value, champion_value):
        return f"{metric} {value:.4f} beats the champion's {champion_value:.4f}"
    return None


def model_card(record: ModelRecord, comparison_markdown: str) -> str:
    metric_rows = "\n".join(f"| {k} | {record.metrics[k]:.4f} |" for k in SHOWN_METRICS if k in record.metrics)
    return f"""# Model card: {record.version}

- **Model**: `{record.kind}`; scores a (text, image) pair with a relevance in [0, 1].
- **Encoders**: text `{record.text_encoder}`, image `{record.image_encoder}` (features are their embeddings).
- **Data**: dataset version `{record.data_version}`; trained on crowd and expert ratings after the
  child-content filter removed every pair whose text or image concerns children under 16.
- **Selection metric**: `{record.primary_metric}` = {record.primary_value:.4f}
  (validation split, images unseen in training).
- **Created**: {record.created}
- **Intended use**: ranking gallery images for a text query. Not a child-safety classifier: search
  refuses flagged queries and hides flagged images before this model is consulted.

## Metrics

| metric | value |
|---|---|
{metric_rows}

Retrieval metrics without a prefix are on the test queries against the test images; `safe_` are
the test queries that pass the safety screen; `val_` are validation captions against validation images.

## Parameters

```json
{json.dumps(record.params, indent=2, sort_keys=True, default=str)}
```

## All models of this run

{comparison_markdown}
"""
