"""Text normalisation, offline and loaded on first use: two readers of the same captions and queries.

1. Tokens, lemmas and content words for the EDA (`normalize_texts`): spaCy's blank English
   pipeline gives the rule-based tokenizer, and its lookup lemmatizer gives lemmas from the tables
   shipped in spacy-lookups-data, so nothing is downloaded.
2. The child-content screen's reading (`tokenize`), which undoes what hides a word from a lexicon.
   In order: Unicode NFKC (fullwidth and styled letters become plain ones); format characters
   (category Cf: zero-width space and joiner, soft hyphen, ...) and stray combining marks are
   dropped; the text is cut into tokens at spaces and punctuation (so at "&", "/", "+" and "-"; "&"
   and "+" read as "and"); each token gets one or more *readings*: letters that look like Latin ones
   (Cyrillic "с", Greek "ο", small capitals; Unicode's confusables data) read as Latin when the
   token mixes scripts or is written only in look-alikes, so a real Russian word stays Russian;
   digits and symbols used as letters (1 0 3 4 5 7 8 @ $ ! | and "(" or "+" starting a word) read as
   the letters they stand for, every combination when one could be two ("1" is "i" or "l"), and
   letters drawn with two or three symbols beside a letter ("|<", "|)", "()") read as one; case folded;
   accents dropped from Latin letters ("niños" -> "ninos"); "ё" read as "е". Letters spaced apart ("c h i l d", "k.i.d")
   are found by `spaced_runs`.
"""

from __future__ import annotations

import itertools
import re
import threading
import unicodedata
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


# ---------------------------------------------------------------------------------------------
# The screen's reading: obfuscations undone.


# Digits and symbols read as letters. Where one stands for two letters, both readings are tried.
LEET: dict[str, tuple[str, ...]] = {
    "0": ("o",),
    "1": ("i", "l"),
    "3": ("e",),
    "4": ("a",),
    "5": ("s",),
    "6": ("g", "b"),
    "7": ("t",),
    "8": ("b",),
    "9": ("g",),
    "@": ("a",),
    "$": ("s",),
    "!": ("i",),
    "|": ("i", "l"),
    "€": ("e",),
    "(": ("c", "o"),
    "+": ("t",),
}
# Letters drawn with two or three symbols ("|<id", "ki|)s", "b()y"): read as the letter before the text is cut
# into tokens, and only beside a letter, so "|" and brackets elsewhere stay punctuation.
MULTI_SYMBOL_LETTERS: dict[str, str] = {
    "|<": "k",
    "|{": "k",
    "|)": "d",
    "[)": "d",
    "()": "o",
    "[]": "o",
    "/\\": "a",
    "\\/": "v",
    "|-|": "h",
    "]-[": "h",
    "|_|": "u",
    "\\/\\/": "w",
    "|\\|": "n",
    "|2": "r",
    "|_": "l",
}
MAX_READINGS = 16
# Lower-case letters shaped like small capitals ("кid", "κids"). Unicode lists only their capitals as
# look-alikes, so they are read as Latin only inside a token that mixes scripts, never in a real
# Russian or Greek word.
MIXED_SCRIPT_LETTERS: dict[str, tuple[str, ...]] = {
    "к": ("k",),
    "κ": ("k",),
    "т": ("t",),
    "τ": ("t",),
    "м": ("m",),
    "н": ("h",),
    "в": ("b",),
    "β": ("b",),
    "ь": ("b",),
    "г": ("r",),
    "п": ("n",),
    "η": ("n",),
    "д": ("d",),
    "и": ("u",),
    "л": ("n",),
    "ш": ("w",),
    "ω": ("w",),
    "ч": ("y",),
    "ι": ("i",),
    "ν": ("v",),
    "υ": ("u",),
    "ε": ("e",),
    "з": ("e",),
}
# Characters that can only be letters inside a word ("k!d", "g|rl"); at its edges they are punctuation.
_INNER_ONLY = "!|(+"
_TOKEN = re.compile(
    r"(?:[^\W_]|[@$€!|'’]|(?<=[^\W\d_])\((?=[^\W\d_])|\((?=[^\W_]{2,}(?![^\s)]*\)))|(?<![^\s])\+(?=[^\W\d_]{2,}))+|[&+]"
)
# Where a letter drawn with symbols may stand: beside a letter, or at the start of a word before one.
_MULTI_SYMBOL = re.compile(
    "|".join(
        rf"(?<=[^\W\d_]){re.escape(k)}|{re.escape(k)}(?=[^\W_])"
        for k in sorted(MULTI_SYMBOL_LETTERS, key=len, reverse=True)
    )
)
_APOSTROPHES = "'’"
# Separators that may stand between letters spaced apart: "c h i l d", "k.i.d", "b-o-y", "g_i_r_l".
_SPACED_SEPARATOR = re.compile(r"[\s.\-_*·•,~:/\\()\[\]{}|+]{1,3}")
MIN_SPACED_LETTERS = 3


@lru_cache(maxsize=1)
def confusable_letters() -> dict[str, tuple[str, ...]]:
    """Character -> the ASCII letters it can pass for, from Unicode's confusables data.

    The data ships in the `confusable_homoglyphs` package (Unicode's confusables.txt as JSON). It is
    case-sensitive (Cyrillic "К" looks like "K", "к" does not), so it is read before case folding.
    A look-alike of capital "I" is read as both "i" and "l", as Unicode files it under "l".
    """
    import json
    from importlib import resources

    path = resources.files("confusable_homoglyphs") / "confusables.json"
    data = json.loads(path.read_text(encoding="utf8"))
    table: dict[str, tuple[str, ...]] = {}
    for char, entries in data.items():
        if len(char) != 1 or char.isascii() or not char.isalpha():
            continue
        letters = sorted({e["c"] for e in entries if len(e["c"]) == 1 and e["c"].isascii() and e["c"].isalpha()})
        if not letters:
            continue
        lowered = tuple(dict.fromkeys(c.lower() for c in letters))
        if "l" in lowered and "i" not in lowered:
            lowered = lowered + ("i",)
        table[char] = lowered
    # Small capitals ("ᴄʜɪʟᴅ") are Latin letters in all but size; Unicode names them so.
    for block in ((0x0250, 0x02AF), (0x1D00, 0x1D7F), (0xA720, 0xA7FF)):
        for code in range(*block):
            name = unicodedata.name(chr(code), "")
            if name.startswith("LATIN LETTER SMALL CAPITAL ") and len(name.rsplit(" ", 1)[1]) == 1:
                table.setdefault(chr(code), (name[-1].lower(),))
    return table


@lru_cache(maxsize=4096)
def _script(char: str) -> str:
    name = unicodedata.name(char, "")
    return name.split(" ", 1)[0] if name else ""


_LATIN_WITH = re.compile(r"LATIN (?:SMALL|CAPITAL) LETTER ([A-Z]) WITH ")


@lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    """Case-fold one character and drop the accents of Latin letters; Cyrillic "ё" reads as "е"."""
    folded = char.casefold()
    if folded == "ё":
        return "е"
    out = []
    for c in folded:
        if c.isascii() or _script(c) != "LATIN":
            out.append(c)
            continue
        base = unicodedata.normalize("NFD", c)[0]
        if not base.isascii():  # a letter with a hook or stroke that does not decompose: "ƙ", "đ", "ɓ"
            named = _LATIN_WITH.match(unicodedata.name(c, ""))
            base = named.group(1).lower() if named else c
        out.append(base)
    return "".join(out)


@lru_cache(maxsize=1)
def _symbol_letters() -> dict[int, str]:
    """Symbols that spell a letter and that NFKC leaves alone: regional indicators ("🇰🇮🇩"), negative circled
    and squared letters ("🅺🅸🅳"). Read from their Unicode names."""
    table = {}
    for code in range(0x1F100, 0x1F200):
        name = unicodedata.name(chr(code), "")
        if " LETTER " in name and len(name.rsplit(" ", 1)[1]) == 1:
            table[code] = name[-1].lower()
    return table


def fold_text(text: str) -> str:
    """NFKC, letters spelled by symbols read as letters, then format characters (Cf) and combining marks left
    without a base letter (strike-through, underline) dropped."""
    text = unicodedata.normalize("NFKC", text).translate(_symbol_letters())
    return "".join(c for c in text if unicodedata.category(c) not in ("Cf", "Mn", "Me"))


def fold_word(word: str) -> str:
    """Case and accents folded: what lexicon entries and readings are compared as."""
    return "".join(_fold_char(c) for c in word)


@dataclass(frozen=True)
class Token:
    """One token of a text. `readings` are its candidate spellings, lower-case, the literal one first."""

    text: str
    start: int
    end: int
    readings: tuple[str, ...]
    capitalised: bool

    @property
    def word(self) -> str:
        return self.readings[0]


def _letter_readings(token: str) -> tuple[str, ...]:
    """Readings of a token's characters: look-alikes and leetspeak resolved, case and accents folded."""
    letters = [c for c in token if c.isalpha()]
    scripts = {_script(c) for c in letters}
    table = confusable_letters()
    foreign_scripts = scripts - {"LATIN"}
    if foreign_scripts and "LATIN" not in scripts:
        # Written in one other script: a real word of that language, unless every letter is a look-alike.
        map_confusables = all(c in table for c in letters) and len(foreign_scripts) == 1
        keep_literal = True
    else:
        map_confusables = True
        keep_literal = not foreign_scripts
    has_letters = bool(letters)
    options: list[tuple[str, ...]] = []
    for i, c in enumerate(token):
        choices: tuple[str, ...]
        if c in LEET and has_letters and not (c in _INNER_ONLY and (i == 0 or i == len(token) - 1)):
            choices = LEET[c]
        elif map_confusables and c in table and (_script(c) != "LATIN" or not c.isascii()):
            choices = table[c]
        elif foreign_scripts and "LATIN" in scripts and c in MIXED_SCRIPT_LETTERS:
            choices = MIXED_SCRIPT_LETTERS[c]
        else:
            choices = (_fold_char(c),)
        options.append(choices)
    readings: list[str] = []
    if keep_literal:
        readings.append(fold_word(token))  # "3rd", "80s" and real Russian words stay as written
    for combo in itertools.islice(itertools.product(*options), MAX_READINGS):
        readings.append("".join(combo))
    if not map_confusables and not readings:
        readings.append(fold_word(token))
    return tuple(dict.fromkeys(r for r in readings if r))


@lru_cache(maxsize=65536)
def _readings(raw: str) -> tuple[str, ...]:
    if raw in ("&", "+"):
        return ("and",)
    if raw[:1] in _INNER_ONLY and raw[1:2].isalpha():  # "!nfant", "(hild": the symbol may be a letter
        first = {"(": "c", "+": "t"}.get(raw[0], "i")
        return tuple(dict.fromkeys(_readings(first + raw[1:]) + _readings(raw[1:])))
    token = raw.strip(_APOSTROPHES + _INNER_ONLY)
    token = "".join(c for c in token if c not in _APOSTROPHES)  # "boys'" -> "boys", "baby's" -> "babys"
    if not token:
        return ()
    if token in "&+":
        return ("and",)
    readings = list(_letter_readings(token))
    # Letters around digits also stand alone: "4kids" -> "kids".
    if any(c.isdigit() for c in token) and any(c.isalpha() for c in token):
        readings += [fold_word(part) for part in re.findall(r"[^\W\d_]+", token)]
    return tuple(dict.fromkeys(readings))


def tokenize(text: str) -> tuple[str, list[Token]]:
    """(folded text, tokens). Token offsets index the folded text, in which letters drawn with several symbols
    ("|<", "|)", "()") are already single letters."""
    folded = _MULTI_SYMBOL.sub(lambda m: MULTI_SYMBOL_LETTERS[m.group()], fold_text(text))
    tokens = []
    for match in _TOKEN.finditer(folded):
        readings = _readings(match.group())
        if readings:
            raw = match.group()
            tokens.append(Token(raw, match.start(), match.end(), readings, raw[:1].isupper()))
    return folded, tokens


def spaced_runs(folded: str, tokens: list[Token]) -> list[tuple[int, int, str]]:
    """(first token, last token, joined letters) for runs of single letters spaced apart: "c h i l d"."""
    runs = []
    i = 0
    while i < len(tokens):
        j = i
        while (
            j < len(tokens)
            and len(tokens[j].word) == 1
            and (tokens[j].word.isalpha() or tokens[j].word in LEET)  # "c h 1 l d"
            and (j == i or _SPACED_SEPARATOR.fullmatch(folded[tokens[j - 1].end : tokens[j].start]))
        ):
            j += 1
        if j - i >= MIN_SPACED_LETTERS and any(t.word.isalpha() for t in tokens[i:j]):
            letters = "".join(LEET[t.word][0] if t.word in LEET else t.word for t in tokens[i:j])
            runs.append((i, j - 1, letters))
        i = max(j, i + 1)
    return runs


def lower_same_length(text: str) -> str:
    """Lower-case without changing the length, so offsets into `text` stay valid."""
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
