"""Every deployment definition loads: names, schedules, the ratings trigger, parameters that validate."""

from __future__ import annotations

import threading
import time

import pytest

from deployments.serve import build_deployments, parse_args
from tasks.ratings.tasks import MERGED_EVENT, STORE_RESOURCE_ID


@pytest.fixture
def deployments(sample_dir, tmp_path):
    return {
        d.name: d for d in build_deployments(sample_dir, tmp_path / "ws", inbox_interval=30, image_encoder="fake-image")
    }


def test_the_five_deployments_and_their_flows(deployments):
    assert {name: d.flow_name for name, d in deployments.items()} == {
        "train": "retrain",
        "ingest-ratings": "ingest-ratings",
        "retrain": "retrain",
        "backfill": "backfill",
        "index": "imgsearch-index",
    }
    for d in deployments.values():
        assert d.concurrency_limit == 1
        assert d.entrypoint.startswith("flows/index.py:" if d.name == "index" else "flows/operations.py:")


def test_the_index_deployment_indexes_the_gallery_folder_on_demand_or_on_an_interval(sample_dir, tmp_path):
    """Default folder: the dataset's test images; `--gallery-dir` and `--index-interval` change it."""
    (index,) = [d for d in build_deployments(sample_dir, tmp_path / "ws") if d.name == "index"]
    assert index.parameters["params"]["folder"] == str((sample_dir / "test_images").resolve())
    assert index.parameters["params"]["workspace"] == str((tmp_path / "ws").resolve())
    assert not index.schedules
    photos = tmp_path / "photos"
    photos.mkdir()
    (index,) = [d for d in build_deployments(sample_dir, gallery_dir=photos, index_interval=300) if d.name == "index"]
    assert index.parameters["params"] == {"folder": str(photos.resolve())}
    (schedule,) = index.schedules
    assert schedule.schedule.interval.total_seconds() == 300


def test_schedules_and_trigger(deployments):
    (train_schedule,) = deployments["train"].schedules
    assert train_schedule.schedule.cron == "0 3 * * *"
    (inbox_schedule,) = deployments["ingest-ratings"].schedules
    assert inbox_schedule.schedule.interval.total_seconds() == 30
    assert not deployments["retrain"].schedules and not deployments["backfill"].schedules
    (trigger,) = deployments["retrain"].triggers
    assert trigger.expect == {MERGED_EVENT}
    assert trigger.match.root == {"prefect.resource.id": STORE_RESOURCE_ID}
    # the trigger survives the round trip to the API's schema
    import uuid

    trigger.set_deployment_id(uuid.uuid4())
    automation = trigger.as_automation()
    assert automation.trigger.expect == {MERGED_EVENT}
    assert automation.actions[0].type == "run-deployment"


def test_parameters_are_typed_and_the_defaults_validate(deployments, sample_dir):
    from flows.index import index_flow
    from flows.operations import backfill, ingest_ratings, retrain

    flows = {
        "train": retrain,
        "ingest-ratings": ingest_ratings,
        "retrain": retrain,
        "backfill": backfill,
        "index": index_flow,
    }
    for name, d in deployments.items():
        schema = d._parameter_openapi_schema
        assert schema.properties, name
        flows[name].validate_parameters(d.parameters)  # the defaults the server will hand the run
    backfill_schema = deployments["backfill"]._parameter_openapi_schema
    assert {"data_dir", "text_encoder", "image_encoder", "force_reembed", "seed", "training"} <= set(
        backfill_schema.properties
    )
    assert backfill_schema.properties["force_reembed"]["type"] == "boolean"
    assert deployments["backfill"].parameters["data_dir"] == str(sample_dir.resolve())
    # what `prefect deployment run backfill/backfill --param image_encoder=...` sends: a top-level key
    backfill.validate_parameters({**deployments["backfill"].parameters, "image_encoder": "efficientnet-lite2"})
    assert deployments["retrain"].parameters["params"]["image_encoder"] == "fake-image"


def test_bad_defaults_fail_at_start_up(tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        build_deployments(tmp_path / "missing")


def test_options_default_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("IMGSEARCH_DATA_DIR", str(tmp_path))
    args = parse_args([])
    assert args.data_dir == tmp_path and args.workspace is None and args.inbox_interval == 60
    assert parse_args(["--data-dir", "x", "--models", "ridge"]).models == "ridge"


def test_workspace_lock_serialises_holders(workspace):
    order = []

    def hold(tag: str, seconds: float) -> None:
        with workspace.lock("training"):
            order.append(f"{tag}-in")
            time.sleep(seconds)
            order.append(f"{tag}-out")

    first = threading.Thread(target=hold, args=("a", 0.3))
    first.start()
    time.sleep(0.05)
    second = threading.Thread(target=hold, args=("b", 0))
    second.start()
    first.join()
    second.join()
    assert order == ["a-in", "a-out", "b-in", "b-out"]
    with pytest.raises(ValueError):
        workspace.lock_path("../etc")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data-dir", "/nonexistent/data"], "--data-dir /nonexistent/data: not a folder"),
        (["--gallery-dir", "/nonexistent/photos"], "--gallery-dir /nonexistent/photos: not a folder"),
        (["--index-interval", "0"], "must be a positive number of seconds"),
        (["--inbox-interval", "-1"], "must be a positive number of seconds"),
        (["--models", "nope"], "training.models: unknown or no models"),
        (["--train-cron", "bad"], "Invalid cron string"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(argv, message, sample_dir, capsys, monkeypatch):
    from deployments.serve import main

    monkeypatch.setenv("IMGSEARCH_DATA_DIR", str(sample_dir))
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert stopped.value.code == 2 and len(err) == 1 and message in err[0], err
    assert "errors.pydantic.dev" not in err[0]


def test_default_data_dir_is_data_or_the_embedded_sample(tmp_path, monkeypatch, workspace):
    from deployments.serve import default_data_dir

    monkeypatch.chdir(tmp_path)
    sample = default_data_dir()  # no ./data: the sample, made once in the workspace
    assert sample == workspace.samples / "seed-0" and (sample / "test_images.csv").is_file()
    assert default_data_dir() == sample
    build_deployments(sample)  # the deployments validate against it
    (tmp_path / "data").mkdir()
    assert default_data_dir().resolve() == (tmp_path / "data").resolve()
