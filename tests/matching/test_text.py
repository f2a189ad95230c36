"""Normalisation and tokenisation: what counts as the same word, and where words are."""

from __future__ import annotations

import unicodedata

import pytest
import regex
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.matching.text import (
    Token,
    ascii_words,
    normalize,
    norms,
    spaced_norms,
    split_words,
    tokenize,
    word_spans,
)

TEXTS = st.text(alphabet=st.characters(codec="utf-8"), max_size=60) | st.text(
    alphabet="ab c’–é\u0301中.", max_size=30
)
"""Any text, and text made of the characters the fast paths treat apart."""

NORMALIZE_CASES = [
    ("ERDOĞAN", "erdogan"),
    ("Stéphane", "stephane"),
    ("Ste\u0301phane", "stephane"),  # decomposed input
    ("Токаев", "токаев"),
    ("ТОКАЕВ", "токаев"),
    ("ß", "ss"),
    ("STRASSE", "strasse"),
    ("Straße", "strasse"),
    ("\ufb01nance", "finance"),  # the "fi" ligature
    ("ＡＢＣ１２", "abc12"),  # fullwidth forms
    ("Wałęsa", "walesa"),
    ("Kılıçdaroğlu", "kilicdaroglu"),
    ("Ørsted", "orsted"),
    ("ǿ", "o"),
    ("İstanbul", "istanbul"),
    ("Ἀθῆναι", "αθηναι"),
    ("한국", "한국"),
    ("习近平", "习近平"),
    ("\u0301", ""),
    ("plain ascii", "plain ascii"),
]


@pytest.mark.parametrize(("raw", "expected"), NORMALIZE_CASES)
def test_normalize(raw: str, expected: str) -> None:
    """normalize() folds case, accents and compatibility forms to one comparison form."""
    assert normalize(raw) == expected


def test_normalize_keeps_hangul_composed() -> None:
    """Removing marks goes through NFKD, but the result is NFC, so Hangul syllables survive."""
    assert unicodedata.is_normalized("NFC", normalize("대한민국"))
    assert len(normalize("대한민국")) == 4


TOKENIZE_CASES = [
    ("China's economy", ["china", "s", "economy"]),
    ("China’s economy", ["china", "s", "economy"]),
    ("troop-transports", ["troop", "transports"]),
    ("Kassym-Jomart Tokayev", ["kassym", "jomart", "tokayev"]),
    ("snake_case and, commas;", ["snake", "case", "and", "commas"]),
    ("2,500 peacekeepers", ["2", "500", "peacekeepers"]),
    ("ERDOĞAN—Putin", ["erdogan", "putin"]),
    ("ТОКАЕВ заявил", ["токаев", "заявил"]),
    ("中国国家主席习近平表示", list("中国国家主席习近平表示")),
    ("習近平は東京へ", list("習近平は東京へ")),
    ("ラーメン", ["ラ", "ー", "メ", "ン"]),
    ("대한민국 정부", ["대한민국", "정부"]),
    ("Xi 习近平 said", ["xi", "习", "近", "平", "said"]),
    # Thai vowel and tone marks ride on their base and are kept: they are letters, not accents.
    ("กินข้าว", ["กิ", "น", "ข้", "า", "ว"]),
    ("a \u0301 b", ["a", "b"]),  # a lone combining mark normalises to nothing
    ("", []),
    ("  ...  ", []),
]


@pytest.mark.parametrize(("raw", "expected"), TOKENIZE_CASES)
def test_tokenize_words(raw: str, expected: list[str]) -> None:
    """tokenize() splits at everything but letters, digits and marks; spaceless scripts per char."""
    assert [token.norm for token in tokenize(raw)] == expected


def test_tokenize_offsets_point_into_the_original() -> None:
    """Token offsets index the original string, not the normalised one, even when lengths change."""
    raw = "Straße ﬁnance, ERDOĞAN’s 习近平"
    tokens = tokenize(raw)
    assert [raw[t.start : t.end] for t in tokens] == [
        "Straße",
        "ﬁnance",
        "ERDOĞAN",
        "s",
        "习",
        "近",
        "平",
    ]
    assert tokens[0] == Token("strasse", 0, 6)


def test_tokenize_ascii_offsets() -> None:
    """The ASCII fast path reports the same offsets as the general path."""
    assert tokenize("Hi, there-you") == [
        Token("hi", 0, 2),
        Token("there", 4, 9),
        Token("you", 10, 13),
    ]
    assert tokenize("Hi, there-you’") == [
        Token("hi", 0, 2),
        Token("there", 4, 9),
        Token("you", 10, 13),
    ]


def test_split_words_matches_tokenize() -> None:
    """split_words() is tokenize() in columns."""
    raw = "Kazakh President Kassym-Jomart Tokayev 习近平"
    words = split_words(raw)
    assert list(zip(words.norms, words.starts, words.ends, strict=True)) == tokenize(raw)


# A reference tokenizer written straight from the specification, one character at a time.
_WORD_CHAR = regex.compile(r"[\p{L}\p{N}\p{M}]")
_MARK = regex.compile(r"\p{M}")
_SPACELESS_CHAR = regex.compile(
    r"[\p{scx=Han}\p{scx=Hiragana}\p{scx=Katakana}\p{scx=Thai}\p{scx=Lao}\p{scx=Khmer}"
    r"\p{scx=Myanmar}]"
)


def _reference_tokenize(s: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(s):
        if not _WORD_CHAR.match(s[i]):
            i += 1
            continue
        j = i + 1
        if _SPACELESS_CHAR.match(s[i]):
            while j < len(s) and _MARK.match(s[j]):
                j += 1
        else:
            while j < len(s) and _WORD_CHAR.match(s[j]) and not _SPACELESS_CHAR.match(s[j]):
                j += 1
        norm = normalize(s[i:j])
        if norm:
            tokens.append(Token(norm, i, j))
        i = j
    return tokens


_MIXED = st.text(
    st.one_of(
        st.sampled_from(" ,.-'’_\n\t—"),
        st.sampled_from("aZéÉß\u0301\u0308ıİłØ"),
        st.sampled_from("ТокаевЖ习近平はラーメ한국กิ"),
        st.characters(codec="utf-8"),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(_MIXED)
@example("e\u0301te\u0301")
@example("Ω\u0345")
@example("x\u0e34y")
def test_tokenize_agrees_with_reference(s: str) -> None:
    """Whatever fast path tokenize() takes, it returns what the specification says, char by char."""
    assert tokenize(s) == _reference_tokenize(s)


@settings(max_examples=300, deadline=None)
@given(_MIXED)
@example("ǿ")  # strips to "ø", which folds to "o"
@example("\u0345")  # casefolds to iota only after decomposition
def test_normalize_is_idempotent_and_nfc(s: str) -> None:
    """normalize() returns NFC text that normalises to itself."""
    once = normalize(s)
    assert normalize(once) == once
    assert unicodedata.is_normalized("NFC", once)


_LETTERS = "abcdefghijklmnopqrstuvwxyzéèêëçñöüåáíóúãõžšč"


@given(st.text(st.sampled_from(_LETTERS), min_size=1, max_size=12))
def test_normalize_ignores_case_and_accents(word: str) -> None:
    """Upper-casing a word, or stripping or decomposing its accents, keeps its normal form."""
    stripped = "".join(
        c for c in unicodedata.normalize("NFD", word) if not unicodedata.combining(c)
    )
    assert normalize(word.upper()) == normalize(word) == normalize(stripped)
    assert normalize(unicodedata.normalize("NFD", word)) == normalize(word)


@settings(max_examples=400, deadline=None)
@given(TEXTS)
@example("\U00011d8a")
@example("ab \U00011d8a c a\U00011d8a \u0903")
def test_norms_fast_path_agrees_with_split_words(text: str) -> None:
    """`norms` (no offsets, fast) yields exactly the words `split_words` yields, in order."""
    assert norms(text) == split_words(text).norms


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_word_spans_shortcut_agrees_with_split_words(text: str) -> None:
    """When `word_spans` answers, its offsets are exactly those of `split_words`."""
    spans = word_spans(text)
    words = split_words(text)
    if spans is not None:
        assert spans == (words.starts, words.ends)


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_ascii_words_stand_where_split_words_finds_them(text: str) -> None:
    """When `ascii_words` answers, its words are those of `split_words`, at their offsets."""
    spaced = ascii_words(text)
    words = split_words(text)
    if spaced is not None:
        assert len(spaced) == len(text)
        assert spaced.decode("ascii").split() == words.norms
        for norm, start, end in zip(words.norms, words.starts, words.ends, strict=True):
            assert spaced[start:end].decode("ascii") == norm


@settings(max_examples=400, deadline=None)
@given(TEXTS)
@example("ab \U00011d8a c a\U00011d8a \u0903")
def test_spaced_norms_is_norms_and_ascii_words_at_once(text: str) -> None:
    """`spaced_norms` gives what `norms` and `ascii_words` give, each on its own."""
    assert spaced_norms(text) == (norms(text), ascii_words(text))
