"""Article identity: the canonical form of a URL, so one story under two spellings is one article;
and a fingerprint of a text, so that rewrites of one story by several outlets can be told apart
from other stories.

Tracking parameters (utm_*, fbclid, gclid, ...) are removed, the fragment dropped, the scheme and
host lowercased, a default port removed. Only http(s) URLs have a canonical form.
"""

from __future__ import annotations

import struct
import zlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from monitor.matching.text import norms

_TRACKING = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gclsrc",
        "msclkid",
        "mc_cid",
        "mc_eid",
        "igshid",
        "yclid",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "ref_src",
        "cmpid",
    }
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str | None) -> str | None:
    """The canonical form of an http(s) URL, or None for anything else."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    query = urlencode(
        [
            (key, value)
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
            if not key.lower().startswith("utm_") and key.lower() not in _TRACKING
        ]
    )
    return urlunsplit((scheme, host, parts.path or "/", query, ""))


# -- near duplicates ---------------------------------------------------------------------------

FINGERPRINT_BITS = 64
_SHINGLE = 3
_MAX_WORDS = 20_000
"""Words of a text that count; the rest add nothing a rewrite would not show already."""
"""Words per feature: three-word runs tell a rewrite (some sentences changed) from another story
on the same subject (the same words, in other sentences)."""


def fingerprint(text: str) -> int | None:
    """A 64-bit SimHash of ``text``'s three-word runs (Charikar's sketch): two texts that share
    most of their runs differ in few bits, so the number of differing bits (:func:`distance`)
    tells a rewrite of a story from another story. Stable across processes (CRC-32 features, not
    Python's salted ``hash``); signed, so that it fits a 64-bit database column. None for a text
    of fewer than three words.
    """
    words = norms(text)[:_MAX_WORDS]
    if len(words) < _SHINGLE:
        return None
    runs = set(map(" ".join, zip(words, words[1:], words[2:], strict=False)))
    # Each feature is 64 bits: a CRC-32 of the run, and a CRC-32 seeded with the first. Bit b
    # of the sketch is set when most features have it: the features' bytes at each of the 8
    # byte positions are cut out, and for each of a byte's 8 bits, translating every byte to
    # that bit (0 or 1) and counting the ones does the counting in C.
    data = list(map(str.encode, runs))
    low = list(map(zlib.crc32, data))
    high = list(map(zlib.crc32, data, low))
    most = len(runs) // 2
    value = 0
    for half, words32 in enumerate((low, high)):
        packed = struct.pack(f"<{len(words32)}I", *words32)
        for position in range(4):
            column = packed[position::4]
            for bit, table in enumerate(_BIT_OF):
                if column.translate(table).count(1) > most:
                    value |= 1 << (32 * half + 8 * position + bit)
    return value - (1 << FINGERPRINT_BITS) if value >> (FINGERPRINT_BITS - 1) else value


def distance(a: int, b: int) -> int:
    """How many of the 64 bits of two fingerprints differ."""
    return ((a ^ b) & ((1 << FINGERPRINT_BITS) - 1)).bit_count()


_BIT_OF = [bytes(byte >> bit & 1 for byte in range(256)) for bit in range(8)]
"""For each bit of a byte, a translation table from a byte to that bit's value."""
