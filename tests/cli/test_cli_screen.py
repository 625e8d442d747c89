"""`imgsearch screen`: verdict and matched terms, as text or JSON, exit code 0 either way."""

import json

from typer.testing import CliRunner

from imgsearch_cli.main import app
from tasks.safety.text_screen import NOTICE

runner = CliRunner()


def test_screen_flags_and_prints_notice():
    result = runner.invoke(app, ["screen", "Two KIDS on a slide"])
    assert result.exit_code == 0
    assert "flagged: kid" in result.output and NOTICE in result.output


def test_screen_passes_clean_text():
    result = runner.invoke(app, ["screen", "I was kidding about the kidney beans"])
    assert result.exit_code == 0
    assert result.output.strip() == "not flagged"


def test_screen_json():
    result = runner.invoke(app, ["screen", "a ten-year-old girl", "--json"])
    assert result.exit_code == 0
    payload = json.loads(result.output)
    assert payload == {"text": "a ten-year-old girl", "flagged": True, "matches": ["girl", "ten-year-old"]}
    clean = json.loads(runner.invoke(app, ["screen", "a dog", "--json"]).output)
    assert clean == {"text": "a dog", "flagged": False, "matches": []}
