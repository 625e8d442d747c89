"""Child-content safety: screen texts about children, flag the images their captions describe,
drop flagged pairs from training, and learn an image-level detector for images without captions.

The legal requirement is that no material with children under 16 is shown. The text screen
therefore errs on the side of flagging: a false hit costs one training pair or one refused query,
a miss can show a child. Decisions on borderline words (documented in `README.md`, section
"Ratings, safety and EDA"):

- Flagged: child, kid, boy, girl, baby, toddler, infant, newborn, tot, teen(ager), tween,
  adolescent, youngster, youth, kiddo/kiddie, school-age words (pupil, schoolboy, schoolgirl,
  schoolchild, kindergartener, preschooler, "little league", "elementary/grade/primary/middle/
  high school"), family words that imply a child (son, daughter, grandson, granddaughter,
  grandchild, stepson, stepdaughter), "tomboy" (a girl), "little one(s)", and ages under 16
  ("a 5-year-old", "six year old", "aged 7", "a 3 month old"; any age in months/weeks/days).
- "baby" is flagged even in "baby blue": rare in captions and cheap to lose.
- "young" is flagged unless an adult or animal noun follows within three words: "young man",
  "young women", "young adults", "young blond man", "young dog" pass; "young person", "young
  football player", "young asian" are flagged.
- Not flagged: words that merely contain the letters (kidding, kidney, boyfriend, girlfriend,
  cowboy, showgirl, Kidderminster, Boyle), "student" (mostly university students in captions),
  "family", "brother", "sister", "minor", "cub"; ages 16 and over ("a 30-year-old man").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tasks.ingest.tables import caption_image
from tasks.safety.normalize import NormalizedText, normalize_texts

NOTICE = "This image is unavailable in your country in compliance with local laws."
LEGAL_AGE = 16

# Lemmas of nouns that name a child (or a person under 16 in the captions' usage).
CHILD_LEMMAS: frozenset[str] = frozenset(
    {
        "child",
        "kid",
        "kiddo",
        "kiddie",
        "kiddy",
        "boy",
        "girl",
        "baby",
        "toddler",
        "infant",
        "newborn",
        "tot",
        "teen",
        "teenager",
        "teenage",
        "teenaged",
        "tween",
        "preteen",
        "adolescent",
        "youngster",
        "youth",
        "pupil",
        "schoolboy",
        "schoolgirl",
        "schoolchild",
        "schoolkid",
        "kindergartener",
        "kindergartner",
        "kindergarten",
        "preschooler",
        "preschool",
        "son",
        "daughter",
        "grandson",
        "granddaughter",
        "grandchild",
        "grandkid",
        "stepson",
        "stepdaughter",
        "tomboy",
        "choirboy",
        "paperboy",
        "newsboy",
        "babe",
    }
)
IRREGULAR_FORMS = {
    "children": "child",
    "childs": "child",
    "childrens": "child",
    "schoolchildren": "schoolchild",
    "grandchildren": "grandchild",
    "teenage": "teenage",
    "teenaged": "teenaged",
    "preschool": "preschool",
    "kindergarten": "kindergarten",
    "youths": "youth",
}
# Multi-word terms, matched on consecutive lemmas.
CHILD_PHRASES: tuple[tuple[str, ...], ...] = (
    ("little", "league"),
    ("little", "one"),
    ("elementary", "school"),
    ("grade", "school"),
    ("primary", "school"),
    ("middle", "school"),
    ("high", "school"),
    ("cub", "scout"),
)
# After "young", these make the phrase about an adult or an animal, not a child.
ADULT_OR_ANIMAL_LEMMAS: frozenset[str] = frozenset(
    {
        "man",
        "woman",
        "lady",
        "adult",
        "gentleman",
        "guy",
        "bride",
        "groom",
        "mother",
        "father",
        "mom",
        "dad",
        "mum",
        "wife",
        "husband",
        "couple",
        "dog",
        "puppy",
        "cat",
        "kitten",
        "horse",
        "foal",
        "calf",
        "lamb",
        "deer",
        "bird",
        "animal",
        "cow",
        "goat",
        "bull",
        "pony",
    }
)
YOUNG_WINDOW = 3

_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
NUMBER_WORDS = {w: i for i, w in enumerate(_UNITS)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)}
_NUM = rf"\d{{1,3}}(?:\.\d+)?|{'|'.join(sorted(NUMBER_WORDS, key=len, reverse=True))}"
_TENS_RE = "|".join(_TENS)
# "a 5-year-old", "six year old", "twenty-one-year-olds", "3 month old", "5yo", "5 y/o".
AGE_PATTERN = re.compile(
    rf"(?<![\w.])(?:(?P<tens>{_TENS_RE})[\s-]*)?(?P<num>{_NUM})[\s-]*"
    rf"(?:(?P<unit>years?|yrs?|months?|mos?|weeks?|wks?|days?)[\s-]*olds?|(?P<yo>y/?o|y\.o\.?))(?![\w])"
)
# "aged 7", "age 12", "ages 3".
AGED_PATTERN = re.compile(rf"(?<![\w.])age[ds]?[\s:]+(?:(?P<tens>{_TENS_RE})[\s-]*)?(?P<num>{_NUM})(?![\w])")


def _noun_forms(lemma: str) -> set[str]:
    if lemma.endswith("y") and lemma[-2:-1] not in set("aeiou"):
        return {lemma, lemma[:-1] + "ies"}
    if lemma.endswith(("s", "x", "ch", "sh")):
        return {lemma, lemma + "es"}
    return {lemma, lemma + "s"}


def _build_noun_forms() -> dict[str, str]:
    forms = {form: lemma for lemma in CHILD_LEMMAS for form in _noun_forms(lemma)}
    return forms | IRREGULAR_FORMS


# Surface form -> lemma. spaCy's lookup lemmatizer has no part of speech, so it maps "kidding" to
# "kid"; accepting a lemma only when the surface word is one of its noun forms keeps those out.
NOUN_FORMS: dict[str, str] = _build_noun_forms()


def _age_value(match: re.Match) -> float:
    num = match.group("num")
    value = float(num) if num[0].isdigit() else float(NUMBER_WORDS[num])
    if match.group("tens"):
        value += NUMBER_WORDS[match.group("tens")]
    return value


def age_mentions(text: str) -> list[str]:
    """Ages under 16 written in `text` ("5-year-old", "six year old", "aged 7"); any age in months/weeks/days."""
    lowered = text.lower()
    found = []
    for match in AGE_PATTERN.finditer(lowered):
        unit = (match.group("unit") or "year").rstrip("s")
        if not unit.startswith(("year", "yr")) or _age_value(match) < LEGAL_AGE:
            found.append(re.sub(r"\s+", " ", match.group(0).strip()))
    for match in AGED_PATTERN.finditer(lowered):
        if _age_value(match) < LEGAL_AGE:
            found.append(re.sub(r"\s+", " ", match.group(0).strip()))
    return found


@dataclass(frozen=True)
class ScreenResult:
    flagged: bool
    matches: list[str] = field(default_factory=list)


class ChildContentFilter:
    """Flags texts that are about children under 16 (see the module docstring for the word list)."""

    def __init__(
        self,
        noun_forms: dict[str, str] | None = None,
        phrases: Sequence[tuple[str, ...]] = CHILD_PHRASES,
        young_exceptions: Iterable[str] = ADULT_OR_ANIMAL_LEMMAS,
    ):
        self.noun_forms = dict(NOUN_FORMS if noun_forms is None else noun_forms)
        self.phrases = tuple(tuple(p) for p in phrases)
        self.young_exceptions = frozenset(young_exceptions)

    def _young_is_child(self, doc: NormalizedText, at: int) -> bool:
        following = [lemma for lemma in doc.lemmas[at + 1 :] if lemma != ","]  # "young, fit man"
        for lemma in following[:YOUNG_WINDOW]:
            if not any(ch.isalnum() for ch in lemma):  # other punctuation ends the noun phrase
                break
            if lemma in self.young_exceptions:
                return False
            if lemma in ("and", "or", "with"):
                break
        return True

    def _screen_doc(self, text: str, doc: NormalizedText) -> ScreenResult:
        matches: list[str] = []
        for i, token in enumerate(doc.tokens):
            term = self.noun_forms.get(token)
            if term:
                matches.append(term)
            elif token == "young" and self._young_is_child(doc, i):
                matches.append("young")
            for phrase in self.phrases:
                if doc.lemmas[i : i + len(phrase)] == phrase or doc.tokens[i : i + len(phrase)] == phrase:
                    matches.append(" ".join(phrase))
        matches += age_mentions(text)
        unique = list(dict.fromkeys(matches))
        return ScreenResult(flagged=bool(unique), matches=unique)

    def screen_many(self, texts: Iterable[str]) -> list[ScreenResult]:
        texts = ["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t) for t in texts]
        return [self._screen_doc(t, d) for t, d in zip(texts, normalize_texts(texts), strict=True)]

    def screen(self, text: str) -> ScreenResult:
        return self.screen_many([text])[0]

    def screen_series(self, texts: pd.Series) -> pd.DataFrame:
        """Vectorised screen: one row per text (same index), columns `flagged` and `matches`."""
        results = self.screen_many(texts.tolist())
        return pd.DataFrame(
            {"flagged": [r.flagged for r in results], "matches": [list(r.matches) for r in results]},
            index=texts.index,
        )


def screen_texts(texts: pd.DataFrame, content_filter: ChildContentFilter | None = None) -> pd.DataFrame:
    """(query_id, query_text) -> the same rows plus `image` (the caption's own image), `flagged`, `matches`."""
    content_filter = content_filter or ChildContentFilter()
    out = texts[["query_id", "query_text"]].drop_duplicates("query_id").reset_index(drop=True)
    out["image"] = caption_image(out["query_id"])
    screened = content_filter.screen_series(out["query_text"])
    out["flagged"] = screened["flagged"].astype(bool)
    out["matches"] = screened["matches"]
    return out


def image_flags(text_flags: pd.DataFrame) -> pd.DataFrame:
    """An image is flagged when any caption written for it (query_id `<image>#n`) is flagged."""
    grouped = text_flags.groupby("image", sort=True)
    out = pd.DataFrame(
        {
            "captions": grouped.size(),
            "flagged_captions": grouped["flagged"].sum().astype(int),
            "terms": grouped["matches"].agg(lambda ms: sorted({m for row in ms for m in row})),
        }
    ).reset_index()
    out["flagged"] = out["flagged_captions"] > 0
    return out[["image", "captions", "flagged_captions", "flagged", "terms"]]


@dataclass(frozen=True)
class SafetySummary:
    texts_screened: int
    texts_flagged: int
    images_with_captions: int
    images_flagged: int
    pairs_before: int
    pairs_flagged_by_text: int
    pairs_flagged_by_image: int
    pairs_flagged: int
    pairs_after: int
    terms: dict[str, int]

    @property
    def flagged_pair_share(self) -> float:
        return self.pairs_flagged / self.pairs_before if self.pairs_before else 0.0


@dataclass(frozen=True)
class SafetyOutcome:
    """The training pairs that remain, the removed ones (with why), and the text and image flags."""

    kept: pd.DataFrame
    removed: pd.DataFrame
    text_flags: pd.DataFrame
    image_flags: pd.DataFrame
    summary: SafetySummary


def term_counts(text_flags: pd.DataFrame) -> dict[str, int]:
    """How many flagged texts each matched term occurs in, most frequent first."""
    counts = Counter(m for row in text_flags["matches"] for m in row)
    return dict(counts.most_common())


def filter_child_pairs(pairs: pd.DataFrame, text_flags: pd.DataFrame, images: pd.DataFrame) -> SafetyOutcome:
    """Drop every pair whose text is flagged or whose image is flagged; count both reasons."""
    flagged_texts = set(text_flags.loc[text_flags["flagged"], "query_id"])
    flagged_images = set(images.loc[images["flagged"], "image"])
    by_text = pairs["query_id"].isin(flagged_texts)
    by_image = pairs["image"].isin(flagged_images)
    drop = by_text | by_image
    removed = pairs[drop].copy()
    removed["flagged_text"] = by_text[drop].to_numpy()
    removed["flagged_image"] = by_image[drop].to_numpy()
    summary = SafetySummary(
        texts_screened=len(text_flags),
        texts_flagged=int(text_flags["flagged"].sum()),
        images_with_captions=len(images),
        images_flagged=int(images["flagged"].sum()),
        pairs_before=len(pairs),
        pairs_flagged_by_text=int(by_text.sum()),
        pairs_flagged_by_image=int(by_image.sum()),
        pairs_flagged=int(drop.sum()),
        pairs_after=int((~drop).sum()),
        terms=term_counts(text_flags),
    )
    return SafetyOutcome(
        kept=pairs[~drop].reset_index(drop=True),
        removed=removed.reset_index(drop=True),
        text_flags=text_flags,
        image_flags=images,
        summary=summary,
    )


def apply_child_safety(
    pairs: pd.DataFrame, texts: pd.DataFrame, content_filter: ChildContentFilter | None = None
) -> SafetyOutcome:
    """Screen every known text (train captions and test queries), flag images, filter the pairs."""
    text_flags = screen_texts(texts, content_filter)
    return filter_child_pairs(pairs, text_flags, image_flags(text_flags))
