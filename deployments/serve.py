"""Serve the imgsearch deployments from this process: scheduled training, the ratings inbox, event-triggered
retraining and on-demand backfills.

    PREFECT_API_URL=http://127.0.0.1:4200/api .venv/bin/python deployments/serve.py [--data-dir DATA_DIR]

Without `--data-dir` (or `$IMGSEARCH_DATA_DIR`) the deployments use `./data` if it exists, else the embedded
sample dataset, made once in the workspace (`samples/seed-0`, as `imgsearch demo` does). The index deployment adds
the new images of `--gallery-dir` (or `$IMGSEARCH_GALLERY_DIR`; default the dataset's `test_images/`) to the
gallery index without a rebuild, as `imgsearch index` does. A bad option is one
line on stderr and exit code 2.

| deployment | flow | runs |
|---|---|---|
| `retrain/train` | retrain | on a cron schedule (default 03:00 daily) |
| `ingest-ratings/ingest-ratings` | ingest-ratings | every `--inbox-interval` seconds (default 60) |
| `retrain/retrain` | retrain | when `imgsearch.ratings.merged` is emitted by ingest-ratings |
| `backfill/backfill` | backfill | on demand, e.g. `prefect deployment run backfill/backfill --param x=...` |
| `imgsearch-index/index` | imgsearch-index | every `--index-interval` seconds if given, else on demand |

Each deployment allows one run at a time (`concurrency_limit=1`; later runs wait); retrain and backfill
also take a workspace lock, so runs of different deployments never train at once.

The same deployments for workers on a work pool, instead of this one process: `prefect.yaml` at the repository
root (kept equal to `build_deployments()` by tests/deployments/test_prefect_yaml.py; tried end to end by
`make worker-smoke`).
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
ENV_GALLERY_DIR = "IMGSEARCH_GALLERY_DIR"
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
    gallery_dir: Path | None = None,
    index_interval: float | None = None,
) -> list[RunnerDeployment]:
    """The five deployments, without serving them (tests build and inspect these)."""
    from flows.index import IndexParams, index_flow
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
    gallery = Path(gallery_dir) if gallery_dir is not None else Path(data_dir) / "test_images"
    index_base = {"folder": str(gallery.resolve())} | ({"workspace": base["workspace"]} if workspace else {})
    index_params = IndexParams(**index_base).model_dump(mode="json", exclude_unset=True)
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
        _deployment(
            index_flow,
            "index",
            {"params": index_params},
            "Adds the gallery folder's new images to the search index (no rebuild); removed ones disappear.",
            **({"interval": index_interval} if index_interval else {}),
        ),
    ]


def _deployment(flow: Any, name: str, parameters: dict, description: str, **when: Any) -> RunnerDeployment:
    """One run at a time per deployment (later runs wait); `when` is its schedule or trigger, if any."""
    return flow.to_deployment(
        name=name, parameters=parameters, concurrency_limit=1, description=description, tags=TAGS, **when
    )


class OneLineParser(argparse.ArgumentParser):
    """argparse, with an error as one line (no usage block) and exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {value}")
    return number


def default_data_dir(workspace: Path | None = None) -> Path:
    """`./data` when it is a folder, else the embedded sample, made once in the workspace like `imgsearch demo`."""
    if DEFAULT_DATA_DIR.is_dir():
        return DEFAULT_DATA_DIR
    return sample_data_dir(workspace)


def sample_data_dir(workspace: Path | None = None) -> Path:
    """The embedded sample dataset in the workspace (`samples/seed-0`), made on first use."""
    from tasks.ingest.sample import generate_sample
    from tasks.workspace import Workspace, atomic_dir

    target = (Workspace(workspace.resolve()) if workspace else Workspace.from_env()).samples / "seed-0"
    if not (target / "test_images.csv").is_file():
        with atomic_dir(target) as tmp:
            generate_sample(tmp, seed=0)
    return target


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(
        description="Serve the imgsearch deployments (train, ingest-ratings, retrain, backfill, index)."
    )
    env_data_dir = os.environ.get(ENV_DATA_DIR)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(env_data_dir) if env_data_dir else None,
        help=f"Dataset folder the deployments use (default: ${ENV_DATA_DIR}, else ./{DEFAULT_DATA_DIR} if it exists, "
        "else the embedded sample made in the workspace)",
    )
    parser.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="Workspace root (default: $IMGSEARCH_HOME or ~/.imgsearch, read by each run)",
    )
    parser.add_argument("--train-cron", default=DEFAULT_TRAIN_CRON, help="Cron schedule of the train deployment")
    parser.add_argument(
        "--inbox-interval", type=_positive, default=DEFAULT_INBOX_INTERVAL, help="Seconds between inbox checks"
    )
    parser.add_argument("--text-encoder", help="Default text encoder of train, retrain and backfill")
    parser.add_argument("--image-encoder", help="Default image encoder of train, retrain and backfill")
    parser.add_argument("--models", help="Comma-separated model kinds to fit, e.g. ridge,two_tower (default: all)")
    env_gallery = os.environ.get(ENV_GALLERY_DIR)
    parser.add_argument(
        "--gallery-dir",
        type=Path,
        default=Path(env_gallery) if env_gallery else None,
        help=f"Folder the index deployment indexes (default: ${ENV_GALLERY_DIR}, else the dataset's test_images/)",
    )
    parser.add_argument(
        "--index-interval", type=_positive, default=None, help="Seconds between index runs (default: on demand only)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from prefect import serve
    from pydantic import ValidationError

    from flows.params import describe_validation_error

    args = parse_args(argv)
    prog = Path(sys.argv[0]).name or "serve.py"
    if args.data_dir is not None and not args.data_dir.is_dir():
        sys.stderr.write(f"{prog}: error: --data-dir {args.data_dir}: not a folder\n")
        sys.exit(2)
    if args.gallery_dir is not None and not args.gallery_dir.is_dir():
        sys.stderr.write(f"{prog}: error: --gallery-dir {args.gallery_dir}: not a folder\n")
        sys.exit(2)
    data_dir = args.data_dir if args.data_dir is not None else default_data_dir(args.workspace)
    training = {"models": args.models.split(",")} if args.models else None
    try:
        deployments = build_deployments(
            data_dir,
            args.workspace,
            args.train_cron,
            args.inbox_interval,
            args.text_encoder,
            args.image_encoder,
            training,
            args.gallery_dir,
            args.index_interval,
        )
    except ValidationError as err:
        sys.stderr.write(f"{prog}: error: {describe_validation_error(err)}\n")
        sys.exit(2)
    except ValueError as err:  # e.g. a cron expression Prefect cannot read
        sys.stderr.write(f"{prog}: error: {' '.join(str(err).split())}\n")
        sys.exit(2)
    sys.stderr.write(f"serving the deployments for dataset {data_dir}\n")
    serve(*deployments)


if __name__ == "__main__":
    main()
