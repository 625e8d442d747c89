"""Text normalisation: lower-case tokens, lookup lemmas, stop words out; nothing loads at import."""

import importlib
import sys


def test_import_loads_no_pipeline():
    sys.modules.pop("tasks.text_normalize", None)
    module = importlib.import_module("tasks.text_normalize")
    assert module.english_pipeline.cache_info().currsize == 0


def test_tokens_and_lemmas():
    from tasks.text_normalize import normalize_text

    doc = normalize_text("Children are playing with KIDS and babies.")
    assert doc.tokens[:2] == ("children", "are")
    assert doc.lemmas[0] == "child" and "baby" in doc.lemmas and "kid" in doc.lemmas
    assert doc.content_lemmas == ["child", "play", "kid", "baby"]


def test_hyphenated_ages_are_split():
    from tasks.text_normalize import normalize_text

    assert normalize_text("a 5-year-old").tokens == ("a", "5", "-", "year", "-", "old")
