"""Prefect tasks of the ratings stage: aggregation, and the inbox (what batches may reference, outcomes, the event).

The inbox logic itself (validate, merge, archive, quarantine) is `tasks.ratings.inbox`; this module feeds it
the known images and texts of a dataset version, reports what happened and tells the retrain deployment.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.ingest.dataset import IngestedDataset
from tasks.ingest.tables import CROWD, EXPERT
from tasks.ratings.aggregate import AggregatedRatings, RatingParams, aggregate_ratings
from tasks.ratings.inbox import BatchOutcome, load_ratings_store, merge_ratings, process_inbox
from tasks.workspace import Workspace

MERGED_EVENT = "imgsearch.ratings.merged"
STORE_RESOURCE_ID = "imgsearch.ratings.store"
TRAIN_FOLDER = "train_images"


@dataclass(frozen=True)
class KnownReferences:
    """What a rating batch may name: the training images and every known caption id of one dataset version."""

    version: str
    data_dir: str
    train_images: frozenset[str]
    query_ids: frozenset[str]


def references_from_version(version_dir: Path) -> KnownReferences:
    """Read the known images and query ids of a prepared dataset version (written by the ingest task)."""
    files = pd.read_parquet(version_dir / "image_files.parquet", columns=["folder", "image"])
    train = pd.read_parquet(version_dir / "train.parquet", columns=["query_id"])
    queries = pd.read_parquet(version_dir / "queries.parquet", columns=["query_id"])
    summary = json.loads((version_dir / "summary.json").read_text())
    return KnownReferences(
        version=version_dir.name,
        data_dir=summary["data_dir"],
        train_images=frozenset(files.loc[files["folder"] == TRAIN_FOLDER, "image"]),
        query_ids=frozenset(train["query_id"]) | frozenset(queries["query_id"]),
    )


def latest_version_of(workspace: Workspace, data_dir: Path) -> Path | None:
    """The newest prepared dataset version ingested from `data_dir`, if any."""
    data_dir = Path(data_dir).resolve()
    for version_dir in workspace.dataset_versions():
        try:
            summary = json.loads((version_dir / "summary.json").read_text())
        except (OSError, ValueError):
            continue
        if Path(summary.get("data_dir", "")) == data_dir:
            return version_dir
    return None


def _cell(text: str, limit: int = 400) -> str:
    """A markdown table cell from a file name or a reason: both come from outside, so no markup, no '|'."""
    return html.escape(text.replace("|", "/").replace("\n", " ")[:limit], quote=False)


@task(name="known-references", cache_policy=NO_CACHE)
def known_references_task(version_dir: Path) -> KnownReferences:
    """The images and caption ids a rating batch may name, from a prepared dataset version."""
    references = references_from_version(version_dir)
    get_run_logger().info(
        "dataset version %s: %d training images, %d caption ids",
        references.version,
        len(references.train_images),
        len(references.query_ids),
    )
    return references


def outcomes_markdown(outcomes: list[BatchOutcome]) -> str:
    counts = {status: sum(o.status == status for o in outcomes) for status in ("merged", "duplicate", "quarantined")}
    head = (
        f"## Ratings inbox\n\n{len(outcomes)} file(s): {counts['merged']} merged, {counts['duplicate']} duplicate, "
        f"{counts['quarantined']} quarantined.\n\n"
    )
    if not outcomes:
        return head + "The inbox was empty.\n"
    rows = "".join(
        f"| {_cell(o.file)} | **{o.status}** | {o.kind} | `{o.batch_id}` | {o.rows} | {o.dropped_unknown_text} | "
        f"{_cell(o.reason)} |\n"
        for o in outcomes
    )
    table = (
        "| file | status | kind | batch | rows merged | rows with "
        "unknown text | reason |\n|---|---|---|---|---|---|---|\n" + rows
    )
    note = ""
    if counts["quarantined"]:
        note = "\nQuarantined files are in the workspace's `quarantine/`, each with a `.reason.txt` beside it.\n"
    return head + table + note


@task(name="process-ratings-inbox", cache_policy=NO_CACHE)
def process_inbox_task(workspace: Workspace, references: KnownReferences) -> list[BatchOutcome]:
    """Validate and merge every inbox file; publish the outcomes; warn about each quarantined file."""
    logger = get_run_logger()
    outcomes = process_inbox(workspace, set(references.train_images), set(references.query_ids))
    for outcome in outcomes:
        if outcome.status == "quarantined":
            logger.warning("quarantined %s (batch %s): %s", outcome.file, outcome.batch_id, outcome.reason)
        else:
            logger.info("%s %s (batch %s, %d rows)", outcome.status, outcome.file, outcome.batch_id, outcome.rows)
    if outcomes:  # an empty poll writes nothing (the flow returns before this task when it sees no file)
        create_markdown_artifact(
            key="ratings-inbox", markdown=outcomes_markdown(outcomes), description="Outcome of each inbox file"
        )
        create_table_artifact(
            key="ratings-inbox-batches",
            table=[o.as_dict() for o in outcomes],
            description=f"Inbox files checked against dataset version {references.version}",
        )
    return outcomes


def merged_event_payload(outcomes: list[BatchOutcome], version: str) -> dict:
    merged = [o for o in outcomes if o.status == "merged"]
    return {
        "dataset_version": version,
        "batches": [{"batch_id": o.batch_id, "file": o.file, "kind": o.kind, "rows": o.rows} for o in merged],
        "rows": sum(o.rows for o in merged),
    }


@task(name="emit-ratings-merged", cache_policy=NO_CACHE)
def emit_ratings_merged(workspace: Workspace, outcomes: list[BatchOutcome], version: str) -> str | None:
    """Tell the retrain deployment that new ratings are in the store; nothing is emitted if nothing merged.

    Returns the event id (None when no event was sent, or when no events client is configured)."""
    from prefect.events import emit_event

    payload = merged_event_payload(outcomes, version)
    if not payload["batches"]:
        return None
    event = emit_event(
        event=MERGED_EVENT,
        resource={
            "prefect.resource.id": STORE_RESOURCE_ID,
            "prefect.resource.name": "imgsearch ratings store",
            "imgsearch.workspace": str(workspace.root),
        },
        payload=payload,
    )
    get_run_logger().info("emitted %s: %d batch(es), %d rows", MERGED_EVENT, len(payload["batches"]), payload["rows"])
    return str(event.id) if event is not None else None


@task(name="aggregate-ratings", cache_policy=NO_CACHE)
def aggregate_ratings_task(dataset: IngestedDataset, params: RatingParams) -> AggregatedRatings:
    """One target per (image, query_id); fails on a broken training-pairs contract."""
    from data_contracts.ratings import TRAINING_PAIRS_CONTRACT, prepare_training_pairs
    from data_contracts.runner import enforce

    result = aggregate_ratings(dataset.expert, dataset.crowd, dataset.texts(), params)
    enforce(prepare_training_pairs(result.pairs), TRAINING_PAIRS_CONTRACT, "aggregated ratings")
    counts = result.counts.as_dict()
    counts["crowd_unknown_text_dropped_at_ingest"] = dataset.summary.dropped.get("crowd_unknown_text", 0)
    create_table_artifact(
        key="ratings-counts",
        table=[{"count": name, "value": value} for name, value in counts.items()],
        description=f"Rating aggregation ({params.expert_method}, expert_weight={params.expert_weight}, "
        f"crowd_weight={params.crowd_weight})",
    )
    return result


@task(name="merge-ratings-store", cache_policy=NO_CACHE)
def merge_ratings_store_task(dataset: IngestedDataset, workspace: Workspace) -> IngestedDataset:
    """Add the rating batches merged from the inbox; a pair rated again takes its newest rating."""
    store = load_ratings_store(workspace)
    if store.crowd.empty and store.expert.empty:
        return dataset
    store = store.known_only(set(dataset.texts()["query_id"]))
    get_run_logger().info(
        "ratings store: %d crowd and %d expert rows of known captions", len(store.crowd), len(store.expert)
    )
    return replace(
        dataset,
        crowd=merge_ratings(dataset.crowd, store.crowd, CROWD.columns),
        expert=merge_ratings(dataset.expert, store.expert, EXPERT.columns),
    )
