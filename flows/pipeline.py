"""The main job: ingest a dataset and run every later stage on it (stages plug in here as they land)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.embed_tasks import embed_task
from tasks.encoders import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER
from tasks.ingest import IngestSummary
from tasks.ingest_tasks import ingest_task
from tasks.workspace import Workspace


class RunParams(BaseModel):
    """Parameters of one pipeline run; the dashboard renders them as a form."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(description="Folder with the five tables and the train_images/ and test_images/ folders")
    workspace: Path | None = Field(default=None, description="Workspace root; default: $IMGSEARCH_HOME or ~/.imgsearch")
    seed: int = Field(default=0, ge=0, description="Seed for every random choice in the run")
    text_encoder: str = Field(default=DEFAULT_TEXT_ENCODER, description="Text encoder id (see tasks/encoders.py)")
    image_encoder: str = Field(default=DEFAULT_IMAGE_ENCODER, description="Image encoder id (see tasks/encoders.py)")

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
    embeddings: dict = Field(default_factory=dict, description="Counts, encoder ids, cache hits/misses, seconds")


@flow(name="imgsearch-run", description="Ingest and validate a dataset, then run the later stages on it.")
def run_pipeline(params: RunParams) -> RunResult:
    workspace = params.resolve_workspace()
    dataset = ingest_task(params.data_dir, workspace)
    summary: IngestSummary = dataset.summary
    # Later stages take the vectors in memory from `embedded.texts / .train_images / .test_images`.
    embedded = embed_task(dataset, workspace, params.text_encoder, params.image_encoder)
    return RunResult(ingest=summary.as_dict(), embeddings=embedded.summary.as_dict())
