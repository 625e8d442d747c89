"""Misspelling tolerance for the child lexicon: a deletion-neighbourhood index, checked with edit distance.

A word of the lexicon is indexed under every string it becomes after deleting up to `max_distance`
letters; a token is looked up under its own deletions. Two strings within edit distance k (insertions,
deletions, substitutions, adjacent transpositions) share such a string, so the index finds every
candidate and `nltk.edit_distance(transpositions=True)` confirms it. Lookups cost a few dozen set
probes instead of a pass over the lexicon.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import combinations


def allowed_distance(word: str) -> int:
    """Edits tolerated for a lexicon word: none under 4 letters, 1 from 4, 2 from 7."""
    return 2 if len(word) >= 7 else 1 if len(word) >= 4 else 0


def deletions(word: str, depth: int) -> set[str]:
    out = {word}
    for k in range(1, min(depth, len(word) - 1) + 1):
        for drop in combinations(range(len(word)), k):
            out.add("".join(c for i, c in enumerate(word) if i not in drop))
    return out


class MisspellingIndex:
    """Finds the lexicon word a token misspells, within the distance that word allows."""

    def __init__(self, words: Iterable[str]):
        self._by_deletion: dict[str, set[str]] = {}
        self.max_depth = 0
        for word in words:
            depth = allowed_distance(word)
            if depth == 0:
                continue
            self.max_depth = max(self.max_depth, depth)
            for key in deletions(word, depth):
                self._by_deletion.setdefault(key, set()).add(word)

    def nearest(self, token: str) -> str | None:
        """The closest lexicon word within its allowed distance of `token`, or None (ties: alphabetical)."""
        from nltk import edit_distance

        if len(token) < 3:
            return None
        candidates: set[str] = set()
        for key in deletions(token, self.max_depth):
            candidates |= self._by_deletion.get(key, set())
        best: tuple[int, str] | None = None
        for word in candidates:
            # A misspelling keeps the first letter (errors there are rare); this keeps names and
            # words of other languages ("vids", "een") away from the lexicon.
            if word[0] != token[0] or abs(len(word) - len(token)) > allowed_distance(word):
                continue
            distance = edit_distance(token, word, transpositions=True)
            if distance <= allowed_distance(word) and (best is None or (distance, word) < best):
                best = (distance, word)
        return best[1] if best else None
