"""Serve the imgsearch deployments from this process: scheduled training, the ratings inbox, event-triggered
retraining and on-demand backfills.

    PREFECT_API_URL=http://127.0.0.1:4200/api .venv/bin/python deployments/serve.py --data-dir DATA_DIR

| deployment | flow | runs |
|---|---|---|
| `retrain/train` | retrain | on a cron schedule (default 03:00 daily) |
| `ingest-ratings/ingest-ratings` | ingest-ratings | every `--inbox-interval` seconds (default 60) |
| `retrain/retrain` | retrain | when `imgsearch.ratings.merged` is emitted by ingest-ratings |
| `backfill/backfill` | backfill | on demand, e.g. `prefect deployment run backfill/backfill --param x=...` |

Each deployment allows one run at a time (`concurrency_limit=1`; later runs wait); retrain and backfill
also take a workspace lock, so runs of different deployments never train at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable (the flows' own modules)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefect.deployments.runner import RunnerDeployment  # noqa: E402
from prefect.events import DeploymentEventTrigger  # noqa: E402

ENV_DATA_DIR = "IMGSEARCH_DATA_DIR"
DEFAULT_DATA_DIR = Path("data")
DEFAULT_TRAIN_CRON = "0 3 * * *"
DEFAULT_INBOX_INTERVAL = 60
TAGS = ["imgsearch"]


def build_deployments(
    data_dir: Path,
    workspace: Path | None = None,
    train_cron: str = DEFAULT_TRAIN_CRON,
    inbox_interval: float = DEFAULT_INBOX_INTERVAL,
    text_encoder: str | None = None,
    image_encoder: str | None = None,
    training: dict | None = None,
) -> list[RunnerDeployment]:
    """The four deployments, without serving them (tests build and inspect these)."""
    from flows.operations import BackfillParams, InboxParams, RetrainParams, backfill, ingest_ratings, retrain
    from tasks.ratings.tasks import MERGED_EVENT, STORE_RESOURCE_ID

    base = {"data_dir": str(Path(data_dir).resolve())}
    if workspace is not None:
        base["workspace"] = str(Path(workspace).resolve())
    model = {
        k: v
        for k, v in {"text_encoder": text_encoder, "image_encoder": image_encoder, "training": training}.items()
        if v
    }
    # Validate the defaults now, so a bad option fails at start-up instead of in the first scheduled run.
    retrain_params = RetrainParams(**base, **model).model_dump(mode="json", exclude_unset=True)
    inbox_params = InboxParams(**base).model_dump(mode="json", exclude_unset=True)
    backfill_params = BackfillParams(**base, **model).model_dump(mode="json", exclude_unset=True)
    return [
        _deployment(
            retrain,
            "train",
            {"params": retrain_params},
            "Scheduled training on the dataset plus the ratings store; promotes only a better model.",
            cron=train_cron,
        ),
        _deployment(
            ingest_ratings,
            "ingest-ratings",
            {"params": inbox_params},
            "Checks the ratings inbox; emits imgsearch.ratings.merged when new ratings merged.",
            interval=inbox_interval,
        ),
        _deployment(
            retrain,
            "retrain",
            {"params": retrain_params},
            "Retrains when the inbox merged new ratings; promotes only a better model.",
            triggers=[
                DeploymentEventTrigger(
                    name="retrain on merged ratings",
                    expect={MERGED_EVENT},
                    match={"prefect.resource.id": STORE_RESOURCE_ID},
                )
            ],
        ),
        _deployment(
            backfill,
            "backfill",
            backfill_params,
            "On demand: rebuild with other encoders or another dataset folder, optionally re-embedding.",
        ),
    ]


def _deployment(flow: Any, name: str, parameters: dict, description: str, **when: Any) -> RunnerDeployment:
    """One run at a time per deployment (later runs wait); `when` is its schedule or trigger, if any."""
    return flow.to_deployment(
        name=name, parameters=parameters, concurrency_limit=1, description=description, tags=TAGS, **when
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Serve the imgsearch deployments (train, ingest-ratings, retrain, backfill)."
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get(ENV_DATA_DIR, DEFAULT_DATA_DIR)),
        help=f"Dataset folder the deployments use (default: ${ENV_DATA_DIR} or ./{DEFAULT_DATA_DIR})",
    )
    parser.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="Workspace root (default: $IMGSEARCH_HOME or ~/.imgsearch, read by each run)",
    )
    parser.add_argument("--train-cron", default=DEFAULT_TRAIN_CRON, help="Cron schedule of the train deployment")
    parser.add_argument(
        "--inbox-interval", type=float, default=DEFAULT_INBOX_INTERVAL, help="Seconds between inbox checks"
    )
    parser.add_argument("--text-encoder", help="Default text encoder of train, retrain and backfill")
    parser.add_argument("--image-encoder", help="Default image encoder of train, retrain and backfill")
    parser.add_argument("--models", help="Comma-separated model kinds to fit, e.g. ridge,two_tower (default: all)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from prefect import serve

    args = parse_args(argv)
    training = {"models": args.models.split(",")} if args.models else None
    deployments = build_deployments(
        args.data_dir,
        args.workspace,
        args.train_cron,
        args.inbox_interval,
        args.text_encoder,
        args.image_encoder,
        training,
    )
    serve(*deployments)


if __name__ == "__main__":
    main()
