"""The pipeline flow under a Prefect test server: stages run, results land in the workspace."""

import json

import pytest
from pydantic import ValidationError

from data_contracts import ContractError
from flows.pipeline import RunParams, run_pipeline


def test_flow_ingests_and_writes_dataset_version(prefect_harness, sample_dir, workspace):
    result = run_pipeline(RunParams(data_dir=sample_dir, workspace=workspace.root))
    version = result.ingest["data_hash"][:16]
    version_dir = workspace.root / "datasets" / version
    assert (version_dir / "train.parquet").is_file()
    assert json.loads((version_dir / "summary.json").read_text())["rows"]["queries"] == 12


def test_flow_stops_on_a_failed_contract(prefect_harness, sample_copy, workspace):
    path = sample_copy / "ExpertAnnotations.tsv"
    path.write_text(path.read_text().replace("\t4\n", "\t7\n", 1))
    with pytest.raises(ContractError, match="expert_annotations"):
        run_pipeline(RunParams(data_dir=sample_copy, workspace=workspace.root))
    assert not (workspace.root / "datasets").exists() or not any((workspace.root / "datasets").iterdir())


def test_bad_parameters_fail_before_any_work(tmp_path):
    with pytest.raises(ValidationError, match="is not a folder"):
        RunParams(data_dir=tmp_path / "nope")
    with pytest.raises(ValidationError):
        RunParams(data_dir=tmp_path, seed=-1)
