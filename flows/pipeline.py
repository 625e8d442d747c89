"""The main job: ingest a dataset and run every later stage on it (stages plug in here as they land)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from prefect import flow
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.ingest import IngestSummary
from tasks.ingest_tasks import ingest_task
from tasks.eda_tasks import eda_report_task
from tasks.ratings import RatingParams
from tasks.ratings_tasks import aggregate_ratings_task
from tasks.safety_tasks import child_safety_task
from tasks.workspace import Workspace


class RunParams(BaseModel):
    """Parameters of one pipeline run; the dashboard renders them as a form."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(description="Folder with the five tables and the train_images/ and test_images/ folders")
    workspace: Path | None = Field(default=None, description="Workspace root; default: $IMGSEARCH_HOME or ~/.imgsearch")
    seed: int = Field(default=0, ge=0, description="Seed for every random choice in the run")
    ratings: RatingParams = Field(default_factory=RatingParams, description="How expert and crowd ratings become targets")

    @field_validator("data_dir")
    @classmethod
    def _data_dir_exists(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"data_dir {value} is not a folder")
        return value.resolve()

    def resolve_workspace(self) -> Workspace:
        return Workspace(self.workspace.resolve()) if self.workspace else Workspace.from_env()


class RunResult(BaseModel):
    ingest: dict
    ratings: dict = Field(default_factory=dict, description="Pair counts of the rating aggregation")
    safety: dict = Field(default_factory=dict, description="Texts, images and pairs flagged by the child filter")
    eda_report: str | None = Field(default=None, description="Path of the EDA report HTML")


@flow(name="imgsearch-run", description="Ingest and validate a dataset, then run the later stages on it.")
def run_pipeline(params: RunParams) -> RunResult:
    workspace = params.resolve_workspace()
    dataset = ingest_task(params.data_dir, workspace)
    summary: IngestSummary = dataset.summary
    # Ratings -> child-safety filter -> EDA: `safety.kept` is the training set later stages use.
    ratings = aggregate_ratings_task(dataset, params.ratings)
    safety = child_safety_task(dataset, ratings, params.ratings, workspace)
    report = eda_report_task(dataset, ratings, safety, workspace)
    return RunResult(
        ingest=summary.as_dict(),
        ratings=ratings.counts.as_dict(),
        safety=asdict(safety.summary),
        eda_report=str(report.html),
    )
