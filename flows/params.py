"""The flows' parameter models start here: the dataset folder and workspace root, then the run choices."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tasks.embed.encoders.base import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER
from tasks.ratings.aggregate import RatingParams
from tasks.search.ann import AnnParams
from tasks.training.inputs import TrainParams
from tasks.workspace import Workspace


def describe_validation_error(err: ValidationError) -> str:
    """pydantic's report as one line for a person: `data_dir: /tmp/nope is not a folder; seed: ...`, without
    its links and input echoes."""
    parts = []
    for error in err.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


class DatasetParams(BaseModel):
    """Base of the flows' parameter models; unknown fields are refused so typos fail before any work."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(description="Folder with the five tables and the train_images/ and test_images/ folders")
    workspace: Path | None = Field(default=None, description="Workspace root; default: $IMGSEARCH_HOME or ~/.imgsearch")

    @field_validator("data_dir")
    @classmethod
    def _data_dir_exists(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"data_dir {value} is not a folder")
        return value.resolve()

    def resolve_workspace(self) -> Workspace:
        return Workspace(self.workspace.resolve()) if self.workspace else Workspace.from_env()


class ModelRunParams(DatasetParams):
    """What a run that trains needs on top of the dataset: seed, encoders, ratings and training choices."""

    seed: int = Field(default=0, ge=0, description="Seed for every random choice in the run")
    text_encoder: str = Field(default=DEFAULT_TEXT_ENCODER, description="Text encoder id (see tasks/embed/encoders/)")
    image_encoder: str = Field(
        default=DEFAULT_IMAGE_ENCODER, description="Image encoder id (see tasks/embed/encoders/)"
    )
    ratings: RatingParams = Field(
        default_factory=RatingParams, description="How expert and crowd ratings become targets"
    )
    training: TrainParams = Field(default_factory=TrainParams, description="Which models to fit and how to choose")
    index_gallery: bool = Field(default=True, description="Index the test images for search with the champion")
    ann: AnnParams | None = Field(
        default=None,
        description="How the gallery is searched: exact or faiss IVF and its lists, probes and candidates. "
        "None: automatic from the gallery size (exact below 200,000 images); set, the index is rebuilt or "
        "adjusted when it differs",
    )
