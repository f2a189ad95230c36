"""decode_text: bytes in any common encoding -> clean text."""

from __future__ import annotations

import codecs

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.documents.decode import decode_text

RUSSIAN = "Президент Токаев приказал открывать огонь без предупреждения. Протестующие в Алматы."
FRENCH = "Le président a déclaré que l'économie française était forte, malgré les grèves à Paris."


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(RUSSIAN.encode("cp1251"), RUSSIAN, id="cp1251-sentence"),
        pytest.param("Алматы".encode("cp1251"), "Алматы", id="cp1251-one-word"),
        pytest.param("Привет мир".encode("cp1251"), "Привет мир", id="cp1251-two-words"),
        pytest.param("Москва сегодня".encode("koi8-r"), "Москва сегодня", id="koi8-r-short"),
        pytest.param(FRENCH.encode("cp1252"), FRENCH, id="cp1252-sentence"),
        pytest.param(FRENCH.encode("latin-1"), FRENCH, id="latin-1-sentence"),
        pytest.param("Café".encode("latin-1"), "Café", id="latin-1-one-word"),
        pytest.param("Zürich".encode("latin-1"), "Zürich", id="latin-1-not-utf-16"),
        pytest.param("Le “mot” — dit".encode("cp1252"), "Le “mot” — dit", id="cp1252-quotes"),
        pytest.param("Ελληνικά νέα σήμερα".encode("cp1253"), "Ελληνικά νέα σήμερα", id="cp1253"),
        pytest.param("UTF-16 текст".encode("utf-16"), "UTF-16 текст", id="utf-16-bom-native"),
        pytest.param(
            codecs.BOM_UTF16_BE + "Big Endian текст".encode("utf-16-be"),
            "Big Endian текст",
            id="utf-16-be-bom",
        ),
        pytest.param("UTF-32 текст".encode("utf-32"), "UTF-32 текст", id="utf-32-bom"),
        pytest.param("с BOM".encode("utf-8-sig"), "с BOM", id="utf-8-bom-stripped"),
        pytest.param(b"plain ascii", "plain ascii", id="ascii"),
        pytest.param(b"", "", id="empty"),
    ],
)
def test_decodes_each_encoding(data: bytes, expected: str) -> None:
    """Each common encoding, even in a text of a word or two, decodes to the original text."""
    assert decode_text(data) == expected


def test_normalises_newlines_and_removes_nul() -> None:
    """CRLF and lone CR become LF and NUL characters are dropped."""
    assert decode_text(b"one\r\ntwo\rthree\x00\nfour") == "one\ntwo\nthree\nfour"


def test_invalid_bytes_do_not_raise() -> None:
    """Bytes valid in no encoding still decode, with replacement characters where needed."""
    text = decode_text(bytes(range(256)) * 3)
    assert "\x00" not in text
    assert "\r" not in text


@given(st.binary())
def test_any_bytes_decode_to_clean_text(data: bytes) -> None:
    """Whatever the bytes, the result is text with no NUL and no carriage return."""
    text = decode_text(data)
    assert "\x00" not in text
    assert "\r" not in text


@given(st.text())
def test_utf8_round_trips(text: str) -> None:
    """Any text encoded as UTF-8 decodes back to itself, newlines and NULs aside."""
    expected = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    if text.startswith("\ufeff"):
        # A leading U+FEFF is read as the UTF-8 byte order mark.
        expected = expected[1:]
    assert decode_text(text.encode("utf-8")) == expected
