"""Text normalisation: lower-case tokens, lookup lemmas, stop words out; nothing loads at import; and the
screen's reading of obfuscated text, step by step."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_loads_nothing():
    # A fresh interpreter: importing the stage modules must not load spaCy, matplotlib, sklearn or nltk.
    code = (
        "import sys, tasks.safety.normalize, tasks.safety.text_screen, tasks.safety.image_detector, "
        "tasks.ratings.aggregate, tasks.eda.report; "
        "print(sorted(m for m in ('spacy', 'matplotlib', 'sklearn', 'nltk') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "[]"


def test_tokens_and_lemmas():
    from tasks.safety.normalize import normalize_text

    doc = normalize_text("Children are playing with KIDS and babies.")
    assert doc.tokens[:2] == ("children", "are")
    assert doc.lemmas[0] == "child" and "baby" in doc.lemmas and "kid" in doc.lemmas
    assert doc.content_lemmas == ["child", "play", "kid", "baby"]


def test_hyphenated_ages_are_split():
    from tasks.safety.normalize import normalize_text

    assert normalize_text("a 5-year-old").tokens == ("a", "5", "-", "year", "-", "old")


def _readings(text: str) -> list[tuple[str, ...]]:
    from tasks.safety.normalize import tokenize

    return [t.readings for t in tokenize(text)[1]]


def _words(text: str) -> list[str]:
    return [r[0] for r in _readings(text)]


def test_nfkc_and_case_fold():
    # Fullwidth, mathematical bold and circled letters are plain letters after NFKC.
    assert _words("ＫＩＤＳ 𝐜𝐡𝐢𝐥𝐝 ⓑⓞⓨ") == ["kids", "child", "boy"]
    assert _words("STRASSE Straße") == ["strasse", "strasse"]


def test_letters_spelled_by_symbols_are_letters():
    # Regional indicators and negative squared letters: NFKC leaves them, their Unicode names say the letter.
    assert _words("\U0001f1f0\U0001f1ee\U0001f1e9 \U0001f17a\U0001f178\U0001f173") == ["kid", "kid"]


def test_format_characters_are_dropped():
    for hidden in ("\u200b", "\u200c", "\u200d", "\u00ad", "\u2060", "\ufeff"):
        assert _words(f"chi{hidden}ld") == ["child"], repr(hidden)


def test_accents_fold_on_latin_letters_only():
    assert _words("niños Mädchen garçon") == ["ninos", "madchen", "garcon"]
    # Letters with a hook or a stroke do not decompose; their Unicode names say the letter.
    assert _words("ƙiđ ɓaby") == ["kid", "baby"]
    # Russian keeps its letters; ё reads as е.
    assert _words("ребёнок дети") == ["ребенок", "дети"]


def test_look_alike_letters_in_a_mixed_token_read_as_latin():
    assert "child" in _readings("\u0441hild")[0]  # Cyrillic с
    assert "kids" in _readings("\u03baids")[0]  # Greek small kappa
    assert "boy" in _readings("b\u043ey")[0]  # Cyrillic о
    assert "child" in _readings("ᴄʜɪʟᴅ")[0]  # small capitals


def test_a_real_russian_word_keeps_its_script():
    # All letters Cyrillic and not all look-alikes: no Latin reading.
    assert _readings("дети") == [("дети",)]
    # Capital look-alikes only: both readings.
    assert _readings("ВОУ") == [("воу", "boy")]


def test_leetspeak_tries_every_reading():
    assert {"kid", "kld"} <= set(_readings("k1d")[0])
    assert "girl" in _readings("g!rl")[0] and "baby" in _readings("b@by")[0] and "son" in _readings("$on")[0]
    assert "infants" in _readings("!nfants")[0]
    # Numbers stay numbers; a trailing "!" is punctuation.
    assert _readings("2015")[0] == ("2015",) and _readings("kids!")[0] == ("kids",)


def test_letters_drawn_with_several_symbols():
    assert _words("|<id ki|)s b()y |<1d5") == ["kid", "kids", "boy", "k1d5"]
    assert "kids" in _readings("|<1d5")[0]
    # "(" inside a word or opening one that never closes is a letter; "+" opening a word is "t".
    assert "toddler" in _readings("t(ddler")[0] and "children" in _readings("(hildren")[0]
    assert "teens" in _readings("+eens")[0]
    # Brackets and bars elsewhere stay punctuation.
    assert _words("kids (children) play") == ["kids", "children", "play"]
    assert _words("a (big) dog | cat") == ["a", "big", "dog", "cat"]


def test_separators_split_and_ampersand_reads_and():
    assert _words("boys&girls kids/teens toddler+baby pre-schooler") == [
        "boys", "and", "girls", "kids", "teens", "toddler", "and", "baby", "pre", "schooler",
    ]  # fmt: skip


def test_spaced_letters_are_joined():
    from tasks.safety.normalize import spaced_runs, tokenize

    for text in ("c h i l d", "k.i.d.s", "b-o-y", "g_i_r_l"):
        folded, tokens = tokenize(text)
        assert [run[2] for run in spaced_runs(folded, tokens)] == [text.replace(text[1], "")], text
    folded, tokens = tokenize("c h 1 l d")  # a digit for a letter inside a run
    assert [run[2] for run in spaced_runs(folded, tokens)] == ["child"]
    folded, tokens = tokenize("7 0 7")  # digits alone are numbers
    assert spaced_runs(folded, tokens) == []
    folded, tokens = tokenize("a b and c")  # two single letters are not a run
    assert spaced_runs(folded, tokens) == []
