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


@pytest.mark.parametrize(
    ("adult", "child"),
    [
        ("boys in blue directing traffic", "two little boys in blue splashing in the sea"),
        ("Jones and Sons hardware store", "a father and son fishing from a rowboat"),
        ("party girl dancing on a nightclub table", "a party girl in a tutu with her mum"),
        ("girls' trip to Vegas", "girls' trip to the zoo with a stroller"),
        ("the beach boys on the radio", "the beach boys with buckets and spades"),
    ],
)
def test_an_idiom_about_people_excuses_only_without_children_around(screen, adult, child):
    # Direction: a childhood place, toy, parent or size word turns the idiom's people into children.
    assert not screen(adult).flagged, adult
    assert screen(child).flagged, child


@pytest.mark.parametrize(
    "goods",
    ["kids' bike for sale", "girls' shoes on a shelf", "toddler sippy cups drying on a rack", "a children's book"],
)
def test_goods_named_after_children_pass_only_with_no_child_in_the_text(screen, goods):
    assert not screen(goods).flagged, goods
    assert screen(f"{goods} and a boy").flagged
    assert screen(f"{goods} next to a toddler").flagged
    assert screen(f"{goods}, a 6-year-old nearby").flagged


def test_a_particular_childs_things_flag(screen):
    # "the boys' bikes" names particular boys; "boys' bikes" names a kind of bike.
    assert screen("the boys' bikes").flagged and not screen("boys' bikes for sale").flagged


@pytest.mark.parametrize(
    ("name", "description"),
    [
        ("Boy Pablo playing live", "Happy Boy playing in the park"),
        ("Youth Lagoon concert", "Cute Baby Smiling at the camera"),
        ("Kid Koala at the turntables", "Two Girls Playing on a city street"),
    ],
)
def test_capitals_make_a_name_only_when_no_word_describes_a_child(screen, name, description):
    assert not screen(name).flagged, name
    assert screen(description).flagged, description


def test_words_written_together_flag_unless_they_make_an_adult_word(screen):
    for joined in ("toddlerlife", "babygirls in dresses", "#kidsofinstagram", "kidsclub pool"):
        assert screen(joined).flagged, joined
    for adult in ("showgirls", "cowgirls", "ladyboy", "boyband", "childfree", "kidman"):
        assert not screen(adult).flagged, adult


def test_birthdays_and_turning_an_age_are_a_persons_unless_a_thing_has_them(screen):
    assert screen("her 7th birthday").flagged and screen("twins turning five").flagged
    assert not screen("the bakery's 7th birthday").flagged and not screen("the startup turns 7 today").flagged
    assert not screen("a 21st birthday").flagged and not screen("twins turning 30").flagged


@pytest.mark.parametrize(
    "child",
    [
        "the girls at the office creche with their mums",  # an adult setting, but mothers and a creche
        "Baby Steps Nursery class photo",  # a capitalised name of a children's place
        "kid's bike with a kid riding it",  # goods, and a child with them
        "our 40 year old neighbour's kids in the garden",  # the adult age is the neighbour's
    ],
)
def test_adult_readings_give_way_to_children_in_the_text(screen, child):
    assert screen(child).flagged, child


def test_one_long_token_stays_cheap(screen):
    # Misspelling and run-together searches are bounded: a 200-letter token costs well under a second.
    import time

    started = time.process_time()
    for text in ("a" * 200, "xqzwvkjhgfdsaqwertyuiop" * 5, " ".join(["k i d s"] * 30)):
        screen(text)
    assert time.process_time() - started < 1.0
