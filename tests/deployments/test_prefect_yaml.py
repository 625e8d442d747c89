"""prefect.yaml deploys the same five deployments as deployments/serve.py, to the work pool, and they run there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deployments.serve import build_deployments

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prefect_file() -> dict:
    from prefect.cli.deploy._models import PrefectYamlModel

    raw = yaml.safe_load((REPO / "prefect.yaml").read_text())
    PrefectYamlModel.model_validate(raw)  # the schema `prefect deploy` reads it with
    return raw


@pytest.fixture
def resolved(prefect_file, sample_dir, monkeypatch) -> dict[str, dict]:
    """The deployments as `prefect deploy` sees them, with $IMGSEARCH_DATA_DIR set to the sample."""
    from prefect.utilities.templating import apply_values

    monkeypatch.setenv("IMGSEARCH_DATA_DIR", str(sample_dir.resolve()))
    monkeypatch.setenv("IMGSEARCH_GALLERY_DIR", str((sample_dir / "test_images").resolve()))
    return {d["name"]: apply_values(d, dict(os.environ), remove_notset=False) for d in prefect_file["deployments"]}


@pytest.fixture
def served(sample_dir) -> dict:
    return {d.name: d for d in build_deployments(sample_dir)}


def test_same_deployments_and_flows_as_serve(resolved, served):
    from prefect.flows import Flow, load_flow_from_entrypoint

    assert set(resolved) == set(served)
    for name, spec in resolved.items():
        flow = load_flow_from_entrypoint(str(REPO / spec["entrypoint"]))
        assert isinstance(flow, Flow)
        assert flow.name == served[name].flow_name, name
        assert spec["entrypoint"] == served[name].entrypoint, name
        assert spec["work_pool"]["name"] == "imgsearch", name
        assert spec["concurrency_limit"] == served[name].concurrency_limit == 1, name
        assert spec["tags"] == served[name].tags, name
        assert spec["description"] == served[name].description, name
        # the defaults the server hands a run validate and name the same dataset as the served deployments
        flow.validate_parameters(spec["parameters"])
        assert spec["parameters"] == served[name].parameters, name


def test_same_schedules_and_trigger_as_serve(resolved, served):
    from prefect.events import DeploymentEventTrigger

    (cron,) = resolved["train"]["schedules"]
    assert cron["cron"] == served["train"].schedules[0].schedule.cron
    (interval,) = resolved["ingest-ratings"]["schedules"]
    assert interval["interval"] == served["ingest-ratings"].schedules[0].schedule.interval.total_seconds()
    assert all("schedules" not in resolved[name] for name in ("retrain", "backfill", "index"))
    (spec,) = resolved["retrain"]["triggers"]
    (trigger,) = served["retrain"].triggers
    parsed = DeploymentEventTrigger(**{k: v for k, v in spec.items() if k != "type"})
    assert spec["type"] == "event" and parsed.enabled
    assert (parsed.name, parsed.expect, parsed.match) == (trigger.name, trigger.expect, trigger.match)


def test_pull_step_makes_the_checkout_the_working_directory(prefect_file, monkeypatch, tmp_path):
    from prefect.deployments.steps.pull import set_working_directory
    from prefect.utilities.templating import apply_values

    (step,) = prefect_file["pull"]
    ((name, inputs),) = step.items()
    assert name == "prefect.deployments.steps.set_working_directory"
    monkeypatch.setenv("IMGSEARCH_CODE_DIR", str(REPO))
    monkeypatch.chdir(tmp_path)
    set_working_directory(**apply_values(inputs, dict(os.environ)))  # as a run's pull step resolves it, on the worker
    assert Path.cwd() == REPO
    for spec in prefect_file["deployments"]:
        assert (Path.cwd() / spec["entrypoint"].split(":")[0]).is_file()


@pytest.mark.integration
def test_backfill_runs_through_a_process_worker():
    """The whole worker path (deployments/worker_smoke.py): 60 to 90 s on this machine."""
    done = subprocess.run(
        [sys.executable, str(REPO / "deployments" / "worker_smoke.py"), "--timeout", "600"],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "backfill/backfill flow run" in done.stdout and "COMPLETED through work pool 'imgsearch'" in done.stdout
