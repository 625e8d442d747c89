"""Text normalisation for captions: tokens, lemmas and content words, offline and loaded on first use.

spaCy's blank English pipeline gives the rule-based tokenizer (it splits "5-year-old" into
5 / - / year / - / old, which the safety screen relies on) and the lookup lemmatizer gives lemmas
from the tables shipped in spacy-lookups-data, so nothing is downloaded. nltk's lemmatizers and
stop-word lists need corpora that this project may not download, so nltk is not used here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

_lock = threading.Lock()


@dataclass(frozen=True)
class NormalizedText:
    """One text after normalisation. `tokens` and `lemmas` are lower-case and aligned one to one."""

    tokens: tuple[str, ...]
    lemmas: tuple[str, ...]
    is_stop: tuple[bool, ...]
    is_word: tuple[bool, ...]

    @property
    def content_lemmas(self) -> list[str]:
        """Lemmas of the words that carry meaning: no stop words, punctuation or numbers."""
        return [
            lemma
            for lemma, stop, word in zip(self.lemmas, self.is_stop, self.is_word, strict=True)
            if word and not stop
        ]


@lru_cache(maxsize=1)
def english_pipeline():
    """The blank English tokenizer plus the lookup lemmatizer; built once per process, on first use."""
    import spacy

    with _lock:
        nlp = spacy.blank("en")
        nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
        nlp.initialize()
    return nlp


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    """spaCy's English stop words (shipped with spaCy itself, no download)."""
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS)


def normalize_texts(texts: Iterable[str], batch_size: int = 256) -> list[NormalizedText]:
    """Normalise many texts in one pass; the lookup tables are case-sensitive, so text is lower-cased first."""
    nlp = english_pipeline()
    stops = stop_words()
    out = []
    for doc in nlp.pipe((str(t).lower() for t in texts), batch_size=batch_size):
        tokens = tuple(t.text for t in doc if not t.is_space)
        lemmas = tuple((t.lemma_ or t.text) for t in doc if not t.is_space)
        out.append(
            NormalizedText(
                tokens=tokens,
                lemmas=lemmas,
                is_stop=tuple(t.text in stops or t.lemma_ in stops for t in doc if not t.is_space),
                is_word=tuple(t.is_alpha for t in doc if not t.is_space),
            )
        )
    return out


def normalize_text(text: str) -> NormalizedText:
    return normalize_texts([text])[0]


def content_lemmas(text: str) -> list[str]:
    """Lemmas without stop words and punctuation: what the EDA counts and what a bag-of-words model would see."""
    return normalize_text(text).content_lemmas
