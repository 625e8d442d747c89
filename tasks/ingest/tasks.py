"""Prefect wrappers for ingestion: run the plain function, write the prepared tables, publish artifacts."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.ingest.dataset import IngestedDataset, ingest_dataset, write_prepared
from tasks.workspace import Workspace


@task(name="ingest", cache_policy=NO_CACHE, retries=0)
def ingest_task(data_dir: Path, workspace: Workspace) -> IngestedDataset:
    """Validate the raw dataset; on success store its tables as a dataset version in the workspace."""
    dataset = ingest_dataset(data_dir, docs_dir=workspace.data_docs)
    summary = dataset.summary
    version_dir = write_prepared(dataset, workspace.dataset_dir(summary.version))
    create_table_artifact(
        key="ingest-row-counts",
        table=[{"table": name, "rows": rows} for name, rows in summary.rows.items()]
        + [{"table": folder, "rows": count} for folder, count in summary.images.items()],
        description=f"Rows and images ingested from {summary.data_dir}",
    )
    dropped = "\n".join(f"- {n} {summary.dropped_reasons[k]}" for k, n in summary.dropped.items()) or "- nothing"
    contracts = "\n".join(f"| {name} | {status} |" for name, status in summary.contracts.items())
    create_markdown_artifact(
        key="ingest-summary",
        markdown=(
            f"## Ingestion of `{summary.data_dir}`\n\n"
            f"Dataset version `{summary.version}` written to `{version_dir}`.\n\n"
            f"| contract | status |\n|---|---|\n{contracts}\n\n### Dropped\n{dropped}\n\n"
            f"Data Docs: `{workspace.data_docs / 'index.html'}`\n"
        ),
        description="Ingestion contracts and dropped rows",
    )
    return dataset
