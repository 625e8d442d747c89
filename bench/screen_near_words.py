"""Dev tool: frequent tokens that are no English word yet sit within the screen's misspelling distance of a child word.

Run by hand when the fuzzy targets change: `python bench/screen_near_words.py [--min-log-prob -19]`.
Reads spaCy's lexeme probabilities (spacy-lookups-data, installed; too large to load in the screen
itself) and prints `log_prob token -> child word`. Names, brands, slang and words of other languages
in that list go into `lexicon.NOT_MISSPELLINGS` after a look by hand; real misspellings stay out.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from importlib import resources
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-log-prob", type=float, default=-19.0, help="Only tokens at least this frequent.")
    args = parser.parse_args()

    from tasks.safety import lexicon as lx
    from tasks.safety.misspelling import MisspellingIndex
    from tasks.safety.vocabulary import english_words

    path = resources.files("spacy_lookups_data") / "data" / "en_lexeme_prob.json.gz"
    with path.open("rb") as raw, gzip.open(raw, "rt", encoding="utf8") as text:
        probabilities = json.load(text)
    known = english_words()
    index = MisspellingIndex(lx.FUZZY_TARGETS)
    rows = []
    for token, log_prob in probabilities.items():
        if log_prob < args.min_log_prob or not (token.isalpha() and token.islower()):
            continue
        if token in known or token in lx.ENGLISH_FORMS or token in lx.NOT_MISSPELLINGS:
            continue
        near = index.nearest(token)
        if near:
            rows.append((log_prob, token, near))
    for log_prob, token, near in sorted(rows, reverse=True):
        print(f"{log_prob:.1f} {token} -> {near}")


if __name__ == "__main__":
    main()
