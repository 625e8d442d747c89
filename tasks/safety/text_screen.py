"""Child-content safety on text: screen texts about children under 16, flag the images their own
captions describe, and drop flagged pairs from training.

The legal requirement is that no material with children under 16 is shown, so a text that names a
child is refused; a false hit costs one refused query or one training pair, a miss can show a
child. How a text is read first: `tasks.safety.normalize.tokenize` undoes look-alike letters,
digits for letters, invisible characters, spaced letters and accents. Then, per token:

1. an English child word ("child", "kids", "toddler", "juvenile", "minors", "underage", "niece", ...) or
   phrase ("little ones", "middle schooler", "fifth grader", "my little cousin"), whole tokens only
   ("kidding", "kidney", "boyfriend" pass), or written together with other English words
   ("toddlerlife", "#kidsofinstagram");
2. the same with a repeated letter ("kidd", "boyyy"), spelt by ear ("nefew", "babee") or misspelt:
   edit distance 1 for words of 4 letters or more, 2 for 7 or more (`misspelling.py`), when the
   token is not itself an English word (`vocabulary.py`);
3. a child word of Spanish, Portuguese, German, French, Italian or Russian in any inflected form
   (nltk's Snowball stems), a diminutive ("hijita", "Töchterchen", "сынишка"), German and Russian
   compounds ("Kinderspielplatz", "детский"), and Russian in Latin letters ("deti");
4. an age under 16 that describes a person ("a 5-year-old", "7 year old on a swing", "aged 9",
   "under-12s", "her 7th birthday", "turning five", "year 3 class", "a lad of ten") and not a thing
   or an animal ("three-day-old bread", "a 2 month old puppy", "the bakery's 10th birthday").

Context then excuses a child word used in an adult sense, one rule engine over the tables of
`lexicon.py`: idioms and names ("baby blue", "child seat", "goat kid", "Beastie Boys", "Neil
Young", "girls' night out"), where an idiom about people counts only if nothing else in the text
(a childhood place, toy, parent, or a size or count word) makes them children; adults called boys
or girls in an adult setting ("the girls at the office party"); goods and places named after
children with no child in the text ("kids' bike for sale"); a child word inside a capitalised name
("Boy Pablo", "Youth Lagoon concert"); a young animal or thing ("baby elephant", "young wine",
"juvenile hawk"); "minor" as an adjective ("minor repairs", "E minor"); grown-up children ("adult
son", "my 21 year old son"); a name written with capitals ("Julia Child"); and a false friend in
another language ("son" in "une femme et son chien"). Any other child word in the text still
flags it. The README
("Ratings, safety and EDA") lists the documented choices; `tests/safety/screen_eval.tsv` measures
them.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from tasks.ingest.tables import caption_image
from tasks.safety import lexicon as lx
from tasks.safety.misspelling import MisspellingIndex
from tasks.safety.normalize import Token, fold_word, lower_same_length, spaced_runs, tokenize
from tasks.safety.vocabulary import english_adjectives, english_nouns, english_verbs, english_words

NOTICE = "This image is unavailable in your country in compliance with local laws."
LEGAL_AGE = 16

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
    rf"(?:(?P<unit>years?|yrs?|months?|mos?|weeks?|wks?|days?)[\s-]*(?P<old>olds?)|(?P<yo>y/?o|y\.o\.?))(?![\w])"
)
# "aged 7", "age 12", "ages 3".
AGED_PATTERN = re.compile(rf"(?<![\w.])(?P<word>age[ds]?)[\s:]+(?:(?P<tens>{_TENS_RE})[\s-]*)?(?P<num>{_NUM})(?![\w])")
# "under-12s", "u12 football", "under 10 team".
AGE_GROUP_PATTERN = re.compile(r"(?<![\w.])(?:u|under)[\s-]?(?P<num>\d{1,2})(?P<plural>['’]?s)?(?![\w])")
# "under-fives", "under twelves": an age group in words.
AGE_GROUP_WORDS_PATTERN = re.compile(rf"(?<![\w.])under[\s-]?(?P<num>{'|'.join(_UNITS[1:16])})(?:e?s)(?![\w])")
_ORDINALS = (
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth fifteenth"
).split()
# "her 7th birthday", "his fourth birthday": a birthday under 16, a person's unless a thing's ("the bakery's 10th").
BIRTHDAY_PATTERN = re.compile(
    rf"(?<![\w.])(?P<ord>1st|2nd|3rd|[4-9]th|1[0-5]th|{'|'.join(_ORDINALS)})[\s-]+(?:b-?day|birthday)(?![\w])"
)
# "twins turning five", "she turns 7 today"; not "the startup turns 7" or "turn 5 pages".
TURNING_PATTERN = re.compile(
    rf"(?<![\w.])(?:turn|turns|turning|turned)\s+(?:(?P<tens>{_TENS_RE})[\s-]*)?(?P<num>{_NUM})(?![\w.])"
)
# "year 3 class", "year six leavers", "in year 8": English school years under 16.
SCHOOL_YEAR_PATTERN = re.compile(
    rf"(?<![\w.])year[\s-]?(?P<num>\d{{1,2}}|{'|'.join(_UNITS[1:11])})(?P<plural>['’]?s)?(?![\w.])"
)
# "a lad of ten", "a girl of 7": a person said to be of an age.
OF_AGE_PATTERN = re.compile(
    rf"(?<![\w.])(?P<noun>[a-z]+)\s+of\s+(?:(?P<tens>{_TENS_RE})[\s-]*)?(?P<num>{_NUM})(?![\w.])"
)
MAX_SCHOOL_YEAR = 10
AGE_GROUP_NOUNS = frozenset(
    "team teams squad league football soccer rugby hockey basketball players match game tournament cup side "
    "club camp".split()
)
# Between two tokens, these end a noun phrase: the context rules do not look past them.
_BOUNDARY = re.compile(r"[,;:.!?()\[\]{}\"“”]")
# Function words: after an age or "minor" they show the word is a noun itself ("a 5 year old on a swing",
# "a minor in a bar"), whatever a dictionary says they can also be ("in" is a noun: indium).
_FUNCTION_WORDS = frozenset(
    "on in at with and or by near from for to of is are was were be been who that which while during under "
    "over into onto behind beside besides between among around about after before against along across "
    "through without within inside outside up down out off a an the this that these those his her its their "
    "my our your some any no not as than then so but if when where has have had does did do can could will "
    "would should may might must i you he she it we they me him us them".split()
)
_DASHES = frozenset({"-", "‐", "‑", "–", "—"})
# Limits that keep one long token cheap: a run-together token of at most 60 letters and 6 words
# ("#kidsandtoysandboysandgirls"), and misspellings only up to 20 letters (the longest child word has 17).
MAX_JOINED_LENGTH = 60
MAX_JOINED_WORDS = 6
MAX_MISSPELT_LENGTH = 20
# Marks put inside a word to cut it ("chi.ldren", "tod_dler", "ki*ds"): the pieces are read joined, as after a dash.
_INNER_CUTS = frozenset({".", "_", "*", "·", "•", "~"})
_CONJUNCTIONS = frozenset({"and", "or", "with", "&", "but", "while", "plus"})
_ARTICLES = frozenset({"a", "an", "one", "the", "my", "our", "your", "his", "her", "their"})
# Young of animals: these child words, followed by an animal (or preceded by one, with no person in the text).
_YOUNG_ANIMAL_TERMS = frozenset({"baby", "newborn", "infant", "juvenile", "young"})
# "young" and German "junge": an adult, an animal or a thing after it makes it an adjective of that.
_YOUNG_WORDS = frozenset({"young", "junge", "jungen", "junger", "junges"})
_GROWN_UP = frozenset({"adult", "grown", "grownup", "older"})
_GROWN_UP_TERMS = frozenset(
    {
        "niece",
        "nephew",
        "son",
        "daughter",
        "child",
        "kid",
        "grandson",
        "granddaughter",
        "grandchild",
        "stepson",
        "stepdaughter",
        "stepchild",
    }
)
# Child words that are also surnames ("Neil Young", "Julia Child", "Jason Kidd").
_SURNAMES = frozenset({"young", "child", "kidd"})


@dataclass(frozen=True)
class ScreenResult:
    flagged: bool
    matches: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Hit:
    term: str
    first: int  # token span
    last: int
    lemma: str  # what the context rules key on ("young", "kid", "minor", ...)
    language: str = "english"


def _age_value(match: re.Match) -> float:
    num = match.group("num")
    value = float(num) if num[0].isdigit() else float(NUMBER_WORDS[num])
    if match.groupdict().get("tens"):
        value += NUMBER_WORDS[match.group("tens")]
    return value


def _is_young_age(match: re.Match) -> bool:
    unit = (match.groupdict().get("unit") or "year").rstrip("s")
    return not unit.startswith(("year", "yr")) or _age_value(match) < LEGAL_AGE


def age_mentions(text: str) -> list[str]:
    """Ages under 16 written in `text` ("5-year-old", "six year old", "aged 7"); any age in months/weeks/days.

    Whatever they describe: the screen decides separately whether the age is a person's.
    """
    lowered = lower_same_length(text)
    found = [m for m in AGE_PATTERN.finditer(lowered) if _is_young_age(m)]
    found += [m for m in AGED_PATTERN.finditer(lowered) if _age_value(m) < LEGAL_AGE]
    return [re.sub(r"\s+", " ", m.group(0).strip()) for m in found]


def _idiom_words(part: str) -> tuple[str, ...]:
    return tuple(t.word for t in tokenize(part)[1])


@lru_cache(maxsize=1)
def _idioms() -> dict[str, list[tuple[tuple[str, ...], str]]]:
    """First word -> [(idiom words, family)], the idioms read by the same normaliser as the texts."""
    index: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    families = [*lx.IDIOMS.items(), ("title", lx.TITLES)]
    for family, idioms in families:
        for idiom in idioms:
            # "*" stands for any one word: "boys * weekend" is also "the boys' golf weekend".
            words = tuple(w for part in idiom.split() for w in (("*",) if part == "*" else _idiom_words(part)))
            index.setdefault(words[0], []).append((words, family))
    return index


def _written_as_title(tokens: list[Token]) -> bool:
    """Every word capitalised but the small ones, and the text has lower-case words elsewhere."""
    return all(t.capitalised or t.word in lx.SMALL_TITLE_WORDS for t in tokens) and any(t.capitalised for t in tokens)


@lru_cache(maxsize=1)
def _phrases() -> dict[str, list[tuple[str, ...]]]:
    index: dict[str, list[tuple[str, ...]]] = {}
    for phrase in lx.CHILD_PHRASES:
        index.setdefault(phrase[0], []).append(phrase)
    return index


def _transliterations(word: str) -> list[str]:
    """Latin spellings of a Russian word, the common schemes (`lx.RUSSIAN_LATIN`), at most eight."""
    options = [lx.RUSSIAN_LATIN.get(c, (c,)) for c in word]
    if any(not o[0].isascii() for o in options):
        return []
    return ["".join(combo) for combo in itertools.islice(itertools.product(*options), 8)]


class _ForeignLexicon:
    """Child words of one language: exact forms, Snowball stems, compound parts."""

    def __init__(self, language: str, words: Iterable[str], english: frozenset[str] = frozenset()):
        from nltk.stem.snowball import SnowballStemmer

        self.language = language
        # A compound whose other part is an English word is a name or an English word ("Kinderhook").
        self.english = english
        self._stemmer = SnowballStemmer(language)
        self.forms = frozenset(fold_word(w) for w in words)
        self.stems = frozenset(self.stem(w) for w in self.forms)
        self._min_stem = min(len(s) for s in self.stems)
        self.prefixes = tuple(lx.COMPOUND_PREFIXES.get(language, ()))
        context_only = {self.stem(fold_word(w)) for w in lx.NEEDS_LANGUAGE_CONTEXT}
        self.derived_prefixes = tuple(
            sorted(
                stem
                for stem in self.stems
                if len(stem) >= lx.MIN_DERIVED_STEM
                and stem not in context_only
                and stem not in lx.NOT_DERIVED_STEMS
                and language in lx.DERIVED_FORM_LANGUAGES
            )
        )
        self.suffixes = tuple(lx.COMPOUND_SUFFIXES.get(language, ()))
        # Russian written in Latin letters ("deti", "rebenok", "malchiki"): the stems transliterated.
        self.latin_stems = frozenset(
            latin
            for stem in self.stems
            for latin in _transliterations(stem)
            if language == "russian" and len(latin) >= lx.MIN_LATIN_STEM
        )
        self.latin_forms = frozenset(
            latin for form in self.forms for latin in _transliterations(form) if language == "russian"
        )

    @lru_cache(maxsize=65536)  # noqa: B019 - one instance per language, kept for the process
    def stem(self, word: str) -> str:
        return self._stemmer.stem(word)

    def matches(self, word: str) -> bool:
        if word in self.forms:
            return True
        if word in lx.FOREIGN_NOT_CHILD:
            return False
        if self.latin_stems and word.isascii():
            return word in self.latin_forms or any(
                word[:k] in self.latin_stems
                for k in range(max(lx.MIN_LATIN_STEM, len(word) - lx.MAX_ENDING), len(word) + 1)
            )
        # Diminutives and other derived forms Snowball keeps whole: "garotinho", "criancinhas", "bambinello".
        if self.derived_prefixes and word.startswith(self.derived_prefixes):
            return True
        # Snowball stems are prefixes of the word, so most words are ruled out without stemming.
        if not any(word[:k] in self.stems for k in range(self._min_stem, len(word) + 1)):
            return self._compound(word)
        stem = self.stem(word)
        # An ending is a few letters: "Mädchens" is "Mädchen", "Madchester" is not.
        return (stem in self.stems and len(word) - len(stem) <= lx.MAX_ENDING) or self._compound(word)

    def diminutive(self, word: str) -> bool:
        """A diminutive of a child word: "hijita", "bebezinho", "figlioletto", "Töchterchen", "сынишка"."""
        suffixes, endings = lx.DIMINUTIVES.get(self.language, ((), ()))
        for suffix in suffixes:
            if not word.endswith(suffix) or len(word) - len(suffix) < lx.MIN_DIMINUTIVE_BASE:
                continue
            base = word[: -len(suffix)]
            bases = [base]
            if base.endswith(("qu", "gu")):  # Spanish spelling: "chiquita" from "chica"
                bases.append(base[:-2] + ("c" if base[-2] == "q" else "g"))
            if len(base) > 3 and base[-1] == base[-2]:  # French: "garçonnet" from "garçon"
                bases.append(base[:-1])
            for b in bases:
                for ending in endings:
                    candidate = b + ending
                    if candidate in self.forms or (len(candidate) > 3 and self.stem(candidate) in self.stems):
                        return True
        return False

    def _compound(self, word: str) -> bool:
        rest = lx.COMPOUND_MIN_REST.get(self.language, 3)
        return any(word.startswith(p) and len(word) >= len(p) + rest for p in self.prefixes) or any(
            word.endswith(s) and len(word) >= len(s) + rest for s in self.suffixes
        )

    def english_compound(self, word: str) -> bool:
        """A compound whose other part is an English word ("Kinderhook", "Kinderzimmer"): German only beside
        other German words."""

        def english(part: str) -> bool:  # "Kindergartenkinder" is German all the same; "Mädchens" is an ending
            return len(part) >= 3 and part in self.english and part not in lx.ENGLISH_FORMS

        return any(word.startswith(p) and english(word[len(p) :]) for p in self.prefixes) or any(
            word.endswith(s) and english(word[: -len(s)]) for s in self.suffixes
        )


# Letters written as they sound, and how the lexicon spells them: "nefew", "skool", "kidz", "neice".
_SOUND_SPELLINGS = (("f", "ph"), ("sk", "sch"), ("z", "s"), ("ei", "ie"), ("u", "oo"))


def _sound_spellings(word: str) -> list[str]:
    return [word.replace(a, b) for a, b in _SOUND_SPELLINGS if a in word]


def _squeeze_all(word: str) -> str:
    return re.sub(r"(.)\1+", r"\1", word)


def _squeeze(word: str) -> str:
    """Letters repeated three times or more, and a doubled last letter, written once: "boyyy", "kidd".

    A doubled letter inside a word stays ("soon" is not "son", "toot" is not "tot").
    """
    return re.sub(r"(.)\1+$", r"\1", re.sub(r"(.)\1{2,}", r"\1", word))


_ADULT_NUM = rf"(?:1[6-9]|[2-9]\d|1[01]\d|{_TENS_RE})"
# An adult's age said outright: "turning 50", "at 40", "a 30-year-old", "40 and fabulous", "his 50th".
_ADULT_AGE = re.compile(
    rf"(?:(?<![\w.])(?:turn(?:s|ed|ing)?|at|aged?)\s+{_ADULT_NUM}(?![\w.])"
    rf"|(?<![\w.]){_ADULT_NUM}(?:st|nd|rd|th)?[\s-]*(?:years?|yrs?|yo|y/o|birthday|today\b|and\b|,|$))"
)


def _adult_age(folded: str) -> bool:
    """The text gives an age of 16 or more: "turning 50", "a 30-year-old drummer", "40 and fabulous"."""
    return bool(_ADULT_AGE.search(lower_same_length(folded)))


# An adult's age just before a child word: "my 21 year old son", "a 20-year-old girl".
_ADULT_AGE_BEFORE = re.compile(
    rf"(?<![\w.]){_ADULT_NUM}[\s-]*(?:years?|yrs?)[\s-]*old[\s-]*(?:[a-z]+\s+)?$|(?<![\w.]){_ADULT_NUM}[\s-]*y/?o\s+$"
)
# An age in another language: "de 30 años", "di 25 anni", "10 лет", "8 Jahre alt", "7 ans".
FOREIGN_AGE_PATTERN = re.compile(
    r"(?<![\w.])(?P<num>\d{1,3})[\s-]*(?:anos|años|anni|ans|jahre|jahren|jahrige|лет|года|год)(?![\w])"
)


def _foreign_ages(text: _Text) -> list[int]:
    return [int(m.group("num")) for m in FOREIGN_AGE_PATTERN.finditer(lower_same_length(text.folded))]


def _foreign_adult_age(text: _Text, hit: _Hit) -> bool:
    """A child word of another language in a text that gives only adult ages ("ragazza di 25 anni")."""
    ages = _foreign_ages(text)
    return hit.language != "english" and bool(ages) and min(ages) >= LEGAL_AGE


def _child_scene(text: _Text, lo: int, hi: int, parents: bool = True) -> bool:
    """Something outside tokens lo..hi makes the people children: a childhood place, toy, pastime or a parent
    (`lx.CHILD_SCENE_WORDS`), or a size or count word just before them ("two small boys in blue")."""
    scene = lx.CHILD_SCENE_WORDS if parents else lx.CHILD_PLACES_AND_THINGS
    if any(w in scene for k, w in enumerate(text.words) if k < lo or k > hi):
        return True
    before = [w for w in text.words[max(0, lo - 2) : lo] if w not in ("the", "of")]
    return any(w in lx.CHILD_SIZE_WORDS for w in before)


def _capitals_inform(tokens: list[Token]) -> bool:
    """Capitals mean something only in a text that also has lower-case words (not "SMILING CHILD")."""
    return any(not t.capitalised and t.text.isalpha() for t in tokens)


def _noun_kind(word: str) -> str | None:
    """ "adult", "animal", "thing" or "person" for a noun of the context tables (singular or plural), else None."""
    for form in (
        word,
        word[:-1] if word.endswith("s") else "",
        word[:-2] if word.endswith("es") else "",
        word[:-3] + "y" if word.endswith("ies") else "",
    ):
        if not form:
            continue
        if form in lx.ADULT_NOUNS:
            return "adult"
        if form in lx.ANIMAL_NOUNS:
            return "animal"
        if form in lx.THING_NOUNS:
            return "thing"
        if form in lx.PERSON_NOUNS or form in lx.PERSON_CONTEXT:
            return "person"
    return None


def _agent_noun(word: str) -> bool:
    """Shaped like a noun for someone who does something: "gamer", "violinist", "lifeguard", "actress"."""
    return len(word) > 4 and word.endswith(lx.AGENT_SUFFIXES)


@dataclass
class _Text:
    """One text as the rules see it: the folded string, its tokens, their plain words, and the hits."""

    folded: str
    tokens: list[Token]
    words: list[str]
    hits: list[_Hit] = field(default_factory=list)
    idiom_spans: list[tuple[int, int, str]] = field(default_factory=list)

    def boundary(self, i: int, j: int, commas: bool = True) -> bool:
        """Punctuation between tokens i < j that ends a noun phrase (a comma only when `commas`)."""
        between = self.folded[self.tokens[i].end : self.tokens[j].start]
        return bool(_BOUNDARY.search(between if commas else between.replace(",", "")))

    def following(self, last: int, window: int = 3) -> list[str]:
        """Up to `window` words after token `last`, stopping at punctuation (not a comma: "a young, fit man")
        or a conjunction."""
        out = []
        for j in range(last + 1, min(len(self.tokens), last + 1 + window)):
            if self.boundary(j - 1, j, commas=False) or self.words[j] in _CONJUNCTIONS:
                break
            out.append(self.words[j])
        return out

    def token_after(self, offset: int) -> int:
        return next((j for j, t in enumerate(self.tokens) if t.start >= offset), len(self.tokens))


class ChildContentFilter:
    """Flags texts that are about children under 16 (see the module docstring for how)."""

    def __init__(self) -> None:
        self.english_forms = dict(lx.ENGLISH_FORMS)
        self._lock = threading.Lock()
        self._ready = False
        # Context rules, each a reason a child word is used in an adult sense; any one excuses it.
        self._rules = (
            self._in_idiom,
            self._among_adults,
            self._named_with_capitals,
            self._goods_for_children,
            self._near_context_word,
            self._lacks_its_language,
            self._false_friend,
            self._young_of_something,
            self._minor_as_adjective,
            self._grown_up,
            self._written_as_name,
        )

    def _load(self) -> None:
        # Everything heavy (nltk, the vocabularies, the indexes) is built on first use, once.
        with self._lock:
            if self._ready:
                return
            self.known = english_words()
            self.nouns = english_nouns()
            self.verbs = english_verbs()
            self.adjectives = english_adjectives()
            self.fuzzy = MisspellingIndex(lx.FUZZY_TARGETS)
            # Every doubled letter written once ("grandkiids" -> "grandkids"), for tokens that are no
            # English word; forms that then read as a word ("teen" -> "ten") are left out.
            self.squeezed_forms = {
                _squeeze_all(f): lemma
                for f, lemma in self.english_forms.items()
                if len(f) >= 4 and _squeeze_all(f) not in self.known
            }
            self.foreign = [_ForeignLexicon(lang, words, self.known) for lang, words in lx.FOREIGN_WORDS.items()]
            self.foreign_forms = {fold_word(w): lang for lang, ws in lx.FOREIGN_WORDS.items() for w in ws}
            _idioms()
            _phrases()
            self._ready = True

    # -- one word ------------------------------------------------------------------------------------------

    def _exact(self, readings: list[str]) -> tuple[str, str, str] | None:
        """(term, lemma, language) of a reading that is a child word as written, or with a repeated letter."""
        for r in readings:
            squeezed = _squeeze(r)  # "kidd", "boyyy", "chiiild"
            if r in self.english_forms or squeezed in self.english_forms:
                lemma = self.english_forms.get(r) or self.english_forms[squeezed]
                return lemma, lemma, "english"
            if r in lx.NEEDS_LANGUAGE_CONTEXT:
                return r, r, lx.NEEDS_LANGUAGE_CONTEXT[r]
            if r in self.foreign_forms:
                return r, r, self.foreign_forms[r]
        return None

    def _inexact(self, reading: str, fuzzy: bool) -> tuple[str, str, str] | None:
        """An inflected or compound foreign child word, or (when `fuzzy`) a diminutive or a misspelled English one."""
        weak: tuple[str, str, str] | None = None
        if not reading.isascii() or reading.isalpha():
            for lexicon in self.foreign:
                if lexicon.matches(reading) or (fuzzy and lexicon.diminutive(reading)):
                    if not (lexicon.language == "german" and lexicon.english_compound(reading)):
                        return reading, reading, lexicon.language
                    # "?": a German compound with an English part counts only beside German words, unless
                    # it is a misspelt English child word ("kindergarden").
                    weak = (reading, reading, lexicon.language + "?")
        # A token far longer than any child word is no misspelling of one (and its deletions are costly).
        too_long = len(reading) > MAX_MISSPELT_LENGTH
        if not (fuzzy and reading.isalpha()) or too_long or reading in lx.NOT_MISSPELLINGS:
            return weak
        lemma = self.squeezed_forms.get(_squeeze_all(reading))
        # A final "y" sound written "ee", "ie" or "ey" ("babee", "babie"), read as "y" too; a plural in "ys" as
        # "ies" ("babbys" is then one letter from "babies").
        sounded = re.sub(r"(?:ee|ie|ey)(s?)$", r"y\1", reading)
        if sounded.endswith("ys") and sounded[-3:-2] not in "aeiou":
            sounded = sounded[:-2] + "ies"
        lemma = lemma or (self.english_forms.get(sounded) if sounded != reading else None)
        if not lemma and sounded != reading:
            lemma = self.english_forms.get(self.fuzzy.nearest(sounded) or "")
        near = lemma or self.english_forms.get(self.fuzzy.nearest(reading) or "")
        if not near and len(reading) in (3, 4):  # two letters swapped in a short word: "kdi", "byo", "kdis"
            swaps = {reading[:k] + reading[k + 1] + reading[k] + reading[k + 2 :] for k in range(len(reading) - 1)}
            near = next((self.english_forms[w] for w in sorted(swaps) if w in lx.SHORT_SWAP_TARGETS), None)
        if not near:  # spelt by ear: "nefew", "skoolgirl", "kidz" -> "nephew", "schoolgirl", "kids"
            for sounded in _sound_spellings(reading):
                near = self.english_forms.get(sounded) or self.english_forms.get(self.fuzzy.nearest(sounded) or "")
                if near:
                    break
        return (near, near, "english") if near else weak

    def _match_word(self, readings: Iterable[str], fuzzy: bool = True) -> tuple[str, str, str] | None:
        """(term, lemma, language) for the first reading that is a child word, else None."""
        readings = [r for r in readings if r]
        found = self._exact(readings)
        # A reading that is an English word is that word, not a disguise or a misspelling of another.
        if found or any(r in self.known and len(r) > 1 for r in readings):
            return found
        return next(filter(None, (self._inexact(r, fuzzy) for r in readings)), None)

    # -- finding child words ---------------------------------------------------------------------------------

    def _word_hits(self, text: _Text) -> None:
        for i, token in enumerate(text.tokens):
            found = self._match_word(token.readings) or self._run_together(text, i)
            if found:
                text.hits.append(_Hit(found[0], i, i, found[1], found[2]))

    def _run_together(self, text: _Text, i: int) -> tuple[str, str, str] | None:
        """A child word written together with other words: "toddlerlife", "littlegirl", "#kidsofinstagram".

        The token must be no English word and split wholly into English words (of 3 letters or more, or
        short function words), one of them a common child word (`lx.JOINABLE`). After "#" the rest of a
        hashtag may be anything ("#kidsofinsta"). A capitalised token is left alone: a name ("Kidwelly").
        """
        token = text.tokens[i]
        word = token.word
        hashtag = text.folded[token.start - 1 : token.start] == "#"
        too_long = len(word) > MAX_JOINED_LENGTH
        if len(word) < 6 or too_long or not word.isalpha() or word in self.known or word in lx.NOT_MISSPELLINGS:
            return None
        if token.capitalised and not hashtag:
            return None
        if hashtag:
            for k in range(len(word) - 1, 2, -1):
                if word[:k] in lx.JOINABLE:
                    lemma = self.english_forms[word[:k]]
                    return lemma, lemma, "english"
        child = self._segment(word)
        return (child, child, "english") if child else None

    @staticmethod
    def _joins_adult(head: str, rest: str) -> bool:
        """Two pieces that make an adult word or idiom: "ladyboy", "cowgirls", "kidman", "boyband"."""
        if _noun_kind(head) in ("adult", "animal") or _noun_kind(rest) in ("adult", "animal"):
            return True
        pairs = {(head, rest), (head, rest.removesuffix("s"))}
        return any(words in pairs for words, _ in _idioms().get(head, ()))

    @lru_cache(maxsize=8192)  # noqa: B019 - one filter per process
    def _segment(self, word: str, depth: int = 0) -> str | None:
        """The child lemma of `word` split into English words with at least one child word, else None."""
        for k in range(len(word) - 1, 1, -1) if depth <= MAX_JOINED_WORDS else ():
            head, rest = word[:k], word[k:]
            if self._joins_adult(head, rest):
                return None
            is_child = head in lx.JOINABLE
            head_word = head in self.known and (len(head) >= 3 or head in lx.JOIN_SHORT_WORDS)
            rest_word = rest in self.known and (len(rest) >= 3 or rest in lx.JOIN_SHORT_WORDS)
            found: str | None = None
            if is_child and (rest_word or rest in lx.JOINABLE or (len(rest) >= 5 and self._segments(rest, depth + 1))):
                found = self.english_forms[head]
            elif (is_child or self._describes(head)) and rest in lx.JOINABLE:
                found = self.english_forms[rest]
            elif (is_child or head_word) and len(rest) >= 5:
                found = self._segment(rest, depth + 1)
            if found:
                return found
        return None

    def _describes(self, head: str) -> bool:
        """A word that can stand before a child word joined to it: "littlegirl", "mybaby", "cuteboys"; a noun
        makes a word of its own ("showgirls", "busboy")."""
        return head in lx.JOIN_SHORT_WORDS or (head in self.adjectives and head not in self.verbs)

    @lru_cache(maxsize=8192)  # noqa: B019 - one filter per process
    def _segments(self, word: str, depth: int) -> bool:
        """`word` splits wholly into English words of 3 letters or more (or short function words)."""
        if (len(word) >= 3 or word in lx.JOIN_SHORT_WORDS) and word in self.known:
            return True
        if depth > MAX_JOINED_WORDS:
            return False
        return any(
            word[:k] in self.known
            and (k >= 3 or word[:k] in lx.JOIN_SHORT_WORDS)
            and self._segments(word[k:], depth + 1)
            for k in range(len(word) - 2, 1, -1)
        )

    def _joined_hits(self, text: _Text) -> None:
        """Words cut by a hyphen or a space: "pre-schooler", "grand-daughter", "chil dren", "ba by"."""
        for i in range(len(text.tokens) - 1):
            a, b = text.tokens[i], text.tokens[i + 1]
            separator = text.folded[a.end : b.start]
            hyphen = separator == "" or separator.strip() in _DASHES or separator in _INNER_CUTS
            short = min(len(a.word), len(b.word)) <= 2
            if not hyphen and (separator.strip() or (a.word in self.known and b.word in self.known and not short)):
                continue
            joined = [x + y for x in a.readings[:2] for y in b.readings[:2]]
            if hyphen:
                found = self._match_word(joined)
            else:  # two words apart: only an exact English child word ("ba by"), not "men in" -> "menin"
                lemma = next((self.english_forms[j] for j in joined if j in self.english_forms), None)
                found = (lemma, lemma, "english") if lemma else None
            if found:
                text.hits.append(_Hit(found[0], i, i + 1, found[1], found[2]))

    def _three_piece_hits(self, text: _Text) -> None:
        """A word cut in three short pieces: "ch il dren"; only an exact English child word counts."""
        tokens = text.tokens
        for i in range(len(tokens) - 2):
            pieces = tokens[i : i + 3]
            separators = [text.folded[a.end : b.start] for a, b in itertools.pairwise(pieces)]
            if any(sep.strip() not in ("", *_DASHES) and sep not in _INNER_CUTS for sep in separators):
                continue
            if any(len(p.word) > 4 or not p.word.isalpha() for p in pieces):
                continue
            joined = "".join(p.word for p in pieces)
            if joined in self.english_forms:
                lemma = self.english_forms[joined]
                text.hits.append(_Hit(lemma, i, i + 2, lemma))

    def _spaced_hits(self, text: _Text) -> None:
        for first, _last, letters in spaced_runs(text.folded, text.tokens):
            # Any stretch of the run may be an English child word: "a c h i l d" holds "child". A foreign one
            # (stems, compounds: costlier) is looked for in the stretches that start or end the run.
            for i in range(len(letters)):
                for j in range(min(len(letters), i + MAX_MISSPELT_LENGTH), i + 2, -1):
                    piece = letters[i:j]
                    found = self._exact([piece])
                    if not found and (i == 0 or j == len(letters)):
                        found = self._match_word([piece], fuzzy=False)
                    if found:
                        text.hits.append(_Hit(found[0], first + i, first + j - 1, found[1], found[2]))
                        break

    @staticmethod
    def _phrase_hits(text: _Text) -> None:
        phrases, words = _phrases(), text.words
        for i, token in enumerate(text.tokens):
            for phrase in (p for reading in token.readings for p in phrases.get(reading, ())):
                span = text.tokens[i : i + len(phrase)]
                if len(span) == len(phrase) and all(p in t.readings for p, t in zip(phrase, span, strict=True)):
                    term = lx.CHILD_PHRASES[phrase]
                    text.hits.append(_Hit(term, i, i + len(phrase) - 1, term))
            nxt = words[i + 1] if i + 1 < len(words) else ""
            # "my little cousin", "kid brother": a sibling or cousin said to be little.
            if words[i] in lx.LITTLE_WORDS and nxt in lx.KIN_NOUNS:
                text.hits.append(_Hit(f"{words[i]} {nxt}", i, i + 1, "little sibling"))
            # "fifth grader", "5th grade", "grade 3".
            after_grade = words[i + 2] if i + 2 < len(words) else ""
            school_grade = nxt != "grade" or _noun_kind(after_grade) not in ("thing", "animal")  # "first grade steak"
            if words[i] in lx.GRADE_ORDINALS and nxt in ("grader", "graders", "grade") and school_grade:
                text.hits.append(_Hit(f"{words[i]} {nxt}", i, i + 1, "grader"))
            # "grade 3 class", "in grade 5"; not "grade 5 rapids" or a climbing grade.
            after = words[i + 2] if i + 2 < len(words) else ""
            school = after in lx.SCHOOL_WORDS or (i > 0 and words[i - 1] == "in")
            if words[i] == "grade" and nxt in lx.GRADE_NUMBERS and school:
                text.hits.append(_Hit(f"grade {nxt}", i, i + 1, "grader"))

    # -- context rules: each says whether a hit is a child word used in an adult sense --------------------------

    @staticmethod
    def _idiom_spans(tokens: list[Token]) -> list[tuple[int, int, str]]:
        """(first, last, family) of the adult idioms in the text; a word also matches its possessive
        ("Julia Child's"), and "*" any one word."""

        def matches(word: str, token: Token) -> bool:
            possessive = "'" in token.text or "’" in token.text
            return word == "*" or word in token.readings or (possessive and word + "s" in token.readings)

        spans = []
        idioms = _idioms()
        for i, token in enumerate(tokens):
            starts = set(token.readings) | {r[:-1] for r in token.readings if r.endswith("s")}
            for words, family in (entry for start in starts for entry in idioms.get(start, ())):
                span = tokens[i : i + len(words)]
                if len(span) < len(words) or not all(matches(w, t) for w, t in zip(words, span, strict=True)):
                    continue
                if family != "title" or (_written_as_title(span) and _capitals_inform(tokens)):
                    spans.append((i, i + len(words) - 1, family))
        return spans

    def _in_idiom(self, text: _Text, hit: _Hit) -> bool:
        """Inside an adult idiom. An idiom about people ("boys in blue", "and sons", "party girl", a band's name)
        excuses only in a text that says nothing else of children; "birthday boy" only beside an adult age."""
        for lo, hi, family in text.idiom_spans:
            if not (lo <= hit.first and hit.last <= hi):
                continue
            if family == "needs adult age":
                # The adult age may be a parent's ("the birthday boy, my 70-year-old dad"): parents do not count.
                if _adult_age(text.folded) and not _child_scene(text, lo, hi, parents=False):
                    return True
            elif family not in lx.CONTEXT_SENSITIVE_IDIOMS or not _child_scene(text, lo, hi):
                return True
        return False

    @staticmethod
    def _among_adults(text: _Text, hit: _Hit) -> bool:
        """ "the girls at the office party", "a bachelorette with her girls", "the new kid at the law firm": grown-ups
        called boys, girls or the new kid, in an adult setting, with nothing else about children."""
        new_kid = text.words[hit.first] == "kid" and hit.first > 0 and text.words[hit.first - 1] == "new"
        if (text.words[hit.first] not in lx.FRIENDS_WORDS and not new_kid) or hit.first != hit.last:
            return False
        # A parent here is one of the adults ("a working mum's night out with the girls at a pub").
        adult_setting = any(w in lx.ADULT_SETTING_WORDS for w in text.words)
        return adult_setting and not _child_scene(text, hit.first, hit.last, parents=False)

    def _named_with_capitals(self, text: _Text, hit: _Hit) -> bool:
        """A child word inside a capitalised name: "Boy Pablo playing live", "Youth Lagoon concert", "Children of
        Bodom poster", "Sons of Liberty reenactors". The name must not open the text unless it holds a word
        that is no English word, has three words, or the text speaks of a performer, a work or a place."""
        tokens = text.tokens
        # German writes every noun with a capital, so capitals say nothing of a German word.
        if not tokens[hit.first].capitalised or not _capitals_inform(tokens) or hit.language.startswith("german"):
            return False
        lo, hi = hit.first, hit.last

        def joins(j: int, k: int) -> bool:
            return not text.boundary(min(j, k), max(j, k))

        while (
            lo > 0
            and joins(lo - 1, lo)
            and (
                tokens[lo - 1].capitalised
                or (tokens[lo - 1].word in lx.SMALL_TITLE_WORDS and lo > 1 and tokens[lo - 2].capitalised)
            )
        ):
            lo -= 1
        while (
            hi + 1 < len(tokens)
            and joins(hi, hi + 1)
            and (
                tokens[hi + 1].capitalised
                or (tokens[hi + 1].word in lx.SMALL_TITLE_WORDS and hi + 2 < len(tokens) and tokens[hi + 2].capitalised)
            )
        ):
            hi += 1
        while tokens[lo].word in lx.SMALL_TITLE_WORDS and lo < hit.first:
            lo += 1
        words = text.words[lo : hi + 1]
        capitals = [t for t in tokens[lo : hi + 1] if t.capitalised]
        # Not when the child phrase runs past the name ("Baby Steps Nursery class"), nor a children's organisation.
        if len(capitals) < 2 or hi < hit.last or any(w in lx.CHILDREN_ORGANISATION_WORDS for w in words):
            return False
        if all(w in self.english_forms or w in lx.SMALL_TITLE_WORDS for w in words):
            return False
        if _child_scene(text, lo, hi):
            return False
        others = [w for w in words if w not in self.english_forms and w not in lx.SMALL_TITLE_WORDS]
        strange = any(w.isalpha() and w not in self.known for w in others)
        # "Cute Baby Smiling", "Two Girls Playing": words that describe a child are no name.
        if any(
            w in self.known and (w in self.adjectives or w.endswith(("ing", "ed")) or w in NUMBER_WORDS) for w in others
        ):
            return False
        # Three capitalised words, or two joined by a small one ("Sons of Liberty"), are a name as it stands.
        titled = len(capitals) >= 3 or any(w in lx.SMALL_TITLE_WORDS for w in words[1:-1])
        return strange or titled or any(w in lx.NAME_CONTEXT_WORDS for w in text.words)

    @staticmethod
    def _goods_word(word: str) -> bool:
        """A noun for a thing one buys or a place built for children (`GOODS_NOUNS`, "-wear", "-ware"). A list, not
        every noun: "toddler tantrum", "kids yoga", "baby giggles" are children doing something."""
        singular = {word, word.removesuffix("s"), word.removesuffix("es")}  # "lunchboxes", "kites"
        return bool(singular & lx.GOODS_NOUNS) or word.endswith(lx.GOODS_SUFFIXES)

    def _goods_head(self, text: _Text, last: int) -> str:
        """The goods noun a child word before token `last` + 1 qualifies, else "". It reads nouns and modifiers up
        to the head noun ("kids' craft supplies on a table"); a noun after a goods noun makes another head
        ("kids' bike ride"); a person noun or an activity after the head means children ("girl scout troop",
        "kids kite flying")."""
        head = ""
        for j in range(last + 1, min(len(text.tokens), last + 4)):
            word = text.words[j]
            if text.boundary(j - 1, j) or word in _FUNCTION_WORDS or word in self.english_forms:
                break
            if _noun_kind(word) in ("person", "adult"):
                return ""
            if self._goods_word(word):
                head = word
                nxt = text.words[j + 1] if j + 1 < len(text.words) and not text.boundary(j, j + 1) else ""
                activity = nxt.endswith("ing") and nxt not in lx.GOODS_VERBS and nxt not in lx.GOODS_ING_NOUNS
                if activity and not (nxt in self.nouns and nxt not in self.verbs):
                    return ""
            elif (
                word in self.nouns or word in self.adjectives or word not in self.known or word.endswith("sized")
            ) and not (word.endswith(("ing", "ed")) and not word.endswith("sized")):
                head = ""
            else:
                break
        return head

    def _goods_for_children(self, text: _Text, hit: _Hit) -> bool:
        """A thing or a place named after children, with no child in the text: "kids' bike for sale", "girls'
        shoes on a shelf", "a children's hospital at night", "a play kitchen for kids"."""
        if hit.language != "english" or hit.lemma not in lx.GOODS_OWNERS:
            return False
        token = text.tokens[hit.last]
        possessive = token.text.endswith(("'s", "’s", "'", "’"))
        previous = text.words[hit.first - 1] if hit.first else ""
        singular_possessive = token.text.endswith(("'s", "’s")) and not token.word.endswith("rens")
        if possessive and previous in _ARTICLES and (singular_possessive or previous not in ("a", "an", "one")):
            return False  # "the child's toy", "a toddler's cot", "the boys' bikes": particular children
        plural = token.word.endswith("s") and not possessive
        head = self._goods_head(text, hit.last)
        if head and hit.first == hit.last:
            # "kids swing on a rope", "two girls dress up": after a bare plural the word may be its verb, unless
            # it is a plural noun itself ("kids shoes"); a count or size word makes them children ("two girls").
            plural_head = any(head.endswith(e) and head[: -len(e)] in self.nouns for e in ("s", "es"))
            counted = previous in lx.CHILD_SIZE_WORDS or previous in NUMBER_WORDS
            # "a child watches", "a boy plays": after a bare singular a verb in -s is what the child does.
            # ("a smiling child slides"): an article up to two words before a singular child word makes it the
            # subject of the verb after it; without one it names a kind of goods ("a box of toddler puzzles").
            subject = any(w in _ARTICLES for w in text.words[max(0, hit.first - 2) : hit.first])
            verb_after_singular = (
                subject and not plural and not possessive and head in self.verbs and head.endswith("s")
            )
            return not counted and not verb_after_singular and not (plural and head in self.verbs and not plural_head)
        # Before it: "a play kitchen for kids", "school uniforms for boys".
        if hit.first >= 2:
            before = [w for w in text.words[max(0, hit.first - 3) : hit.first] if w not in _ARTICLES]
            after = text.words[hit.last + 1] if hit.last + 1 < len(text.words) else ""
            return (
                len(before) >= 2
                and before[-1] == "for"
                and self._goods_word(before[-2])
                and (not after or after in _FUNCTION_WORDS or after in lx.GOODS_VERBS)
            )
        return False

    @staticmethod
    def _near_context_word(text: _Text, hit: _Hit) -> bool:
        """A goat's kid, an eye's pupil: a context word right after the hit, or shortly before it with no
        person between ("goat kids", "a doe with her twin kids", "nanny goat nursing her kid")."""
        context = lx.NEAR_WORDS.get(hit.lemma)
        if not context:
            return False
        words = text.words
        if hit.last + 1 < len(words) and words[hit.last + 1] in context:
            return True
        for j in range(hit.first - 1, max(-1, hit.first - 1 - lx.NEAR_WINDOW), -1):
            if words[j] in context:
                return True
            if words[j] not in lx.NEAR_FILLER and (
                _noun_kind(words[j]) in ("adult", "person") or words[j] in lx.ENGLISH_FORMS
            ):
                return False
        return False

    @staticmethod
    def _lacks_its_language(text: _Text, hit: _Hit) -> bool:
        """German "Kind", French "ado": everyday English words too, so they count only beside other words of
        their language ("ein Kind")."""
        weak = hit.language.endswith("?")
        if hit.language == "english" or not (weak or text.words[hit.first] in lx.NEEDS_LANGUAGE_CONTEXT):
            return False
        language = hit.language.rstrip("?")
        markers = lx.LANGUAGE_MARKERS.get(language, frozenset())
        others = any(h is not hit and h.language == language for h in text.hits)
        return not (others or any(w in markers for w in text.words))

    @staticmethod
    def _false_friend(text: _Text, hit: _Hit) -> bool:
        """French "son" (his/her) in "une femme et son chien": a text of that language with no English."""
        languages = lx.FALSE_FRIENDS.get(text.words[hit.first], ())
        if not languages or any(w in lx.ENGLISH_MARKERS for w in text.words):
            return False
        return any(w in lx.LANGUAGE_MARKERS[lang] for lang in languages for w in text.words)

    @staticmethod
    def _young_of_something(text: _Text, hit: _Hit) -> bool:
        """ "young man", "young wine", "junge Frau", "juvenile hawk", "baby sea turtles", "an elephant and her baby"."""
        following = text.following(hit.last)
        kinds = [_noun_kind(w) for w in following]
        if hit.lemma in _YOUNG_WORDS and _ADULT_AGE.match(
            lower_same_length(text.folded[text.tokens[hit.last].end :]).lstrip(" -")
        ):
            return True  # "a young 80-year-old"
        if hit.lemma in _YOUNG_WORDS:
            for word, kind in zip(following, kinds, strict=True):
                if kind in ("adult", "animal", "thing"):
                    return True
                if kind == "person" or word in lx.ENGLISH_FORMS:  # "young football player", "young girl"
                    break
        juvenile_animal = hit.lemma == "juvenile" and any(k in ("animal", "thing") for k in kinds)
        if juvenile_animal or (hit.lemma == "youth" and kinds[:1] == ["adult"]):  # "youth pastor", "youth worker"
            return True
        if hit.lemma not in _YOUNG_ANIMAL_TERMS:
            return False
        if "animal" in kinds[:2]:
            return True
        before = [_noun_kind(w) for w in text.words[max(0, hit.first - 4) : hit.first]]
        # "a mother orangutan": an adult noun before an animal is the animal's.
        words = text.words
        people = any(
            _noun_kind(w) in ("adult", "person") and not (k + 1 < len(words) and _noun_kind(words[k + 1]) == "animal")
            for k, w in enumerate(words)
        ) or any(h is not hit and h.lemma not in _YOUNG_ANIMAL_TERMS for h in text.hits)
        return "animal" in before and not people

    def _minor_as_adjective(self, text: _Text, hit: _Hit) -> bool:
        """ "minor repairs", "a minor chord", "E minor"; not "a minor", "minors", "a minor drinking"."""
        if hit.lemma != "minor" or text.words[hit.first] != "minor":
            return False
        previous = text.words[hit.first - 1] if hit.first else ""
        following = text.following(hit.last, window=1)
        noun_after = (
            bool(following)
            and following[0] in self.nouns
            and following[0] not in _FUNCTION_WORDS
            and not following[0].endswith("ing")
        )
        return noun_after or (previous in lx.MINOR_NOTES and previous != "a")

    @staticmethod
    def _grown_up(text: _Text, hit: _Hit) -> bool:
        """ "adult son", "grown children", "grown-up kids", "my 21 year old son", "a 20-year-old girl"; "una chica de
        30 años"."""
        if hit.first == 0:
            return _foreign_adult_age(text, hit)
        before = lower_same_length(text.folded[: text.tokens[hit.first].start])
        if _ADULT_AGE_BEFORE.search(before):
            return True
        if hit.lemma not in _GROWN_UP_TERMS:
            return _foreign_adult_age(text, hit)
        return text.words[hit.first - 1] in _GROWN_UP or text.words[max(0, hit.first - 2) : hit.first] == [
            "grown",
            "up",
        ]

    def _written_as_name(self, text: _Text, hit: _Hit) -> bool:
        """`Neil Young`, `Julia Child`: both capitalised, after a word that is no article or adjective, in a text
        that also has lower-case words (so capitals mean something)."""
        at, tokens = hit.first, text.tokens
        if text.words[at] not in _SURNAMES or at == 0 or not (tokens[at].capitalised and tokens[at - 1].capitalised):
            return False
        given = tokens[at - 1].word
        return (
            _capitals_inform(tokens)
            and given.isalpha()
            and given not in _ARTICLES
            and given not in self.english_forms
            and given not in self.adjectives
        )

    # -- ages ------------------------------------------------------------------------------------------------

    def _word_after_age(self, word: str, is_hit: bool, after_article: bool) -> bool | None:
        """True: the age is a person's; False: a thing's or an animal's; None: look at the next word."""
        kind = _noun_kind(word)
        if is_hit or kind in ("person", "adult"):
            return True
        if kind in ("animal", "thing"):
            return False
        if word in _FUNCTION_WORDS or word.endswith("ing") or not word.isalpha() or word not in self.known:
            return True  # "on a swing", "playing", a name
        if after_article and word in self.verbs and word.endswith("s") and not word.endswith("ss"):
            return True  # "a 6-year-old smiles"
        if word in self.nouns and word not in self.adjectives:
            return _agent_noun(word)  # "a 12-year-old gamer"; else a thing: "10-year-old car"
        return None

    def _age_is_a_person(self, text: _Text, match: re.Match) -> bool:
        """An age under 16 flags when it describes a person: a person noun, a name, or nothing after it.

        "N years old" with the unit in the plural says the age of what came before ("the whisky is 12 years
        old"): then a thing or an animal before it clears it unless a person follows.
        """
        plural = (match.groupdict().get("old") or "").endswith("s")
        if plural or text.folded[match.end() : match.end() + 2] in ("'s", "’s"):  # "5-year-olds", "a 5 year old's"
            return True
        after = text.token_after(match.end())
        child_at = {h.first for h in text.hits}
        after_article = bool(re.search(r"(?:^|\s)(?:a|an|one)\s*$", text.folded[: match.start()].lower()))
        predicative = (match.groupdict().get("unit") or "").endswith("s") and not after_article
        of_a_thing = predicative and not self._subject_is_a_person(text, match.start())
        for j in range(after, min(len(text.tokens), after + 3)):
            start = match.end() if j == after else text.tokens[j - 1].end
            if _BOUNDARY.search(text.folded[start : text.tokens[j].start]):
                break
            verdict = self._word_after_age(text.words[j], j in child_at, after_article)
            if verdict is not None:
                return verdict and not (of_a_thing and _noun_kind(text.words[j]) is None and j not in child_at)
        return not of_a_thing

    def _subject_is_a_person(self, text: _Text, offset: int) -> bool:
        """The noun before `offset` (skipping "is", "the", ...) is a person, a child word, or no noun at all."""
        before = [t.word for t in text.tokens if t.end <= offset][-4:]
        for word in reversed(before):
            kind = _noun_kind(word)
            if kind in ("person", "adult") or word in self.english_forms:
                return True
            if kind in ("animal", "thing") or (word in self.nouns and word not in _FUNCTION_WORDS):
                return False
        return True

    def _aged_is_a_person(self, text: _Text, match: re.Match) -> bool:
        """ "players aged 12" flags; "whisky aged 12 years", "barrel-aged" do not; "ages 3-5" always does."""
        if match.group("word") != "aged":
            return True
        if match.start() > 0 and text.folded[match.start() - 1] in "-‐":
            return False
        return self._subject_is_a_person(text, match.start())

    def _of_a_thing(self, word: str) -> bool:
        """A noun for a thing, an animal or a business, not a person: "bakery", "dog", "blog"."""
        kind = _noun_kind(word)
        if kind in ("animal", "thing"):
            return True
        return kind is None and word in self.nouns and word not in self.english_forms and not _agent_noun(word)

    def _birthday_is_a_person(self, text: _Text, match: re.Match) -> bool:
        """ "her 7th birthday" flags; "the bakery's 10th birthday", "a 1st birthday for the restaurant" do not."""
        before = [t for t in text.tokens if t.end <= match.start()][-1:]
        if (
            before
            and before[0].text.endswith(("'s", "’s", "s'"))
            and self._of_a_thing(before[0].word.removesuffix("s"))
        ):
            return False
        after = text.token_after(match.end())
        following = text.words[after : after + 5]
        for j, word in enumerate(following[:-1]):
            if word in ("of", "for", "to") and j <= 2:
                rest = [w for w in following[j + 1 :] if w not in _ARTICLES]
                return not (rest and self._of_a_thing(rest[0]))
        return True

    def _turning_is_a_person(self, text: _Text, match: re.Match) -> bool:
        """ "twins turning five", "party girl turning four": an age under 16 reached by a person, said as such."""
        if _age_value(match) >= LEGAL_AGE:
            return False
        after = text.token_after(match.end())
        nxt = text.words[after] if after < len(text.words) else ""
        if nxt and nxt not in _FUNCTION_WORDS and nxt not in ("today", "tomorrow", "soon", "years", "year"):
            return False  # "turn 5 pages"
        before = [t.word for t in text.tokens if t.end <= match.start()]
        if not before:
            return True  # "turning six with a dinosaur cake": nobody else said, so the person pictured
        return self._subject_is_a_person(text, match.start()) and any(
            _noun_kind(w) in ("person", "adult") or w in self.english_forms or w in ("she", "he", "i", "we", "they")
            for w in [t.word for t in text.tokens if t.end <= match.start()][-4:]
        )

    def _school_year(self, text: _Text, match: re.Match) -> bool:
        """ "year 3 class", "year six leavers", "a boy in year 8"; not "year 3 of the renovation"."""
        num = match.group("num")
        value = int(num) if num.isdigit() else NUMBER_WORDS[num]
        if not 1 <= value <= MAX_SCHOOL_YEAR:
            return False
        after = text.token_after(match.end())
        nxt = text.words[after] if after < len(text.words) else ""
        previous = [t.word for t in text.tokens if t.end <= match.start()][-1:]
        return bool(match.group("plural")) or nxt in lx.SCHOOL_WORDS or (previous == ["in"] and nxt != "of")

    def _age_hits(self, text: _Text) -> list[str]:
        lowered = lower_same_length(text.folded)
        found = [m for m in AGE_PATTERN.finditer(lowered) if _is_young_age(m) and self._age_is_a_person(text, m)] + [
            m for m in AGED_PATTERN.finditer(lowered) if _age_value(m) < LEGAL_AGE and self._aged_is_a_person(text, m)
        ]
        found += [m for m in AGE_GROUP_WORDS_PATTERN.finditer(lowered)]
        found += [m for m in BIRTHDAY_PATTERN.finditer(lowered) if self._birthday_is_a_person(text, m)]
        found += [m for m in TURNING_PATTERN.finditer(lowered) if self._turning_is_a_person(text, m)]
        found += [m for m in SCHOOL_YEAR_PATTERN.finditer(lowered) if self._school_year(text, m)]
        found += [
            m
            for m in OF_AGE_PATTERN.finditer(lowered)
            if _age_value(m) < LEGAL_AGE
            and (
                _noun_kind(m.group("noun")) == "person"
                or m.group("noun") in lx.LAD_WORDS
                or m.group("noun") in self.english_forms
            )
        ]
        for match in AGE_GROUP_PATTERN.finditer(lowered):
            after = text.token_after(match.end())
            nxt = text.words[after] if after < len(text.words) else ""
            # "under-12s", "u10 soccer"; not "U2" or "under 10 dollars".
            if int(match.group("num")) <= LEGAL_AGE and (match.group("plural") or nxt in AGE_GROUP_NOUNS):
                found.append(match)
        return [re.sub(r"\s+", " ", m.group(0).strip()) for m in found]

    # -- public API ------------------------------------------------------------------------------------------

    def _screen_text(self, raw: str) -> ScreenResult:
        folded, tokens = tokenize(raw)
        text = _Text(folded, tokens, [t.word for t in tokens])
        self._word_hits(text)
        self._joined_hits(text)
        self._three_piece_hits(text)
        self._spaced_hits(text)
        self._phrase_hits(text)
        text.idiom_spans = self._idiom_spans(tokens)
        kept = [h for h in text.hits if not any(rule(text, h) for rule in self._rules)]
        kept.sort(key=lambda h: (h.first, h.last))
        unique = list(dict.fromkeys([h.term for h in kept] + self._age_hits(text)))
        return ScreenResult(flagged=bool(unique), matches=unique)

    def screen_many(self, texts: Iterable[str]) -> list[ScreenResult]:
        if not self._ready:
            self._load()
        clean = ["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t) for t in texts]
        return [self._screen_text(t) for t in clean]

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
