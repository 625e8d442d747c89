"""Prefect wrapper for rating aggregation: run the plain function, enforce its contract, publish the counts."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.ingest import IngestedDataset
from tasks.ratings import AggregatedRatings, RatingParams, aggregate_ratings


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
