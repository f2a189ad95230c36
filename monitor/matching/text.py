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
from itertools import accumulate, compress
from operator import add
from typing import NamedTuple

import regex

__all__ = [
    "Token",
    "Words",
    "ascii_words",
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


# Every byte that is not an ASCII letter or digit becomes a space, so bytes.split() finds words;
# capitals become small letters on the way.
_ASCII_TABLE = bytes(
    ord(chr(c).lower()) if chr(c).isascii() and chr(c).isalnum() else 0x20 for c in range(256)
)
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def norms(s: str) -> list[str]:
    """The normalised words of ``s`` without offsets: ``split_words(s).norms``, faster.

    Matching needs offsets only for the few words that hit, so the common path skips them. Text
    whose non-ASCII characters all fold to ASCII (accented Latin letters, curly quotes, dashes)
    takes an ASCII path: see :func:`_to_ascii`.
    """
    if not s.isascii():
        folded = _to_ascii(s)
        if folded is None:
            return split_words(s).norms
        s = folded[0]
    return s.encode("ascii").translate(_ASCII_TABLE).decode("ascii").split()


def _to_ascii(s: str) -> tuple[str, bool] | None:
    """``s`` with each non-ASCII character replaced by its ASCII fold, and whether the words of
    the result are those of :func:`split_words` at the same offsets; None if a character has no
    fold.

    An accented letter folds to its base letter(s), a combining mark to nothing and a separator
    ("’", "–") to a space: the words of the result are the normalised words of ``s``, since
    decomposing and dropping the marks is what normalising such words does. Each distinct
    character is replaced with one ``str.replace`` (a scan in C); news text has a handful.
    """
    aligned = True
    for char in set(_NON_ASCII.findall(s)):
        known = _ascii_fold(char)
        if known is None:
            return None
        fold, same_place = known
        aligned = aligned and same_place
        s = s.replace(char, fold)
    return s, aligned


_ALL_MARKS = regex.compile(r"[\p{Mn}\p{Me}]+")
_FOLDS: dict[str, tuple[str, bool] | None] = {}


def _ascii_fold(char: str) -> tuple[str, bool] | None:
    """What ``char`` becomes in :func:`_to_ascii`, and whether that is one character that plays
    the same part (letter or separator) in :func:`split_words`; None if it does not fold."""
    try:
        return _FOLDS[char]
    except KeyError:
        pass
    plain = _ALL_MARKS.sub("", unicodedata.normalize("NFKD", char))
    known: tuple[str, bool] | None
    if regex.match(r"\p{M}", char):
        # What decomposing leaves of a mark: nothing for a combining one. A spacing mark (Mc,
        # as in Devanagari or Gunjala Gondi) stays, part of its word as split_words keeps it:
        # it has no ASCII fold.
        known = (plain, False) if plain.isascii() else None
    elif _ANY_WORD_CHAR.match(char) and not _HAS_SPACELESS.match(char):
        letters = plain.isascii() and plain.isalnum() and normalize(char) == plain.lower()
        known = (plain, len(plain) == 1) if letters else None
    elif not any(c.isalnum() or _ANY_WORD_CHAR.match(c) for c in plain):
        known = " ", True  # a separator stays one ("’", "–")
    else:
        known = None
    if len(_FOLDS) < 10_000:
        _FOLDS[char] = known
    return known


def ascii_words(s: str) -> bytes | None:
    """``s`` as ASCII bytes at the same offsets: each of its words normalised where ``s`` has it,
    and a space for every other character; None unless ``s`` folds to ASCII one character for
    one (see :func:`_to_ascii`).

    Its words, split on spaces, are :func:`norms` of ``s``: the offsets of the few words that
    hit can be found by searching for them, without working out those of every word.
    """
    folded = s if s.isascii() else _to_ascii(s)
    if isinstance(folded, tuple) and folded[1]:
        folded = folded[0]
    if isinstance(folded, str):
        return folded.encode("ascii").translate(_ASCII_TABLE)
    return None


def spaced_norms(s: str) -> tuple[list[str], bytes | None]:
    """:func:`norms` of ``s``, and :func:`ascii_words` of it (or None, as that gives), folding
    ``s`` once for both: a field being matched needs both."""
    if s.isascii():
        spaced = s.encode("ascii").translate(_ASCII_TABLE)
        return spaced.decode("ascii").split(), spaced
    folded = _to_ascii(s)
    if folded is None:
        return split_words(s).norms, None
    text, aligned = folded
    spaced = text.encode("ascii").translate(_ASCII_TABLE)
    return spaced.decode("ascii").split(), spaced if aligned else None


def word_spans(s: str) -> tuple[list[int], list[int]] | None:
    """The ``(starts, ends)`` of :func:`split_words` without normalising each word, or None when
    the shortcut cannot be sure to agree (text with combining marks, some of which normalise to
    nothing and drop their word). Offsets are needed only for hits, and this is their hot path.

    Text that folds to ASCII one character for one (see :func:`_to_ascii`) is split on spaces
    after translating every non-word byte to one, and the offsets summed up, all in C.
    """
    spaced = ascii_words(s)
    if spaced is not None:
        pieces = spaced.split(b" ")
        # Piece i starts after the pieces before it and one space after each.
        starts = list(compress(accumulate(map(_PLUS_ONE, map(len, pieces)), initial=0), pieces))
        return starts, list(map(add, starts, map(len, filter(None, pieces))))
    if _ALL_MARKS.search(s):
        return None
    parts = _pattern_for(s).split(s)
    offsets = list(accumulate(map(len, parts)))
    return offsets[0:-1:2], offsets[1::2]


_PLUS_ONE = (1).__add__


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
