"""Language-dependent helpers for matching: Snowball stemmers and language detection.

Both are loaded lazily and cached, so a rule set that uses neither pays nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import snowballstemmer

STEMMER_LANGUAGES: frozenset[str] = frozenset(snowballstemmer.algorithms())
"""Names accepted by ``language:`` (english, russian, french, ...)."""

_MAX_CACHE = 200_000


@cache
def stemmer(language: str) -> Callable[[str], str]:
    """A function from a normalised word to its stem, memoised (news reuses its words)."""
    algorithm = snowballstemmer.stemmer(language)
    memo: dict[str, str] = {}

    def stem(word: str) -> str:
        found = memo.get(word)
        if found is None:
            if len(memo) > _MAX_CACHE:
                memo.clear()
            found = memo[word] = algorithm.stemWord(word)
        return found

    return stem


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code of ``text``'s language, or None when there is too little text."""
    sample = text[:4000]
    if sum(char.isalpha() for char in sample[:400]) < 20:
        return None
    import py3langid  # noqa: PLC0415 (loads numpy and a model: only when a rule needs it)

    code, _score = py3langid.classify(sample)
    return str(code)
