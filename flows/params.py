"""What every flow's parameters start with: the dataset folder and the workspace root."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.workspace import Workspace


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
