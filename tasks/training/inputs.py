"""What one training run reads: its parameters (`TrainParams`) and its inputs in one frozen value (`TrainInputs`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.ingest.tables import caption_image
from tasks.parallel import MAX_WORKERS, worker_count
from tasks.safety.flags import flagged_images, flagged_texts
from tasks.training.data import EmbeddingLookup, EvalData, SplitSummary, build_datasets
from tasks.training.models import MODEL_KINDS, TrainingData

if TYPE_CHECKING:
    from tasks.embed.stage import EmbedStageOutput
    from tasks.ingest.dataset import IngestedDataset
    from tasks.safety.text_screen import SafetyOutcome

# `TrainParams.fit_workers` when left empty: processes only from this many training pairs, at most this many
PARALLEL_MIN_PAIRS = 2000
MAX_FIT_WORKERS = MAX_WORKERS
PRIMARY_METRICS = {"val_mrr", "val_r1", "val_r5", "val_r10", "val_ndcg10", "tau_c", "rmse", "mae"}


class TrainParams(BaseModel):
    """What to train and how to choose; the dashboard renders these as a form."""

    model_config = ConfigDict(extra="forbid")

    models: list[str] = Field(default=list(MODEL_KINDS), description=f"Model kinds to fit: {', '.join(MODEL_KINDS)}")
    val_fraction: float = Field(
        default=0.2, gt=0.0, lt=0.9, description="Share of training images held out for validation"
    )
    primary_metric: str = Field(
        default="val_mrr", description="Metric that picks the best model and decides promotion (validation only)"
    )
    xgb_search: int = Field(default=6, ge=1, le=50, description="Random-search candidates for XGBoost")
    xgb_folds: int = Field(default=3, ge=2, le=10, description="Group-aware folds for the XGBoost search")
    expert_pair_weight: float = Field(
        default=4.0,
        ge=1.0,
        le=100.0,
        description=(
            "Loss weight of expert-rated pairs in the two-tower model "
            "(measured on practicum-dev: 1 -> tau-c 0.49, 4 -> 0.54)"
        ),
    )
    two_tower_text: Literal["identity", "linear", "mlp"] = Field(
        default="identity",
        description=(
            "Two-tower text side: `identity` keeps the text encoder's own space (a locked text tower; the images are "
            "mapped into it), `linear` or `mlp` project the text too. Practicum-dev, 5 folds x 2 seeds: tau-c 0.559 "
            "identity vs 0.509 mlp, fold MRR 0.416 vs 0.396"
        ),
    )
    two_tower_image: Literal["linear", "mlp"] = Field(
        default="mlp", description="Two-tower image side: a one-hidden-layer MLP, or one linear layer"
    )
    two_tower_calibration: Literal["ratings", "experts"] = Field(
        default="ratings",
        description=(
            "What the two-tower's score is calibrated to: every rated pair (`ratings`: the share of crowd raters "
            "who would say yes), or the expert-rated pairs only (`experts`: the experts' mean score). Ranking is "
            "the same either way"
        ),
    )
    two_tower_members: int = Field(
        default=3,
        ge=1,
        le=10,
        description=(
            "Two-tower networks trained from other seeds and scored by their mean cosine (still one vector an image "
            "with the locked text tower). Practicum-dev, 5 folds x 2 seeds, 3 against 1: test MRR 0.448 against "
            "0.417 (10 of 10 folds better), tau-c 0.576 against 0.559 (10 of 10); each costs one more fit, trained "
            "side by side on the worker processes (`fit_workers`)"
        ),
    )
    two_tower_neighbours: int = Field(
        default=50,
        ge=0,
        le=1000,
        description=(
            "Caption neighbours: an image's vector also gains the similarity-weighted mean of the own captions of "
            "its this many nearest training images (0: the network's vector alone). Practicum-dev, 5 folds x 2 "
            "seeds, 50 against 0: test MRR 0.495 against 0.449, fold MRR 0.475 against 0.432"
        ),
    )
    two_tower_hub_penalty: float = Field(
        default=0.25,
        ge=0.0,
        le=5.0,
        description=(
            "Hubness: each image's scores are lowered by this times the mean of its 20 highest cosines with the "
            "training captions, so an image that looks like every caption stops coming first for all of them "
            "(0: off; needs the caption neighbours). Practicum-dev, 5 folds x fold seeds 2-3 (not used to choose), "
            "0.25 against 0: test MRR 0.513 against 0.495, fold MRR 0.478 against 0.469, tau-c 0.604 against 0.606"
        ),
    )
    fit_workers: int | None = Field(
        default=None,
        ge=1,
        le=32,
        description=(
            "Worker processes that fit the models (and the two-tower's members) side by side, one thread each; "
            f"empty: one per CPU core, at most {MAX_FIT_WORKERS}, from {PARALLEL_MIN_PAIRS} training pairs "
            "(below that, starting the processes costs more than it saves). The models are the same either way"
        ),
    )
    force_promote: bool = Field(
        default=False, description="Promote the run's best model even if it does not beat the champion"
    )

    @field_validator("primary_metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in PRIMARY_METRICS:
            raise ValueError(
                f"primary_metric must be one of {sorted(PRIMARY_METRICS)} "
                "(validation metrics only, so the test set stays unseen)"
            )
        return value

    @field_validator("models")
    @classmethod
    def _known_models(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(MODEL_KINDS))
        if unknown or not value:
            raise ValueError(f"unknown or no models {unknown}; choose from {sorted(MODEL_KINDS)}")
        return value

    def workers_for(self, pairs: int) -> int:
        """How many processes fit the models of a run on `pairs` training pairs (`fit_workers`)."""
        if self.fit_workers is not None:
            return self.fit_workers
        if pairs < PARALLEL_MIN_PAIRS:
            return 1
        return worker_count(limit=MAX_FIT_WORKERS)

    def model_options(self, kind: str) -> dict:
        """Constructor arguments of one model kind."""
        if kind == "xgboost":
            return {"n_search": self.xgb_search, "n_folds": self.xgb_folds}
        if kind == "two_tower":
            return {
                "text_tower": self.two_tower_text,
                "image_tower": self.two_tower_image,
                "calibrate_on": self.two_tower_calibration,
                "members": self.two_tower_members,
                "neighbours": self.two_tower_neighbours,
                "hub_penalty": self.two_tower_hub_penalty,
            }
        return {}


def captions_frame(
    texts: pd.DataFrame, flagged_images: set[str], flagged_texts: set[str], images: set[str]
) -> pd.DataFrame:
    """Known captions of the given images, minus any whose text or image the safety screen flagged."""
    frame = texts[["query_id"]].copy()
    frame["image"] = caption_image(frame["query_id"])
    keep = frame["image"].isin(images) & ~frame["image"].isin(flagged_images) & ~frame["query_id"].isin(flagged_texts)
    frame = frame[keep].reset_index(drop=True)
    frame["safe"] = True
    return frame


@dataclass(frozen=True)
class TrainInputs:
    """Everything a training run reads, in one value the training tasks share.

    pairs: image, query_id, target, expert_score — the rated pairs left after the safety filter.
    captions: query_id, image, safe — unflagged captions of training images (contrastive loss, validation).
    test_queries: query_id, image, safe — ranked against `test_gallery`; `safe` is False for flagged texts.
    """

    pairs: pd.DataFrame
    captions: pd.DataFrame
    test_queries: pd.DataFrame
    test_gallery: tuple[str, ...]
    text_emb: EmbeddingLookup
    train_image_emb: EmbeddingLookup
    test_image_emb: EmbeddingLookup
    text_encoder: str
    image_encoder: str
    data_hash: str
    params: TrainParams
    seed: int

    @classmethod
    def from_stages(
        cls,
        dataset: IngestedDataset,
        safety: SafetyOutcome,
        embedded: EmbedStageOutput,
        encoders: tuple[str, str],
        params: TrainParams,
        seed: int,
    ) -> TrainInputs:
        """From the earlier stages' outputs; `encoders` are the (text, image) encoder ids the run was given."""
        texts, images = flagged_texts(safety.text_flags), flagged_images(safety.image_flags)
        queries = dataset.queries
        return cls(
            pairs=safety.kept,
            captions=captions_frame(dataset.texts(), images, texts, set(embedded.train_images.keys)),
            test_queries=queries[["query_id", "image"]].assign(safe=~queries["query_id"].isin(texts)),
            test_gallery=tuple(dataset.test_images["image"]),
            text_emb=embedded.texts,
            train_image_emb=embedded.train_images,
            test_image_emb=embedded.test_images,
            text_encoder=encoders[0],
            image_encoder=encoders[1],
            data_hash=dataset.summary.data_hash,
            params=params,
            seed=seed,
        )

    def datasets(self) -> tuple[TrainingData, EvalData, SplitSummary]:
        """Split by image and assemble the training and evaluation arrays."""
        return build_datasets(
            self.pairs,
            self.captions,
            self.text_emb,
            self.train_image_emb,
            self.params.val_fraction,
            self.seed,
            test_queries=self.test_queries,
            test_gallery=list(self.test_gallery),
            test_image_emb=self.test_image_emb,
            expert_pair_weight=self.params.expert_pair_weight,
        )
