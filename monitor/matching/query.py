"""The query language of rules: parse a Boolean search string into a tree of nodes.

Grammar (operators are upper case; precedence, tightest first: NOT, NEAR, AND, OR)::

    query    := or
    or       := and ("OR" and)*
    and      := near (["AND"] near)*          adjacent terms are ANDed
    near     := unary ("NEAR/" n unary)*      at most n other words between, either order
    unary    := "NOT" unary | primary
    primary  := "(" or ")" | field ":" primary | term
    term     := word | word* | "phrase" | "phrase"~n | @actor | /regex/
    field    := title | summary | body | author | tags | url | source

So ``Nazarbayev OR Putin AND NOT troops`` is ``Nazarbayev OR (Putin AND (NOT troops))``. Inside a
phrase a word may end in ``*`` (a prefix): ``"shoot* without warning"``. A bare word that
tokenises into several words ("troop-transports") is an exact phrase of them. ``/regex/`` is RE2
syntax (linear time, so no pattern can hang the matcher), case-insensitive, searched in each
field's original text; ``\\/`` stands for a slash inside it.

Parsing is pure and needs no article. A malformed query raises :class:`QueryError` with the
1-based column in the query and what was expected there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import re2

from monitor.matching.text import norms, tokenize

QUERY_FIELDS: tuple[str, ...] = ("title", "summary", "body", "author", "tags", "url", "source")
"""Fields a query may name with ``field:``."""

MAX_QUERY_LENGTH = 10_000
MAX_DEPTH = 100


class QueryError(ValueError):
    """A query could not be parsed: ``column`` (1-based) says where, the message what went wrong."""

    def __init__(self, message: str, column: int) -> None:
        self.column = column
        self.reason = message
        super().__init__(f"column {column}: {message}")


# -- the tree -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Phrase:
    """Words in order, at most ``slop`` other words between them in total, within one field.

    ``prefixes[i]`` marks word i as a prefix (``shoot*``). ``fields`` None means the rule's.
    """

    text: str
    words: tuple[str, ...]
    prefixes: tuple[bool, ...]
    slop: int = 0
    fields: tuple[str, ...] | None = None
    case_sensitive: bool = False


@dataclass(frozen=True, slots=True)
class ActorRef:
    """Any alias of an actor (``@id``); the loader resolves the aliases."""

    actor: str
    fields: tuple[str, ...] | None = None
    column: int = 0


@dataclass(frozen=True, slots=True)
class Regex:
    """An RE2 pattern searched, case-insensitively, in each field's original text."""

    pattern: str
    fields: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class Near:
    """``left NEAR/distance right``: at most ``distance`` other words between, either order."""

    left: Node
    right: Node
    distance: int


Node = Phrase | ActorRef | Regex | And | Or | Not | Near
Positional = Phrase | ActorRef | Near | Or
"""Nodes that have word positions, and so may stand on either side of NEAR."""


def actor_refs(node: Node) -> list[ActorRef]:
    """Every ``@actor`` in the tree, in order."""
    match node:
        case ActorRef():
            return [node]
        case And(children) | Or(children):
            return [ref for child in children for ref in actor_refs(child)]
        case Not(child):
            return actor_refs(child)
        case Near(left, right, _):
            return actor_refs(left) + actor_refs(right)
        case _:
            return []


def has_positive_term(node: Node) -> bool:
    """Whether the query can only hold when some term occurs (so it is not purely negative)."""
    match node:
        case Not():
            return False
        case And(children):
            return any(has_positive_term(child) for child in children)
        case Or(children):
            return all(has_positive_term(child) for child in children)
        case _:
            return True


def parse_term_text(text: str) -> Phrase | None:
    """A keyword, alias or exclusion as written in a rule: its words, literally (no operators)."""
    words = tuple(norms(text))
    if not words:
        return None
    return Phrase(text, words, (False,) * len(words))


def raw_words(text: str) -> tuple[str, ...]:
    """The words of ``text`` as written (for case-sensitive terms); a trailing ``*`` is kept."""
    return tuple(
        text[token.start : token.end] + ("*" if text[token.end : token.end + 1] == "*" else "")
        for token in tokenize(text)
    )


# -- the lexer ----------------------------------------------------------------------------------

_BARE = re.compile(r'[^\s()"]+')
_NEAR = re.compile(r"NEAR/(\d+)")
_SLOP = re.compile(r"~(\d+)")


@dataclass(frozen=True, slots=True)
class _Token:
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
        slop, after = int(found.group(1)), found.end()
    elif query.startswith("~", after):
        raise QueryError("expected a number of words after ~", after + 1)
    return _Token("phrase", query[i + 1 : end], i + 1, slop), after


def _lex_regex(query: str, i: int) -> tuple[_Token, int]:
    j = i + 1
    pattern: list[str] = []
    while j < len(query) and query[j] != "/":
        if query.startswith("\\/", j):
            pattern.append("/")
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


def _lex_bare(query: str, i: int) -> tuple[_Token, int]:
    found = _BARE.match(query, i)
    assert found is not None
    word, column = found.group(0), i + 1
    if near := _NEAR.fullmatch(word):
        return _Token("NEAR", word, column, int(near.group(1))), found.end()
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
    node = parser.parse_or(None, 0)
    token = parser.peek()
    if token.kind == ")":
        raise QueryError("unbalanced ')': no '(' opens it", token.column)
    if token.kind != "end":
        raise QueryError(f"expected an operator or the end, found {token.text!r}", token.column)
    return node


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

    def parse_or(self, fields: tuple[str, ...] | None, depth: int) -> Node:
        children = [self.parse_and(fields, depth)]
        while self.peek().kind == "OR":
            self.take()
            children.append(self.parse_and(fields, depth))
        return children[0] if len(children) == 1 else Or(tuple(children))

    def parse_and(self, fields: tuple[str, ...] | None, depth: int) -> Node:
        children = [self.parse_near(fields, depth)]
        while True:
            kind = self.peek().kind
            if kind == "AND":
                self.take()
            elif kind not in ("(", "NOT", "phrase", "word", "actor", "regex", "field"):
                break
            children.append(self.parse_near(fields, depth))
        return children[0] if len(children) == 1 else And(tuple(children))

    def parse_near(self, fields: tuple[str, ...] | None, depth: int) -> Node:
        start = self.peek()
        node = self.parse_unary(fields, depth)
        while self.peek().kind == "NEAR":
            operator = self.take()
            right_token = self.peek()
            right = self.parse_unary(fields, depth)
            for side, token in ((node, start), (right, right_token)):
                if not isinstance(side, Phrase | ActorRef | Near | Or) or not _positional(side):
                    raise QueryError(
                        "NEAR needs words, phrases, actors or an OR of them on both sides",
                        token.column if side is right else operator.column,
                    )
            node = Near(node, right, operator.number)
        return node

    def parse_unary(self, fields: tuple[str, ...] | None, depth: int) -> Node:
        if self.peek().kind == "NOT":
            self.take()
            return Not(self.parse_unary(fields, depth))
        return self.parse_primary(fields, depth)

    def parse_primary(self, fields: tuple[str, ...] | None, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise QueryError(f"nested deeper than {MAX_DEPTH} levels", self.peek().column)
        token = self.take()
        match token.kind:
            case "(":
                node = self.parse_or(fields, depth + 1)
                closing = self.peek()
                if closing.kind != ")":
                    raise QueryError(
                        f"expected ')' to close the '(' at column {token.column}", closing.column
                    )
                self.take()
                return node
            case "field":
                following = self.peek()
                if following.kind in ("end", ")", "AND", "OR", "NEAR"):
                    raise QueryError(
                        f"expected a term or '(' after {token.text}:", following.column
                    )
                return self.parse_primary((token.text,), depth + 1)
            case "phrase":
                slop = 0 if token.number < 0 else token.number
                return _phrase(token.text, token.column + 1, slop, fields, quoted=True)
            case "word":
                return _phrase(token.text, token.column, 0, fields, quoted=False)
            case "actor":
                if self.known_actor is not None and not self.known_actor(token.text):
                    raise QueryError(f"unknown actor {token.text!r}", token.column + 1)
                return ActorRef(token.text, fields, token.column)
            case "regex":
                return _regex(token, fields)
            case "end":
                raise QueryError("unexpected end of query: expected a term or '('", token.column)
            case ")":
                raise QueryError("expected a term before ')'", token.column)
            case _:
                raise QueryError(f"expected a term or '(', found {token.text}", token.column)


def _positional(node: Node) -> bool:
    if isinstance(node, Or):
        return all(
            isinstance(c, Phrase | ActorRef | Near | Or) and _positional(c) for c in node.children
        )
    return isinstance(node, Phrase | ActorRef | Near)


def _phrase(
    text: str, column: int, slop: int, fields: tuple[str, ...] | None, *, quoted: bool
) -> Phrase:
    words: list[str] = []
    prefixes: list[bool] = []
    for raw in text.split():
        prefix = raw.endswith("*")
        parts = norms(raw.rstrip("*"))
        if "*" in raw.rstrip("*"):
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
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    try:
        re2.compile(token.text, options)
    except re2.error as exc:
        raise QueryError(f"invalid regular expression: {exc}", token.column) from None
    return Regex(token.text, fields)
