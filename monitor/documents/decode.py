"""Bytes of a text document -> str, whatever their encoding.

``decode_text`` never raises and never returns NUL characters; newlines come back as ``\\n``. The
order of attempts, from most to least certain:

1. a byte order mark (UTF-8, UTF-16, UTF-32) names the encoding;
2. bytes that are valid UTF-8 are UTF-8 (a legacy 8-bit text is almost never valid UTF-8);
3. charset_normalizer, when it recognised a language in the text;
4. for a short text where it did not, a guess from the shape of the bytes (see ``_guess_short``);
5. UTF-8 with replacement characters.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable

from charset_normalizer import CharsetMatch, from_bytes

_BOMS: tuple[tuple[bytes, str], ...] = (
    # UTF-32 first: its little-endian BOM starts with the UTF-16 one.
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# Below this, charset_normalizer's language model has too few letters to go on: many code pages
# decode the bytes into equally "coherent" nonsense and it picks one by name order.
_MIN_COHERENCE = 0.1

# Printable ASCII and whitespace: every text file we read is in an ASCII-compatible encoding, so a
# candidate (UTF-16 without BOM, EBCDIC) that decodes these bytes differently is a false positive.
_ASCII_PROBE = bytes(range(0x20, 0x7F)) + b"\t\n\r"

# Single-byte code pages whose letters live in 0xC0-0xFF, cp1251 first: it is by far the most common
# of them in the Russian and Central Asian news this tool reads.
_NON_LATIN_CODE_PAGES = ("cp1251", "koi8_r", "koi8_u", "iso8859_5", "mac_cyrillic", "cp1253")


def decode_text(data: bytes) -> str:
    """Decode ``data`` into text with NULs removed and newlines normalised to ``\\n``."""
    text = _decode(data)
    return text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")


def _decode(data: bytes) -> str:
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    best = _best(from_bytes(data))
    if best is not None and best.coherence >= _MIN_COHERENCE:
        return str(best)
    guess = _guess_short(data)
    if guess is not None:
        return guess
    if best is not None:
        return str(best)
    return data.decode("utf-8", errors="replace")


def _guess_short(data: bytes) -> str | None:
    """Decode a text too short for language detection by the shape of its non-ASCII bytes.

    A Cyrillic (or Greek) text in a single-byte code page is mostly bytes 0xC0-0xFF, and they
    outnumber the ASCII letters; charset_normalizer chooses among those code pages only, and cp1251
    wins ties. A Latin text with accents has a few high bytes among many ASCII letters: cp1252, the
    Western default that also reads latin-1, is the likeliest.
    """
    high = [byte for byte in data if byte >= 0x80]
    if not high:
        return None
    ascii_letters = sum(1 for byte in data if 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A)
    upper_half = sum(1 for byte in high if byte >= 0xC0)
    if upper_half >= 0.9 * len(high) and len(high) >= ascii_letters:
        best = _best(from_bytes(data, cp_isolation=list(_NON_LATIN_CODE_PAGES)), prefer="cp1251")
        return str(best) if best is not None else data.decode("cp1251", errors="replace")
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        # One of the five bytes cp1252 leaves undefined: not a Western text after all.
        return None


def _best(matches: Iterable[CharsetMatch], prefer: str = "cp1252") -> CharsetMatch | None:
    """The least chaotic, most coherent ASCII-compatible candidate; ``prefer`` breaks ties."""
    candidates = [match for match in matches if _ascii_compatible(match.encoding)]
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda m: (round(m.chaos, 2), -round(m.coherence, 2), m.encoding != prefer),
    )


def _ascii_compatible(encoding: str) -> bool:
    try:
        return _ASCII_PROBE.decode(encoding) == _ASCII_PROBE.decode("ascii")
    except (UnicodeDecodeError, LookupError):
        return False
