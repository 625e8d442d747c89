"""Text normalisation: lower-case tokens, lookup lemmas, stop words out; nothing loads at import."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_loads_nothing():
    # A fresh interpreter: importing the stage modules must not load spaCy, matplotlib or sklearn.
    code = (
        "import sys, tasks.safety.normalize, tasks.safety.text_screen, tasks.safety.image_detector, "
        "tasks.ratings.aggregate, tasks.eda.report; "
        "print(sorted(m for m in ('spacy', 'matplotlib', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "[]"


def test_tokens_and_lemmas():
    from tasks.safety.normalize import normalize_text

    doc = normalize_text("Children are playing with KIDS and babies.")
    assert doc.tokens[:2] == ("children", "are")
    assert doc.lemmas[0] == "child" and "baby" in doc.lemmas and "kid" in doc.lemmas
    assert doc.content_lemmas == ["child", "play", "kid", "baby"]


def test_hyphenated_ages_are_split():
    from tasks.safety.normalize import normalize_text

    assert normalize_text("a 5-year-old").tokens == ("a", "5", "-", "year", "-", "old")
