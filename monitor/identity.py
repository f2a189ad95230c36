"""Article identity: the canonical form of a URL, so one story under two spellings is one article;
and a fingerprint of a text, so that rewrites of one story by several outlets can be told apart
from other stories.

Tracking parameters (utm_*, fbclid, gclid, ...) are removed, the fragment dropped, the scheme and
host lowercased, a default port removed. Only http(s) URLs have a canonical form.
"""

from __future__ import annotations

import struct
import zlib
from collections import Counter
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
    # Each feature is 64 bits: a CRC-32 of the run, and a CRC-32 seeded with the first. For
    # each bit, how many features have it set: the features' bytes at each of the 8 byte
    # positions are counted (in C), and a byte's count adds to its bits' 16-bit lanes.
    data = list(map(str.encode, runs))
    low = list(map(zlib.crc32, data))
    high = list(map(zlib.crc32, data, low))
    packed = [struct.pack(f"<{len(low)}I", *low), struct.pack(f"<{len(high)}I", *high)]
    counts = [
        sum(number * _LANES[byte] for byte, number in Counter(half[position::4]).items())
        for half in packed
        for position in range(4)
    ]
    most = len(runs) // 2
    value = 0
    for chunk, lanes in enumerate(counts):
        for bit in range(8):
            if (lanes >> (16 * bit)) & 0xFFFF > most:
                value |= 1 << (8 * chunk + bit)
    return value - (1 << FINGERPRINT_BITS) if value >> (FINGERPRINT_BITS - 1) else value


def distance(a: int, b: int) -> int:
    """How many of the 64 bits of two fingerprints differ."""
    return ((a ^ b) & ((1 << FINGERPRINT_BITS) - 1)).bit_count()


_LANES = [sum(1 << (16 * bit) for bit in range(8) if byte >> bit & 1) for byte in range(256)]
"""A byte's bits spread into 16-bit lanes (bit i at 16 * i): counts up to 65,535 features."""
