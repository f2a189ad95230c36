"""The query parser against its plain reference: the same tree or the same error for any query.

The parser takes shortcuts for speed (one regular expression for most tokens, terms parsed without
the full descent, the tree of a query built from an earlier one of the same shape); the reference
in ``query_reference.py`` takes none. Queries are built from fragments chosen for the corners of
the grammar: every error, operators glued to words, odd whitespace and digits, nesting runs that
reach the depth and NEAR limits, and pairs of queries of one shape.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.matching import query as q
from tests.matching import query_reference as reference

Parse = Callable[[str, Callable[[str], bool] | None], q.Node]

FRAGMENTS = [
    # words, prefixes, and bare words that are not plain words
    "a",
    "Putin",
    "ERDOĞAN",
    "习近平",
    "x9",
    "٣",
    "a_b",
    "_",
    "shoot*",
    "sh*ot",
    "*",
    "**",
    "troop-transports",
    "a.b",
    "x/y",
    "foo@bar",
    "!!!",
    "a-",
    "b+",
    # operators, and words that only look like them
    "AND",
    "OR",
    "NOT",
    "NEAR",
    "NEAR/",
    "NEAR/2",
    "NEAR/0",
    "NEAR/100",
    "NEAR/101",
    "NEAR/0002",
    "NEAR/x",
    "NEAR/٣",
    "NEAR/2x",
    "NEARBY",
    "ANDY",
    "NOT-x",
    "OR:a",
    "and",
    # parentheses and phrases
    "(",
    ")",
    '"',
    '"a b"',
    '"shoot* without"',
    '"sh*ot it"',
    '""',
    '"!!"',
    '"a b"~',
    '"a b"~2',
    '"a b"~50',
    '"a b"~51',
    '"a b"~007',
    '"a b"~2~3',
    '"a b"~2.5',
    '"a b"~2)',
    '"a"~٣',
    '"a"b',
    # Lucene habits
    "~",
    "~2",
    "word~2",
    "-",
    "-a",
    "--a",
    "+",
    "+a",
    "-(",
    '-"a"',
    # fields
    ":",
    "a:b",
    ":a",
    "title:",
    "title:a",
    "body:(",
    'url:"a b"',
    "source:@tokayev",
    "titel:a",
    "TITLE:a",
    "http://x",
    "x1:a",
    # actors and regular expressions
    "@",
    "@tokayev",
    "@nobody",
    "@tokayev:a",
    "@(",
    "/",
    "//",
    "/x/",
    "/a(/",
    r"/a\/b/",
    r"/a\\/",
    "/a\\",
    "/a\\\n/",
    "\\",
    "/(a+)+$/",
    "/\\bKX-48\\d\\d\\b/",
]
SEPARATORS = [" ", " ", "", "  ", "\t", "\n", "\u00a0", "\x1c", "\u3000"]
PIECES = ["NOT ", "a ", "(", ")", " NEAR/1 ", " OR ", " AND ", "title:", '"a b"~2 ', "b NEAR/1 "]
ACTORS = {"tokayev"}.__contains__


def outcome(parse: Parse, text: str, known_actor: Callable[[str], bool] | None) -> object:
    """The tree of ``text``, or the reason and column of its QueryError."""
    try:
        return parse(text, known_actor)
    except q.QueryError as exc:
        return ("error", exc.reason, exc.column)


def assert_same(text: str) -> None:
    for known_actor in (ACTORS, None):
        expected = outcome(reference.parse_query, text, known_actor)
        assert outcome(q.parse_query, text, known_actor) == expected, text


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(FRAGMENTS), st.sampled_from(SEPARATORS)), max_size=12))
def test_queries_of_fragments_parse_as_the_reference_parses_them(
    fragments: list[tuple[str, str]],
) -> None:
    """Any sequence of fragments gives the reference's tree, or its error at its column."""
    assert_same("".join(fragment + separator for fragment, separator in fragments))


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet='aA ()"~/@\\:*-+NOTRDE29٣\u00a0', max_size=40))
def test_queries_of_characters_parse_as_the_reference_parses_them(text: str) -> None:
    """Any string of the characters the lexer looks at gives the reference's result."""
    assert_same(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PIECES), st.integers(1, 400)), max_size=6))
@example([("(", 100), ("a ", 1)])
@example([("(", 101), ("a ", 1)])
@example([("(", 101), ("NOT ", 1), ("a ", 1)])
def test_deep_queries_parse_as_the_reference_parses_them(runs: list[tuple[str, int]]) -> None:
    """Long runs of operators and parentheses reach the depth and NEAR limits where it does."""
    assert_same("".join(piece * count for piece, count in runs)[: q.MAX_QUERY_LENGTH])


TERMS = [
    "a",
    "Putin",
    "shoot*",
    "sh*ot",
    "!!!",
    "troop-transports",
    '"a b"',
    '"a b"~2',
    '"!!"',
    '"sh*ot it"~3',
    "@tokayev",
    "@nobody",
    "/x/",
    "/a(/",
    "//",
]
"""Terms, some in error, to fill a query's shape with."""

Pieces = list[tuple[str, str]]
"""A query and a sibling of it, piece by piece: the same kinds of token in the same places."""


def _joined(left: Pieces, operator: tuple[str, str], right: Pieces) -> Pieces:
    return [*left, operator, *right] if operator[0] else [*left, *right]


def _grouped(prefix: tuple[str, str], inner: Pieces) -> Pieces:
    return [prefix, ("(", "("), *inner, (")", ")")]


OPERATORS = st.sampled_from(
    [("AND", "AND"), ("OR", "OR"), ("", ""), ("NEAR/2", "NEAR/2"), ("NEAR/2", "NEAR/3")]
)
PREFIXES = st.sampled_from([("", ""), ("NOT", "NOT"), ("title:", "title:"), ("title:", "body:")])
SIBLINGS = st.recursive(
    st.tuples(st.sampled_from(TERMS), st.sampled_from(TERMS)).map(lambda pair: [pair]),
    lambda inner: st.one_of(
        st.builds(_joined, inner, OPERATORS, inner),
        st.builds(_grouped, PREFIXES, inner),
    ),
    max_leaves=8,
)
"""Queries that mostly parse (a term may be in error, NEAR may have a wrong operand): a parsed
query leaves its shape for its sibling, which differs in its terms, a field or a NEAR/n."""


@settings(max_examples=500, deadline=None)
@given(SIBLINGS)
def test_queries_of_one_shape_parse_as_the_reference_parses_them(pieces: Pieces) -> None:
    """A query parsed from the shape of an earlier one gets its own terms, columns and errors."""
    q._SHAPES.clear()
    for which in (0, 1):
        assert_same(" ".join(piece[which] for piece in pieces if piece[which]))
