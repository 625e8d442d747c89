"""Behavioural tests of the text screen (Made-With-ML's model tier): invariance and direction.

- Invariance: adult context words added around a child query never unflag it ("a boy" stays
  flagged next to "baby blue", "goat", "Neil Young", "minor repairs", "10-year-old car").
- Direction: a child word added to an adult near-miss flags it; taking it away unflags it again.
- Obfuscation: every disguise of a child word in the normaliser is caught in a sentence.
"""

import pytest

from tasks.safety.text_screen import ChildContentFilter

CHILD = ["a boy", "two little girls", "kids", "a toddler", "a 6-year-old", "children", "a teenager", "niños"]
ADULT_CONTEXT = [
    "{} in a baby blue jacket",
    "{} at a youth hostel",
    "{} next to a goat",
    "{} at a Neil Young concert",
    "{} watching minor repairs",
    "{} beside a 10-year-old car",
    "{} with a baby grand piano",
    "girls night out, {} included",
    "{} and the Beastie Boys poster",
    "{} at the minor league game",
]
ADULT = [
    "a baby blue car",
    "goat kids in a pen",
    "minor repairs on the roof",
    "three-day-old bread",
    "a juvenile hawk",
    "youth hostel lobby",
    "Neil Young on stage",
    "a young couple",
]


@pytest.fixture(scope="module")
def screen():
    return ChildContentFilter().screen


@pytest.mark.parametrize("child", CHILD)
@pytest.mark.parametrize("template", ADULT_CONTEXT)
def test_adult_context_never_unflags_a_child(screen, child, template):
    text = template.format(child)
    assert screen(text).flagged, text


@pytest.mark.parametrize("adult", ADULT)
def test_adding_a_child_flags_an_adult_text(screen, adult):
    assert not screen(adult).flagged, adult
    assert screen(f"{adult} with a child").flagged
    assert screen(f"a toddler and {adult}").flagged


@pytest.mark.parametrize(
    "disguise",
    [
        "chlid", "childern", "todler", "kidd", "gurl", "babby",  # misspellings
        "k1d", "ch1ld", "g!rl", "b0y", "b@by", "t33n",  # digits and symbols for letters
        "\u0441hild", "b\u043ey", "\u03baids", "ＫＩＤ", "ᴄʜɪʟᴅ", "𝐛𝐨𝐲",  # other scripts and styles
        "chi\u200bld", "ki\u00add", "c h i l d", "k.i.d", "b-o-y", "ch il dren",  # invisible characters, spacing
        "\U0001f1f0\U0001f1ee\U0001f1e9", "\U0001f17a\U0001f178\U0001f173",  # letters spelled by symbols
        "boys&girls", "pre-schooler", "grand-daughter",  # joined forms
        "Kinder", "Mädchen", "ребёнок", "дети", "enfant", "bambini", "niña", "crianças", "garotinho",  # languages
        "juvenile", "minors", "underage", "preteen",
    ],
)  # fmt: skip
def test_each_disguise_is_caught_in_a_sentence(screen, disguise):
    assert screen(f"photo of {disguise} on the beach").flagged, disguise


def test_an_idiom_only_excuses_its_own_words(screen):
    assert screen("a baby blue car").matches == []
    assert screen("a baby in a baby blue car").matches == ["baby"]
