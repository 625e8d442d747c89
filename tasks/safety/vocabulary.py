"""Known words from spaCy's lookup tables (spacy-lookups-data, installed, nothing downloaded).

The text screen asks them: is a token an English word (then it is not a misspelling of a child
word, nor a Spanish or German word that looks like one), is it a noun (an age before a noun
describes a thing: "10-year-old car"), is it a verb ("a 6-year-old smiles").
"""

from __future__ import annotations

import gzip
import json
import threading
from functools import lru_cache
from importlib import resources

_lock = threading.Lock()


def _table(name: str):
    path = resources.files("spacy_lookups_data") / "data" / f"{name}.json.gz"
    with path.open("rb") as raw, gzip.open(raw, "rt", encoding="utf8") as text:
        return json.load(text)


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Inflected forms and lemmas of the English lookup lemmatizer, plus its noun/verb/adjective/adverb index."""
    with _lock:
        lookup = _table("en_lemma_lookup")
        index = _table("en_lemma_index")
    words = {w.lower() for w in lookup} | {w.lower() for w in lookup.values()}
    for entries in index.values():
        words.update(w.lower() for w in entries if "_" not in w)
    return frozenset(w for w in words if w.isalpha())


def _lemmas_and_forms(part_of_speech: str) -> tuple[set[str], dict[str, str]]:
    """Lemmas the index lists under `part_of_speech`, and the lookup table of inflected form -> lemma."""
    with _lock:
        lookup = _table("en_lemma_lookup")
        index = _table("en_lemma_index")
    return {w.lower() for w in index.get(part_of_speech, ()) if "_" not in w}, lookup


@lru_cache(maxsize=1)
def english_nouns() -> frozenset[str]:
    """Lemmas the index lists as nouns, and their inflected forms."""
    nouns, lookup = _lemmas_and_forms("noun")
    # Plurals, not verb forms that share a noun's lemma ("covered" -> "cover").
    forms = {f.lower() for f, lemma in lookup.items() if lemma.lower() in nouns and not f.endswith(("ed", "ing"))}
    return frozenset(nouns | forms)


@lru_cache(maxsize=1)
def english_verbs() -> frozenset[str]:
    verbs, lookup = _lemmas_and_forms("verb")
    return frozenset(verbs | {form.lower() for form, lemma in lookup.items() if lemma.lower() in verbs})


@lru_cache(maxsize=1)
def english_adjectives() -> frozenset[str]:
    with _lock:
        index = _table("en_lemma_index")
    return frozenset(w.lower() for w in index.get("adj", ()) if "_" not in w)
