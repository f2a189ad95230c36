"""The seed layout of .txt files: optional section label, title, body."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.documents.txt import parse_txt
from monitor.errors import DocumentError

SEED = Path(__file__).resolve().parents[2] / "seeds" / "000_b84c25b2169af3e7.txt"


def test_customer_seed_sample() -> None:
    """The customer's sample reads as label "Politics", the headline, then the article body."""
    [article] = parse_txt(SEED.read_bytes())
    assert article.tags == ("Politics",)
    assert article.title == "Kazakhstan orders to shoot protesters without warning"
    assert article.body.startswith("Kazakh President Kassym-Jomart Tokayev")
    assert article.body.count("\n") >= 10


@pytest.mark.parametrize(
    ("text", "tags", "title", "body"),
    [
        pytest.param("Politics\nHeadline\nBody", ("Politics",), "Headline", "Body", id="label"),
        pytest.param(
            "Central Asia News\nHeadline\nBody", ("Central Asia News",), "Headline", "Body"
        ),
        pytest.param(
            "Four words at most\nHeadline\nBody", ("Four words at most",), "Headline", "Body"
        ),
        pytest.param(
            "Five words is too many\nBody", (), "Five words is too many", "Body", id="five-words"
        ),
        pytest.param("Breaking: news\nBody", (), "Breaking: news", "Body", id="colon"),
        pytest.param("It happened.\nBody", (), "It happened.", "Body", id="full-stop"),
        pytest.param("Really?\nBody", (), "Really?", "Body", id="question"),
        pytest.param("Wait…\nBody", (), "Wait…", "Body", id="ellipsis"),
        pytest.param("Politics\n", (), "Politics", "", id="label-needs-a-next-line"),
        pytest.param(
            "\n\n  Politics  \n\n  Headline  \n\nPara one  \n\nPara two\n\n",
            ("Politics",),
            "Headline",
            "Para one\n\nPara two",
            id="blank-lines-and-spaces",
        ),
        pytest.param("Politics\nHeadline", ("Politics",), "Headline", "", id="no-body"),
    ],
)
def test_seed_layout(text: str, tags: tuple[str, ...], title: str, body: str) -> None:
    """A short first line without sentence punctuation is a label; the next line is the title."""
    [article] = parse_txt(text.encode())
    assert (article.tags, article.title, article.body) == (tags, title, body)


@pytest.mark.parametrize(
    ("name", "tags", "title", "body"),
    [
        pytest.param(
            "russian_cp1251.txt",
            ("Политика",),
            "Президент Токаев приказал открывать огонь без предупреждения",
            "Протестующие в Алматы вышли на улицы.",
            id="cp1251-crlf",
        ),
        pytest.param(
            "french_latin1.txt",
            ("Économie",),
            "Le président défend la réforme des retraites",
            "Malgré les grèves à Paris, le gouvernement maintient le calendrier.",
            id="latin-1",
        ),
        pytest.param(
            "weather_utf16.txt",
            ("Weather",),
            "Storm hits the coast",
            "Winds reached 150 km/h — a record for Almaty.",
            id="utf-16-bom",
        ),
    ],
)
def test_encoded_fixtures(
    fixture_bytes: Callable[[str], bytes], name: str, tags: tuple[str, ...], title: str, body: str
) -> None:
    """Seed files in legacy encodings read the same as UTF-8 ones."""
    [article] = parse_txt(fixture_bytes(name))
    assert (article.tags, article.title, article.body) == (tags, title, body)


@pytest.mark.parametrize("name", ["empty.txt", "blank.txt"])
def test_empty_file_is_an_error(fixture_bytes: Callable[[str], bytes], name: str) -> None:
    """An empty or whitespace-only file raises DocumentError("empty document")."""
    with pytest.raises(DocumentError, match=r"^empty document$"):
        parse_txt(fixture_bytes(name))
