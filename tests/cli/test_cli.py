"""The command line: help on every option, validate's summary and its clear failures."""

import json

import pytest
from typer.testing import CliRunner

from imgsearch_cli.main import app

runner = CliRunner()


def test_every_command_and_option_has_help():
    import click
    import typer.main

    command = typer.main.get_command(app)
    for name, sub in command.commands.items():
        assert sub.help, f"command {name} has no help"
        for param in sub.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert param.help, f"option --{param.name} of {name} has no help"
            if isinstance(param, click.Argument):
                assert getattr(param, "help", None), f"argument {param.name} of {name} has no help"


def test_version_prints_the_installed_version():
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"imgsearch {version('imgsearch')}"


def test_validate_prints_summary(sample_dir, workspace):
    result = runner.invoke(app, ["validate", str(sample_dir)])
    assert result.exit_code == 0, result.output
    assert "train_dataset        passed" in result.output
    assert "5 crowd rows whose query_id has no text" in result.output
    assert (workspace.root / "reports" / "data_docs" / "index.html").is_file()


def test_validate_json(sample_dir, workspace):
    result = runner.invoke(app, ["validate", str(sample_dir), "--json", "--no-docs"])
    assert result.exit_code == 0
    assert json.loads(result.output)["rows"]["test_images"] == 12


def test_validate_fails_with_clear_message(sample_copy, workspace):
    path = sample_copy / "ExpertAnnotations.tsv"
    path.write_text(path.read_text().replace("\t", ";"))
    result = runner.invoke(app, ["validate", str(sample_copy), "--no-docs"])
    assert result.exit_code == 1
    assert "ExpertAnnotations.tsv" in result.output and "semicolon" in result.output


def test_sample_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "x").write_text("keep me")
    result = runner.invoke(app, ["sample", str(tmp_path)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert (tmp_path / "x").read_text() == "keep me"


def test_sample_writes_dataset(tmp_path):
    result = runner.invoke(app, ["sample", str(tmp_path / "s"), "--train-images", "12", "--test-images", "3"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "s" / "test_images").iterdir())) == 3


def test_backfill_refuses_bad_parameters(tmp_path):
    result = runner.invoke(app, ["backfill", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "is not a folder" in result.output
    result = runner.invoke(app, ["backfill", str(tmp_path), "--models", "nope"])
    assert result.exit_code == 2 and "unknown or no models" in result.output


def test_backfill_rejects_an_unknown_encoder(prefect_harness, sample_dir, workspace):
    result = runner.invoke(app, ["backfill", str(sample_dir), "--text-encoder", "fake-text", "--image-encoder", "nope"])
    assert result.exit_code == 1 and "unknown image encoder" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "/nonexistent/data"], "data_dir: data_dir /nonexistent/data is not a folder"),
        (["run"], "Missing argument"),
        (["run", "/tmp", "--seed", "-1"], "Invalid value for '--seed'"),
        (["run", "/tmp", "--bogus"], "No such option: --bogus"),
        (["validate", "/nonexistent/data"], "not a folder"),
        (["backfill", "/nonexistent/data"], "is not a folder"),
        (["backfill", "/tmp", "--models", "nope"], "unknown or no models"),
        (["demo", "--seed", "x"], "Invalid value for '--seed'"),
        (["sample"], "Missing argument"),
        (["sample", "/tmp/x", "--train-images", "0"], "Invalid value for '--train-images'"),
        (["screen"], "Missing argument"),
        (["search", "a dog", "-k", "0"], "k must be between 1 and 100"),
        (["search", "\u200b"], "query is empty"),
        (["score"], "Missing argument"),
        (["score", "/nonexistent.csv"], "file not found"),
        (["score", "/tmp/x.csv", "--batch-size", "0"], "Invalid value for '--batch-size'"),
        (["index", "/nonexistent"], "not a folder"),
        (["install-model", "nope"], "unknown model"),
        (["serve", "--port", "0"], "Invalid value for '--port'"),
        (["serve", "--check-every", "-1"], "Invalid value for '--check-every'"),
        (["nosuch"], "No such command"),
    ],
)
def test_parameter_errors_are_one_line_and_exit_2(args, message, workspace):
    result = runner.invoke(app, args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, (args, result.output)
    assert len(lines) == 1 and message in lines[0], (args, result.output)
    assert "errors.pydantic.dev" not in result.output and "Traceback" not in result.output


def test_prefect_api_starts_beside_the_imports_only_when_none_is_configured(monkeypatch):
    """Without a configured API the temporary server is started in a thread and waited for; a failed start is left
    to the flow run; with an API configured nothing is started."""
    import threading

    from prefect.server.api import server
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED, temporary_settings

    from imgsearch_cli.main import _start_prefect_api_beside_imports

    started, finished = [], threading.Event()

    class FakeServer:
        def start(self):
            started.append(threading.current_thread().name)
            finished.wait(0.2)
            finished.set()
            raise RuntimeError("port in use")  # left to the flow run's own start

    monkeypatch.setattr(server, "SubprocessASGIServer", FakeServer)
    with temporary_settings(updates={PREFECT_API_URL: None, PREFECT_SERVER_EPHEMERAL_ENABLED: True}):
        _start_prefect_api_beside_imports()
    assert started == ["prefect-api-start"] and finished.is_set()  # returned after the start had ended

    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        _start_prefect_api_beside_imports()
    assert started == ["prefect-api-start"]
