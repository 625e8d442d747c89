"""Prefect wrapper for the EDA report: compute the tables, write PNGs and HTML, publish them as artifacts."""

from __future__ import annotations

from dataclasses import asdict

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from tasks.eda.report import EdaReport, eda_tables, markdown_summary, write_eda_report
from tasks.ingest.dataset import IngestedDataset
from tasks.ratings.aggregate import AggregatedRatings
from tasks.safety.text_screen import SafetyOutcome
from tasks.workspace import Workspace


@task(name="eda-report", cache_policy=NO_CACHE)
def eda_report_task(
    dataset: IngestedDataset, ratings: AggregatedRatings, safety: SafetyOutcome, workspace: Workspace
) -> EdaReport:
    version = dataset.summary.version
    counts = {k: v for k, v in asdict(safety.summary).items() if k != "terms"}
    tables = eda_tables(dataset.expert, ratings.pairs, dataset.texts(), safety.summary.terms, counts)
    report = write_eda_report(
        tables,
        ratings.pairs,
        workspace.eda_dir(version),
        title=f"imgsearch EDA — dataset {version}",
        texts=dataset.texts(),
    )
    create_markdown_artifact(key="eda-report", markdown=markdown_summary(report), description="EDA tables and figures")
    create_link_artifact(
        key="eda-report-html",
        link=report_url(f"eda/{version}/{report.html.name}"),
        link_text="EDA report (HTML, served by `imgsearch serve`)",
        description=f"EDA report of dataset {version}; file: {report.html}",
    )
    return report


def report_url(relative: str) -> str:
    """Where `imgsearch serve` shows a report (its /reports/ route), so the dashboard's link opens it: the
    server's address from IMGSEARCH_PUBLIC_URL (default the serve command's own, http://127.0.0.1:8000)."""
    import os

    base = os.environ.get("IMGSEARCH_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
    return f"{base}/reports/{relative}"
