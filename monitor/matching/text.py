"""Text normalisation and tokenisation, shared by rule terms and article text.

Both sides of a match go through the same two functions, so whatever equivalence they define
(case, accents, compatibility forms, punctuation between words) holds symmetrically:

* :func:`normalize` maps a string to its comparison form: NFKC, casefolded, combining marks
  removed, a few letters with strokes folded to their base letter, result in NFC.
* :func:`tokenize` splits a string into words (runs of letters, digits and combining marks) with
  character offsets into the original string; every other character separates words. In scripts
  written without spaces between words (Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar) each
  character is a word of its own, so a phrase of such characters matches inside a longer run.

:func:`split_words` is the column-oriented form of :func:`tokenize` that the engine uses: it
skips building one object per token, which is most of the cost on long articles.
"""

from __future__ import annotations

import re
import unicodedata
from functools import partial
from itertools import accumulate
from typing import NamedTuple

import regex

__all__ = [
    "Token",
    "Words",
    "fold_accents",
    "normalize",
    "norms",
    "split_words",
    "tokenize",
    "word_spans",
]

# Scripts written without spaces between words. Script_Extensions (scx) rather than Script so
# that marks shared by kana and kanji (the prolonged sound mark, the iteration marks) count too.
_SPACELESS = (
    r"\p{scx=Han}\p{scx=Hiragana}\p{scx=Katakana}"
    r"\p{scx=Thai}\p{scx=Lao}\p{scx=Khmer}\p{scx=Myanmar}"
)
_WORD = r"\p{L}\p{N}\p{M}"

# The general tokenizer. Every split pattern here captures the words, so
# ``parts == [sep, word, sep, word, ..., sep]`` and offsets follow from the part lengths.
_WORDS = regex.compile(rf"([{_WORD}]+)")
# Each spaceless-script character, with the combining marks after it, is a word by itself.
_WORDS_SPACELESS = regex.compile(
    rf"((?:[[{_SPACELESS}]&&[{_WORD}]])\p{{M}}*|[[{_WORD}]--[{_SPACELESS}]]+)", regex.V1
)
# Fast paths with the stdlib engine, several times faster than `regex` on property classes.
# ``[^\W_]`` is "letter or digit" in `re`'s own Unicode tables, which may not agree with
# ``regex``'s; _re_agrees() checks that, on the characters actually present, before it is used.
_ASCII_WORDS = re.compile(r"([a-z0-9]+)")
_RE_WORDS = re.compile(r"([^\W_]+)")
_RE_WORD_CHAR = re.compile(r"[^\W_]")
_HAS_SPACELESS = regex.compile(rf"[{_SPACELESS}]")
_ALL_LETTERS_OR_DIGITS = regex.compile(r"[\p{L}\p{N}]*")
_ANY_WORD_CHAR = regex.compile(rf"[{_WORD}]")

# In Thai, Lao, Khmer, Myanmar and the Indic scripts, combining marks are vowels and tones:
# removing them would turn "ดี" (good) into "ด", which occurs in "ดอกไม้" (flower). Marks are
# accents only on the other scripts, so they are removed everywhere except after those letters.
_MARKS_ARE_LETTERS = (
    r"\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}\p{Tibetan}\p{Devanagari}\p{Bengali}\p{Gurmukhi}"
    r"\p{Gujarati}\p{Oriya}\p{Tamil}\p{Telugu}\p{Kannada}\p{Malayalam}\p{Sinhala}"
)
_MARKS = regex.compile(rf"(?<![{_MARKS_ARE_LETTERS}]\p{{M}}*)[\p{{Mn}}\p{{Me}}]+")
# Letters that carry a stroke, the dotless i (U+0131) and ligatures have no canonical
# decomposition, so removing combining marks leaves them alone; English-language news writes
# them as base letters ("Walesa", "Kilicdaroglu", "Orsted"), and a missed alert costs more than
# a rare false match.
_FOLD = (
    ("ł", "l"),
    ("ø", "o"),
    ("đ", "d"),
    ("ħ", "h"),
    ("\u0131", "i"),
    ("ŧ", "t"),
    ("æ", "ae"),
    ("œ", "oe"),
)

# Joins words so a whole article's words normalise in one call; normalisation never produces
# or consumes NUL, and NUL is never part of a word, so splitting on it restores the words.
_JOIN = "\x00"


class Token(NamedTuple):
    """One word: its normalised form and its ``[start, end)`` offsets in the original string."""

    norm: str
    start: int
    end: int


class Words(NamedTuple):
    """The tokens of a string as parallel lists (``norms[i]`` spans ``starts[i]:ends[i]``)."""

    norms: list[str]
    starts: list[int]
    ends: list[int]


_new_token = partial(tuple.__new__, Token)


def fold_accents(s: str) -> str:
    """``s`` without accents and compatibility forms, but with its case: for case-sensitive terms.

    "Société" -> "Societe", "ＵＳ" -> "US"; NFC.
    """
    if s.isascii():
        return s
    stripped = _MARKS.sub("", unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", s)))
    return unicodedata.normalize("NFC", stripped)


def normalize(s: str) -> str:
    """Return the comparison form of ``s``: case-, accent- and compatibility-insensitive, NFC.

    "ERDOĞAN" -> "erdogan", "Stéphane" -> "stephane", "Токаев" -> "токаев", "ß" -> "ss".
    Applied to one word it may return "" (a lone combining mark); :func:`tokenize` drops those.
    """
    if s.isascii():
        return s.lower()
    folded = unicodedata.normalize("NFKC", s).casefold()
    stripped = _MARKS.sub("", unicodedata.normalize("NFKD", folded))
    # Fold after stripping, since "ǿ" only becomes "ø" then; casefold again because NFKD can
    # expose a character that casefold maps (U+0345 -> U+03B9).
    for letter, base in _FOLD:
        # str.replace scans in C; str.translate looks every character up in a dict.
        stripped = stripped.replace(letter, base)
    return unicodedata.normalize("NFC", stripped.casefold())


def split_words(s: str) -> Words:
    """Tokenize ``s`` into parallel lists of normalised words and their offsets in ``s``.

    Same tokens as :func:`tokenize`, without one object per token.
    """
    if s.isascii():
        # Lowercasing ASCII keeps every offset, and ASCII words are already normalised.
        parts = _ASCII_WORDS.split(s.lower())
        offsets = list(accumulate(map(len, parts)))
        return Words(parts[1::2], offsets[0:-1:2], offsets[1::2])
    parts = _pattern_for(s).split(s)
    offsets = list(accumulate(map(len, parts)))
    starts, ends = offsets[0:-1:2], offsets[1::2]
    if not starts:
        # Splitting "" below would give one empty word, not none.
        return Words([], [], [])
    joined = _JOIN.join(parts[1::2])
    norms = (joined.lower() if joined.isascii() else normalize(joined)).split(_JOIN)
    if "" in norms:
        kept = [(n, a, b) for n, a, b in zip(norms, starts, ends, strict=True) if n]
        return Words([k[0] for k in kept], [k[1] for k in kept], [k[2] for k in kept])
    return Words(norms, starts, ends)


# Every byte that is not an ASCII letter or digit becomes a space, so bytes.split() finds words.
_ASCII_TABLE = bytes(c if chr(c).isascii() and chr(c).isalnum() else 0x20 for c in range(256))
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def norms(s: str) -> list[str]:
    """The normalised words of ``s`` without offsets: ``split_words(s).norms``, faster.

    Matching needs offsets only for the few words that hit, so the common path skips them. Text
    whose only non-ASCII characters separate words (curly quotes, dashes) takes the ASCII path
    with those characters replaced by "?", which separates words just the same.
    """
    if not s.isascii():
        others = set(_NON_ASCII.findall(s))
        if not all(_folds_to_ascii(char) for char in others):
            return split_words(s).norms
        if any(_ANY_WORD_CHAR.match(char) for char in others):
            # Every non-ASCII character is an accented Latin letter (or a compatibility form of
            # an ASCII one), a combining mark, or a separator: decomposing and dropping the marks
            # gives the same words as normalising each word, at a fraction of the cost.
            s = _ALL_MARKS.sub("", unicodedata.normalize("NFKD", s))
    # Otherwise the only non-ASCII characters separate words ("’", "–"), and "?" does too.
    data = s.encode("ascii", "replace").lower().translate(_ASCII_TABLE)
    return data.decode("ascii").split()


_ALL_MARKS = regex.compile(r"[\p{Mn}\p{Me}]+")
_FOLDS: dict[str, bool] = {}


def _folds_to_ascii(char: str) -> bool:
    """Whether ``char`` takes part in words exactly as its ASCII decomposition would."""
    known = _FOLDS.get(char)
    if known is None:
        plain = _ALL_MARKS.sub("", unicodedata.normalize("NFKD", char))
        if regex.match(r"\p{M}", char):
            known = True  # dropped either way (alone it normalises to nothing)
        elif _ANY_WORD_CHAR.match(char) and not _HAS_SPACELESS.match(char):
            known = plain.isascii() and plain.isalnum() and normalize(char) == plain.lower()
        else:
            # A separator stays one ("’", "–"): the ASCII step turns it into "?".
            known = not any(c.isalnum() or _ANY_WORD_CHAR.match(c) for c in plain)
        if len(_FOLDS) < 10_000:
            _FOLDS[char] = known
    return known


def word_spans(s: str) -> tuple[list[int], list[int]] | None:
    """The ``(starts, ends)`` of :func:`split_words` without normalising each word, or None when
    the shortcut cannot be sure to agree (text with combining marks, some of which normalise to
    nothing and drop their word). Offsets are needed only for hits, and this is their hot path."""
    if not s.isascii() and _ALL_MARKS.search(s):
        return None
    parts = _ASCII_WORDS.split(s.lower()) if s.isascii() else _pattern_for(s).split(s)
    offsets = list(accumulate(map(len, parts)))
    return offsets[0:-1:2], offsets[1::2]


def tokenize(s: str) -> list[Token]:
    """Split ``s`` into words, each with its normalised form and offsets into ``s``.

    Words are runs of letters, digits and combining marks; anything else separates them
    ("China's" -> china, s; "troop-transports" -> troop, transports). Each character of a script
    written without spaces is a word by itself. Words that normalise to "" are dropped.
    """
    words = split_words(s)
    return list(map(_new_token, zip(words.norms, words.starts, words.ends, strict=True)))


def _pattern_for(s: str) -> re.Pattern[str] | regex.Pattern[str]:
    """The cheapest split pattern that gives the general tokenizer's result on ``s``."""
    # The distinct characters decide it; in Latin-script news they are a hundred or so, so the
    # checks below cost next to nothing.
    extra = "".join(set(s))
    if _HAS_SPACELESS.search(extra):
        return _WORDS_SPACELESS
    if _re_agrees(extra):
        return _RE_WORDS
    return _WORDS


def _re_agrees(chars: str) -> bool:
    """Whether `re`'s letter-or-digit class splits ``chars`` exactly as the general pattern."""
    re_word = "".join(_RE_WORD_CHAR.findall(chars))
    re_other = _RE_WORD_CHAR.sub("", chars)
    # Combining marks fail the second test: `re` does not count them as word characters.
    return (
        _ALL_LETTERS_OR_DIGITS.fullmatch(re_word) is not None
        and _ANY_WORD_CHAR.search(re_other) is None
    )
