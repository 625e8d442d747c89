"""The command line: help on every option, validate's summary and its clear failures."""

import json

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
    assert result.exit_code == 1
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
