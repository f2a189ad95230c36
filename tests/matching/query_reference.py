"""The query parser as it was before its lexer and parser were rewritten for speed: a reference.

It reads a query character by character and token by token, the plainest way to follow the
grammar in :mod:`monitor.matching.query`. The differential test in ``test_query_reference.py``
holds the fast parser to it, tree for tree and error for error (message and column).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import NamedTuple

import re2

from monitor.matching.query import (
    MAX_DEPTH,
    MAX_NEAR_DISTANCE,
    MAX_NEARS,
    MAX_QUERY_LENGTH,
    MAX_SLOP,
    QUERY_FIELDS,
    ActorRef,
    And,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    QueryError,
    Regex,
)
from monitor.matching.text import norms

# -- the lexer ----------------------------------------------------------------------------------

_BARE = re.compile(r'[^\s()"]+')
_NEAR = re.compile(r"NEAR/(\d+)")
_SLOP = re.compile(r"~(\d+)")


class _Token(NamedTuple):
    kind: str  # an operator, "(", ")", phrase, word, actor, regex, field or end
    text: str
    column: int
    number: int = 0  # NEAR distance or phrase slop (-1: none given)


def _lex(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(query):
        char = query[i]
        if char.isspace():
            i += 1
            continue
        if char in "()":
            token, i = _Token(char, char, i + 1), i + 1
        elif char == '"':
            token, i = _lex_phrase(query, i)
        elif char == "/":
            token, i = _lex_regex(query, i)
        elif char == "@":
            token, i = _lex_actor(query, i)
        else:
            token, i = _lex_bare(query, i)
        tokens.append(token)
    tokens.append(_Token("end", "", len(query) + 1))
    return tokens


def _lex_phrase(query: str, i: int) -> tuple[_Token, int]:
    end = query.find('"', i + 1)
    if end < 0:
        raise QueryError('unterminated phrase: expected a closing "', i + 1)
    slop, after = -1, end + 1
    if found := _SLOP.match(query, after):
        slop = _number(found.group(1), MAX_SLOP, "~n", after + 1)
        after = found.end()
        if query.startswith("~", after):
            raise QueryError("a phrase takes one ~n", after + 1)
        if after < len(query) and not query[after].isspace() and query[after] != ")":
            raise QueryError(f"expected a space or ')' after ~{slop}", after + 1)
    elif query.startswith("~", after):
        raise QueryError("expected a number of words after ~", after + 1)
    return _Token("phrase", query[i + 1 : end], i + 1, slop), after


def _number(digits: str, most: int, what: str, column: int) -> int:
    # Checked on the digits first: int() refuses strings of thousands of digits.
    if len(digits) > len(str(most)) or int(digits) > most:
        raise QueryError(f"{what} must be at most {most}", column)
    return int(digits)


def _lex_regex(query: str, i: int) -> tuple[_Token, int]:
    j = i + 1
    pattern: list[str] = []
    while j < len(query) and query[j] != "/":
        if query[j] == "\\" and j + 1 < len(query):
            # A backslash takes the next character with it, so in /a\\/ the last slash closes
            # the expression. Only an escaped slash loses its backslash: RE2 needs none there.
            pair = query[j : j + 2]
            pattern.append("/" if pair == "\\/" else pair)
            j += 2
        else:
            pattern.append(query[j])
            j += 1
    if j >= len(query):
        raise QueryError("unterminated regular expression: expected a closing /", i + 1)
    return _Token("regex", "".join(pattern), i + 1), j + 1


def _lex_actor(query: str, i: int) -> tuple[_Token, int]:
    found = _BARE.match(query, i + 1)
    if not found:
        raise QueryError("expected an actor id after @", i + 2)
    return _Token("actor", found.group(0), i + 1), found.end()


_OPERATORS = frozenset(("AND", "OR", "NOT", "NEAR"))


def _lex_bare(query: str, i: int) -> tuple[_Token, int]:
    found = _BARE.match(query, i)
    assert found is not None
    word, column = found.group(0), i + 1
    if word.isalnum() and word not in _OPERATORS:
        # Most bare words are just words: none of the characters the checks below look for.
        return _Token("word", word, column), found.end()
    if word[0] in "-+" and query[i + 1 : i + 2] not in ("", ")") and not query[i + 1].isspace():
        # Lucene's -word and +word: here '-' and '+' separate words, so "-troops" would find
        # troops, the opposite of what was meant.
        if word[0] == "-":
            instead = f"NOT {word[1:]}" if word[1:] else "NOT before the term"
            raise QueryError(f"use {instead}; '-' is not an operator here", column)
        instead = f"write {word[1:]}" if word[1:] else "drop the '+'"
        raise QueryError(f"{instead} (terms are ANDed); '+' is not an operator here", column)
    if near := _NEAR.fullmatch(word):
        distance = _number(near.group(1), MAX_NEAR_DISTANCE, "NEAR distance", column)
        return _Token("NEAR", word, column, distance), found.end()
    if word.startswith("NEAR/") or word == "NEAR":
        raise QueryError("expected NEAR/n, with n the most words allowed between", column)
    if word in ("AND", "OR", "NOT"):
        return _Token(word, word, column), found.end()
    name, colon, rest = word.partition(":")
    if colon and name in QUERY_FIELDS:
        # What follows the colon is lexed on the next turn ("title:word", 'title:"a b"').
        return _Token("field", name, column), i + len(name) + 1
    if colon and name.isalpha() and not rest.startswith("//"):
        fields = ", ".join(QUERY_FIELDS)
        raise QueryError(f"unknown field {name!r}: expected one of {fields}", column)
    if "~" in word:
        # Lucene's fuzzy word~2: '~' would only separate words, so "word~2" would be "word 2".
        raise QueryError("~n applies to quoted phrases", column + word.index("~"))
    return _Token("word", word, column), found.end()


# -- the parser ---------------------------------------------------------------------------------


def parse_query(query: str, known_actor: Callable[[str], bool] | None = None) -> Node:
    """Parse ``query``; raise QueryError with the column and what was expected.

    ``known_actor(id)`` tells whether ``@id`` names an actor; unknown ones are errors.
    """
    if len(query) > MAX_QUERY_LENGTH:
        raise QueryError(f"query longer than {MAX_QUERY_LENGTH} characters", MAX_QUERY_LENGTH)
    if not query.strip():
        raise QueryError("empty query: expected a term", 1)
    parser = _Parser(_lex(query), known_actor)
    node, _height = parser.parse_or(None, 0)
    token = parser.peek()
    if token.kind == ")":
        raise QueryError("unbalanced ')': no '(' opens it", token.column)
    if token.kind != "end":
        raise QueryError(f"expected an operator or the end, found {token.text!r}", token.column)
    return node


_Parsed = tuple[Node, int]
"""A node and the height of its tree (a term is 1)."""


class _Parser:
    def __init__(self, tokens: list[_Token], known_actor: Callable[[str], bool] | None) -> None:
        self.tokens = tokens
        self.position = 0
        self.known_actor = known_actor

    def peek(self) -> _Token:
        return self.tokens[self.position]

    def take(self) -> _Token:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def parse_or(self, fields: tuple[str, ...] | None, depth: int) -> _Parsed:
        start = self.peek()
        children = [self.parse_and(fields, depth)]
        while self.peek().kind == "OR":
            self.take()
            children.append(self.parse_and(fields, depth))
        if len(children) == 1:
            return children[0]
        return _above(Or(tuple(c for c, _ in children)), children, start.column)

    def parse_and(self, fields: tuple[str, ...] | None, depth: int) -> _Parsed:
        start = self.peek()
        children = [self.parse_near(fields, depth)]
        while True:
            kind = self.peek().kind
            if kind == "AND":
                self.take()
            elif kind not in ("(", "NOT", "phrase", "word", "actor", "regex", "field"):
                break
            children.append(self.parse_near(fields, depth))
        if len(children) == 1:
            return children[0]
        return _above(And(tuple(c for c, _ in children)), children, start.column)

    def parse_near(self, fields: tuple[str, ...] | None, depth: int) -> _Parsed:
        start = self.peek()
        left = self.parse_unary(fields, depth)
        while self.peek().kind == "NEAR":
            operator = self.take()
            right_start = self.peek()
            right = self.parse_unary(fields, depth)
            for (side, _), token in ((left, start), (right, right_start)):
                if not isinstance(side, Phrase | ActorRef | Near | Or) or not _positional(side):
                    raise QueryError(
                        "NEAR needs words, phrases, actors or an OR of them on both sides",
                        token.column,
                    )
            if _nears(left[0]) + _nears(right[0]) >= MAX_NEARS:
                raise QueryError(
                    f"more than {MAX_NEARS} NEAR operators in one expression: each multiplies "
                    "the work of matching it",
                    operator.column,
                )
            node = Near(left[0], right[0], operator.number)
            left = _above(node, (left, right), operator.column)
        return left

    def parse_unary(self, fields: tuple[str, ...] | None, depth: int) -> _Parsed:
        # NOT NOT ... is read in a loop, not by recursion, so a long run of them is refused by
        # the height check below rather than by the interpreter's stack.
        nots: list[_Token] = []
        while self.peek().kind == "NOT":
            nots.append(self.take())
        node, height = self.parse_primary(fields, depth)
        if nots and height + len(nots) > MAX_DEPTH:
            raise QueryError(f"nested deeper than {MAX_DEPTH} levels", nots[0].column)
        for _ in nots:
            node = Not(node)
        return node, height + len(nots)

    def parse_primary(self, fields: tuple[str, ...] | None, depth: int) -> _Parsed:
        if depth > MAX_DEPTH:
            raise QueryError(f"nested deeper than {MAX_DEPTH} levels", self.peek().column)
        token = self.take()
        match token.kind:
            case "(":
                parsed = self.parse_or(fields, depth + 1)
                closing = self.peek()
                if closing.kind != ")":
                    raise QueryError(
                        f"expected ')' to close the '(' at column {token.column}", closing.column
                    )
                self.take()
                return parsed
            case "field":
                following = self.peek()
                if following.kind in ("end", ")", "AND", "OR", "NEAR"):
                    raise QueryError(
                        f"expected a term or '(' after {token.text}:", following.column
                    )
                return self.parse_primary((token.text,), depth + 1)
            case "phrase":
                slop = 0 if token.number < 0 else token.number
                return _phrase(token.text, token.column + 1, slop, fields, quoted=True), 1
            case "word":
                return _phrase(token.text, token.column, 0, fields, quoted=False), 1
            case "actor":
                if self.known_actor is not None and not self.known_actor(token.text):
                    raise QueryError(f"unknown actor {token.text!r}", token.column + 1)
                return ActorRef(token.text, fields, token.column), 1
            case "regex":
                return _regex(token, fields), 1
            case "end":
                raise QueryError("unexpected end of query: expected a term or '('", token.column)
            case ")":
                raise QueryError("expected a term before ')'", token.column)
            case _:
                raise QueryError(f"expected a term or '(', found {token.text}", token.column)


def _above(node: Node, children: Sequence[_Parsed], column: int) -> _Parsed:
    """``node`` over ``children``; a QueryError at ``column`` if that makes it too deep."""
    height = 1 + max(h for _, h in children)
    if height > MAX_DEPTH:
        raise QueryError(f"nested deeper than {MAX_DEPTH} levels", column)
    return node, height


def _nears(node: Node) -> int:
    """The NEAR operators that multiply the work of a NEAR operand: all those joined by NEAR, and
    of the branches of an OR (whose positions are added up, not multiplied) the most costly."""
    match node:
        case Near(left, right, _):
            return 1 + _nears(left) + _nears(right)
        case Or(children):
            return max(map(_nears, children))
        case _:
            return 0


def _positional(node: Node) -> bool:
    if isinstance(node, Or):
        return all(
            isinstance(c, Phrase | ActorRef | Near | Or) and _positional(c) for c in node.children
        )
    return isinstance(node, Phrase | ActorRef | Near)


@lru_cache(maxsize=65_536)
def _word_norms(raw: str) -> list[str]:
    # Rule sets repeat their words thousands of times; normalising each once saves most of a
    # large reload's parsing. Callers must not mutate the list.
    return norms(raw)


def _phrase(
    text: str, column: int, slop: int, fields: tuple[str, ...] | None, *, quoted: bool
) -> Phrase:
    try:
        return _shared_phrase(text, slop, fields, quoted=quoted)
    except QueryError as exc:
        raise QueryError(exc.reason, column) from None


@lru_cache(maxsize=65_536)
def _shared_phrase(text: str, slop: int, fields: tuple[str, ...] | None, *, quoted: bool) -> Phrase:
    """The phrase of a term, or a QueryError (at column 0: :func:`_phrase` gives the column).

    Rule sets repeat their terms thousands of times: each is parsed once, and the rules that use
    it share one (immutable) Phrase.
    """
    column = 0
    words: list[str] = []
    prefixes: list[bool] = []
    for raw in text.split():
        stripped = raw.rstrip("*")
        prefix = len(stripped) < len(raw)
        parts = _word_norms(stripped)
        if "*" in stripped:
            raise QueryError("'*' is allowed only at the end of a word", column)
        if not parts:
            if prefix:
                raise QueryError("expected letters or digits before '*'", column)
            continue
        words.extend(parts)
        prefixes.extend([False] * (len(parts) - 1) + [prefix])
    if not words:
        what = "the phrase" if quoted else f"{text!r}"
        raise QueryError(f"{what} has no words to match", column)
    return Phrase(text.strip(), tuple(words), tuple(prefixes), slop, fields)


def _regex(token: _Token, fields: tuple[str, ...] | None) -> Regex:
    if not token.text:
        raise QueryError("empty regular expression", token.column)
    if re.search(r"(?<!\\)(?:\\\\)*\\C", token.text):
        raise QueryError(
            r"\C (any single byte) is not supported: use . (any character)", token.column
        )
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    try:
        re2.compile(token.text, options)
    except re2.error as exc:
        raise QueryError(f"invalid regular expression: {exc}", token.column) from None
    return Regex(token.text, fields)
