"""Behaviour of the child-content text screen: what it must flag, what it must leave alone.

Documented choices (README, "Ratings, safety and EDA"); issue 11 changed two: adult idioms such as
"baby blue" pass, and minors / underage / juvenile flag.
"""

import pandas as pd
import pytest

from tasks.safety.text_screen import NOTICE, ChildContentFilter, age_mentions

FLAGGED = [
    ("A child plays in the sand", "child"),
    ("Children run across a field", "child"),
    ("CHILDREN", "child"),
    ("the child's toy", "child"),
    ("Two kids on a slide", "kid"),
    ("KIDS", "kid"),
    ("a kid", "kid"),
    ("Kiddos at the fair", "kiddo"),
    ("a kiddie pool", "kiddie"),
    ("A boy jumps into the lake", "boy"),
    ("Boys playing soccer", "boy"),
    ("the boys' bikes", "boy"),
    ("A girl in a pink dress", "girl"),
    ("Girls dancing", "girl"),
    ("A baby sleeps", "baby"),
    ("babies in a stroller", "baby"),
    ("A toddler walks", "toddler"),
    ("toddlers", "toddler"),
    ("an infant in a crib", "infant"),
    ("a newborn", "newborn"),
    ("a teen on a skateboard", "teen"),
    ("Teenagers at the mall", "teenager"),
    ("a teenage boy", "teenage"),
    ("youngsters play chess", "youngster"),
    ("A group of pupils in uniform", "pupil"),
    ("a schoolboy with a backpack", "schoolboy"),
    ("schoolgirls walk home", "schoolgirl"),
    ("schoolchildren on a trip", "schoolchild"),
    ("the kindergartener paints", "kindergartener"),
    ("preschoolers singing", "preschooler"),
    ("a little league game", "little league"),
    ("Little League players", "little league"),
    ("an elementary school class", "elementary school"),
    ("a father and his son", "son"),
    ("a mother holds her daughter", "daughter"),
    ("grandma with her grandchildren", "grandchild"),
    ("a tomboy climbing a tree", "tomboy"),
    ("the little ones", "little one"),
    ("a 5-year-old", "5-year-old"),
    ("a 5 year old on a bike", "5 year old"),
    ("six year old", "six year old"),
    ("a ten-year-old girl", "ten-year-old"),
    ("Fifteen-year-olds at a dance", "fifteen-year-olds"),
    ("a 3 month old", "3 month old"),
    ("a 15 yr old", "15 yr old"),
    ("a 7yo", "7yo"),
    ("players aged 12", "aged 12"),
    ("a young person with a punk haircut", "young"),
    ("The young football player", "young"),
    ("youth soccer", "youth"),
    ("minors at a party", "minor"),
    ("a minor in a bar", "minor"),
    ("underage drinking", "underage"),
    ("a juvenile in court", "juvenile"),
    ("preteens at the mall", "preteen"),
    ("a pre-schooler with crayons", "preschooler"),
    ("schoolkids on a bus", "schoolkid"),
    ("grade-schoolers at recess", "grade school"),
    ("fifth graders on a trip", "fifth graders"),
    ("a kindergartner painting", "kindergartner"),
    ("the young ones at the pool", "young ones"),
    ("my 5 year old's new bike", "5 year old"),
    ("under-12s football", "under-12s"),
    # Words written together, hashtags.
    ("toddlerlife at the beach", "toddler"),
    ("#kidsofinstagram at the zoo", "kid"),
    ("littlegirl on a swing", "girl"),
    ("boysandgirls dancing", "boy"),
    # Diminutives, by suffix tables, in the six languages.
    ("mi hijita en el columpio", "hijita"),
    ("las chiquitas bailando", "chiquitas"),
    ("bebezinho dormindo", "bebezinho"),
    ("figlioletto al mare", "figlioletto"),
    ("das Töchterchen mit Puppe", "tochterchen"),
    ("un garçonnet sur un vélo", "garconnet"),
    ("сынишка на велосипеде", "сынишка"),
    ("доченька с мамой", "доченька"),
    ("un recién nacido", "newborn"),
    # Kin.
    ("my niece on a scooter", "niece"),
    ("nephew blowing bubbles", "nephew"),
    ("my little sister on a swing", "little sibling"),
    ("stepkids at the beach", "stepkid"),
    ("a prepubescent swimmer", "preteen"),
    ("a little lad with a net", "little lad"),
    # Ages said otherwise.
    ("her 7th birthday party", "7th birthday"),
    ("a tenth birthday sleepover", "tenth birthday"),
    ("twins turning five at a party", "turning five"),
    ("under-fives at rhyme time", "under-fives"),
    ("year 3 class on a trip", "year 3"),
    ("a class of year 2s", "year 2s"),
    ("a lad of ten fishing", "lad of ten"),
    ("nursery school on a walk", "nursery school"),
    # Spelt by ear, slang, more diminutives.
    ("nefew with a kite", "nephew"),
    ("teenies at a pop concert", "teenie"),
    ("дочурка с мамой", "дочурка"),
    ("peques en la piscina", "peques"),
    ("des mômes dans la rue", "momes"),
    ("Kita-Kinder beim Ausflug", "kinder"),
    ("kids kite flying on a beach", "kid"),
    ("a child watches a juggler", "child"),
    # Russian in Latin letters.
    ("deti na ploshchadke", "deti"),
    ("rebenok v kolyaske", "rebenok"),
    ("malchiki igrayut v futbol", "malchiki"),
    ("my little cousin on her trike", "little cousin"),
    ("sixth grade graduation photo", "sixth grade"),
    ("the new kid at school", "kid"),
    ("kdi on a swing", "kid"),
    ("babbys in a nursery", "baby"),
    ("Mädchens Fahrrad", "madchens"),
    ("chi.ldren at a park", "child"),
    ("tod_dler on a slide", "toddler"),
    ("A smiling child slides down a tube slide", "child"),
]

NOT_FLAGGED = [
    "I was kidding",
    "kidding around at work",
    "a kidney bean salad",
    "my boyfriend and I",
    "her girlfriend smiles",
    "Girlfriends at a bar",
    "a cowboy on a horse",
    "a showgirl on stage",
    "Kidderminster railway station",
    "Boyle street market",
    "a 30-year-old man",
    "a twenty-one-year-old woman",
    "a 16-year-old",
    "sixteen year old",
    "a 45 year old runner",
    "aged 30",
    "a young man climbs a wall",
    "Five young men pose on the steps",
    "a young woman reads",
    "The young adults take a group shot",
    "a young , fit man does a kick",
    "a young dog runs",
    "A black dog runs on the beach",
    "a man and a woman at dinner",
    "students in a lecture hall",
    "a family picnic",
    "an old man with a cane",
    "a skier jumps",
    "Bicycle race in the city",
    "a man in a kilt",
    "the year is 2015",
    "a 10 km race",
    "",
    "a baby blue car",
    "minor repairs to the roof",
    "sonata in E minor",
    "minor league baseball",
    "a juvenile hawk on a fence",
    "a goat and her kid in the barn",
    "kid leather gloves",
    "youth hostel in Lisbon",
    "three-day-old bread",
    "a 2 month old puppy",
    "a 10-year-old car",
    # Goods and places named after children, with no child in the text.
    "kids' bike for sale by the curb",
    "girls' shoes on a store shelf",
    "a children's hospital building at night",
    "a wooden play kitchen for kids in a toy shop",
    "youth sized hockey sticks",
    "girls' swimwear on a rack",
    # Idioms about people, with nothing about children around them.
    "boys in blue directing traffic",
    "Jones and Sons hardware store",
    "the new kid on the block at the office",
    "the girls at the office party",
    "the birthday boy turning 50 with a mustache",
    "fur baby asleep on the couch",
    # Names, capitalised.
    "Boy Pablo playing guitar live",
    "Youth Lagoon concert lighting",
    "Children of Bodom poster",
    # Ages of things said as birthdays, turning, school-free years.
    "the bakery's 10th birthday",
    "a 1st birthday party for the restaurant",
    "the startup turns 7 with a party",
    "year 3 of the renovation project",
    "a man of 40 on a bike",
    # Joined adult words, German compounds with an English part, a young adult.
    "showgirls in Las Vegas",
    "childfree wedding sign",
    "Kinderhook village main street",
    "a young 80-year-old dancing",
    "a tot of rum",
    "babyproofing an outlet",
    # An adult age beside the child word; goods found by their head noun.
    "my 21 year old son at his graduation",
    "a 20-year-old girl on a beach",
    "una chica de 30 años en la playa",
    "the birthday boy, my 70-year-old dad",
    "a first grade steak",
    "kids' scissors in a jar",
    "children's toothpaste tube",
    "Mädels-Abend in einer Bar",
    # A German stem with more than an ending after it; a Spanish princess; a brand.
    "Madchester rave poster",
    "infanta portrait by Velázquez",
    "tods shoes on a shelf",
    "the new kid at the law firm",
    "a children's bookshop at night",
    "los chicos de la oficina celebrando",
    "Jungs-Abend in der Kneipe",
    "St. Kilda beach",
    "baby echidna in a rescue centre",
    "kids' lunchboxes on a shelf",
    "a big kid at heart riding a rollercoaster at 40",
]


@pytest.fixture(scope="module")
def content_filter():
    return ChildContentFilter()


@pytest.mark.parametrize(("text", "term"), FLAGGED)
def test_flags_child_texts(content_filter, text, term):
    result = content_filter.screen(text)
    assert result.flagged, text
    assert term.lower() in [m.lower() for m in result.matches]


@pytest.mark.parametrize("text", NOT_FLAGGED)
def test_leaves_other_texts_alone(content_filter, text):
    result = content_filter.screen(text)
    assert not result.flagged, (text, result.matches)
    assert result.matches == []


def test_enough_behavioural_phrases():
    assert len(FLAGGED) + len(NOT_FLAGGED) >= 60


def test_age_mentions_boundary():
    assert age_mentions("a 15-year-old") and not age_mentions("a 16-year-old")
    assert age_mentions("a 2 week old puppy")  # any age in weeks is under 16 years


def test_series_screen_keeps_index(content_filter):
    texts = pd.Series(["a boy", "a dog", "kids"], index=[10, 20, 30])
    out = content_filter.screen_series(texts)
    assert out.index.tolist() == [10, 20, 30]
    assert out["flagged"].tolist() == [True, False, True]
    assert out.loc[30, "matches"] == ["kid"]


def test_notice_text_is_exact():
    assert NOTICE == "This image is unavailable in your country in compliance with local laws."


def test_idiom_tables_list_each_phrase_once():
    from tasks.safety.lexicon import IDIOMS

    repeated = {kind: sorted({p for p in phrases if phrases.count(p) > 1}) for kind, phrases in IDIOMS.items()}
    assert not {kind: p for kind, p in repeated.items() if p}
