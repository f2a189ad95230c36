"""The query language of rules: parse a Boolean search string into a tree of nodes.

Grammar (operators are upper case; precedence, tightest first: NOT, NEAR, AND, OR)::

    query    := or
    or       := and ("OR" and)*
    and      := near (["AND"] near)*          adjacent terms are ANDed
    near     := unary ("NEAR/" n unary)*      at most n (0..100) other words between, either order
    unary    := "NOT"* primary
    primary  := "(" or ")" | field ":" primary | term
    term     := word | word* | "phrase" | "phrase"~n | @actor | /regex/     n: 0..50
    field    := title | summary | body | author | tags | url | source

So ``Nazarbayev OR Putin AND NOT troops`` is ``Nazarbayev OR (Putin AND (NOT troops))``. Inside a
phrase a word may end in ``*`` (a prefix): ``"shoot* without warning"``. A bare word that
tokenises into several words ("troop-transports") is an exact phrase of them. ``/regex/`` is RE2
syntax (linear time, so no pattern can hang the matcher), case-insensitive, searched in each
field's original text; ``\\/`` stands for a slash inside it, and any other backslash is kept
with the character after it (``/a\\\\/`` is the pattern ``a\\\\``).

Habits from Lucene that would silently change the meaning are errors: ``-word`` and ``+word``
(write ``NOT word``, or just ``word``), ``word~2`` (``~n`` applies to quoted phrases) and a second
``~n`` after a phrase.

Parsing is pure and needs no article. A malformed query raises :class:`QueryError` with the
1-based column in the query and what was expected there. So does a query too costly to use:
parentheses and field prefixes may nest at most ``MAX_DEPTH`` deep, and so may the parsed tree
(each ``NOT``, ``NEAR``, and ``AND`` or ``OR`` inside another adds a level), so nothing that walks
it can exhaust the stack; one NEAR expression may hold at most ``MAX_NEARS`` operators, since each
multiplies the positions the matcher pairs up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import re2

from monitor.matching.text import norms, tokenize

QUERY_FIELDS: tuple[str, ...] = ("title", "summary", "body", "author", "tags", "url", "source")
"""Fields a query may name with ``field:``."""

MAX_QUERY_LENGTH = 10_000
MAX_DEPTH = 100
"""The most levels of nesting: of parentheses and field prefixes, and of the parsed tree."""
MAX_NEARS = 8
"""The most NEAR operators in one NEAR expression, counting those of its operands (of an OR of
them, the branch with the most)."""
MAX_NEAR_DISTANCE = 100
"""The largest n of ``NEAR/n``."""
MAX_SLOP = 50
"""The largest n of ``"phrase"~n`` (as for a rule's ``slop``)."""


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
    return [term for term in _terms(node) if isinstance(term, ActorRef)]


def _terms(node: Node) -> list[Phrase | ActorRef | Regex]:
    """The terms of a tree, in the order of the query."""
    found: list[Phrase | ActorRef | Regex] = []
    _add_terms(node, found)
    return found


def _add_terms(node: Node, found: list[Phrase | ActorRef | Regex]) -> None:
    # Appends to one list rather than joining a list from each subtree: the loader calls this
    # for every query of a rule set.
    if isinstance(node, (And, Or)):
        for child in node.children:
            if isinstance(child, Phrase):  # most children: no call for them
                found.append(child)
            else:
                _add_terms(child, found)
    elif isinstance(node, Not):
        _add_terms(node.child, found)
    elif isinstance(node, Near):
        _add_terms(node.left, found)
        _add_terms(node.right, found)
    else:
        found.append(node)


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

_Token = tuple[str, str, int, int]
"""kind (an operator, "(", ")", phrase, word, actor, regex, field or end), text, column, and the
NEAR distance or phrase slop (-1: none given). Plain tuples: a rule set has millions of tokens."""

_WORD_END = r'(?=[\s()"]|\Z)'
_PLAIN = re.compile(
    rf"""
    (\s*+)                                  # the spaces before a token
    (   [()]
      | (?:AND|OR|NOT){_WORD_END}
      | NEAR/\d++{_WORD_END}
      | "[^"]*+"(?:~\d{{1,2}}+(?=[\s)]|\Z)|(?!~))    # ~n only before a space or ')'
      | @[^\s()"]++
      | /(?:[^/\\]|\\[\s\S])*+/             # a backslash takes the next character with it
      | (?:{"|".join(QUERY_FIELDS)}):
        # A word: not -word or +word, not NEAR or NEAR/..., no ':' or '~' in it.
      | (?!NEAR(?:/|[\s()"]|\Z))[^\s()"/@+\-~:][^\s()"~:]*+{_WORD_END}
      | (\S)                                # anything else: see _lex
    )
    """,
    re.VERBOSE,
)
"""The tokens a query is mostly made of, each taken whole by one expression (in C)."""


def _lex(query: str) -> list[_Token]:
    # The plain tokens are found by _PLAIN, so each costs a few string operations. A query with
    # anything else (a Lucene habit, an error, an odd word like "a:b") is lexed character by
    # character instead, by the code that also says what is wrong. Each branch of _PLAIN takes
    # exactly what that code would take as the same token; the differential test holds them to it.
    tokens: list[_Token] = []
    column = 1
    for space, text, other in _PLAIN.findall(query):
        if other:
            return _lex_careful(query)
        column += len(space)
        if text in _OPERATORS_AND_PARENTHESES:  # a third of the tokens: no call for them
            tokens.append((text, text, column, 0))
        else:
            tokens.append(_plain_token(text, column))
        column += len(text)
    tokens.append(("end", "", len(query) + 1, 0))
    return tokens


_OPERATORS_AND_PARENTHESES = frozenset(("AND", "OR", "NOT", "(", ")"))


def _plain_token(text: str, column: int) -> _Token:
    """The token of a match of _PLAIN other than an operator or a parenthesis."""
    first = text[0]
    if first == '"':
        close = text.rindex('"')
        if close == len(text) - 1:
            return ("phrase", text[1:close], column, -1)
        # ~n: the ~ is right after the closing quote.
        slop = _number(text[close + 2 :], MAX_SLOP, "~n", column + close + 1)
        return ("phrase", text[1:close], column, slop)
    if first == "@":
        return ("actor", text[1:], column, 0)
    if first == "/":
        # Only an escaped slash loses its backslash (see _lex_regex). Every slash inside is
        # one, so replacing "\/" from left to right removes exactly their backslashes.
        return ("regex", text[1:-1].replace("\\/", "/"), column, 0)
    if text[-1] == ":":
        return ("field", text[:-1], column, 0)
    if text.startswith("NEAR/"):
        return ("NEAR", text, column, _number(text[5:], MAX_NEAR_DISTANCE, "NEAR distance", column))
    return ("word", text, column, 0)


def _lex_careful(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(query):
        char = query[i]
        if char.isspace():
            i += 1
            continue
        if char in "()":
            token, i = (char, char, i + 1, 0), i + 1
        elif char == '"':
            token, i = _lex_phrase(query, i)
        elif char == "/":
            token, i = _lex_regex(query, i)
        elif char == "@":
            token, i = _lex_actor(query, i)
        else:
            token, i = _lex_bare(query, i)
        tokens.append(token)
    tokens.append(("end", "", len(query) + 1, 0))
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
    return ("phrase", query[i + 1 : end], i + 1, slop), after


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
    return ("regex", "".join(pattern), i + 1, 0), j + 1


def _lex_actor(query: str, i: int) -> tuple[_Token, int]:
    found = _BARE.match(query, i + 1)
    if not found:
        raise QueryError("expected an actor id after @", i + 2)
    return ("actor", found.group(0), i + 1, 0), found.end()


_OPERATORS = frozenset(("AND", "OR", "NOT", "NEAR"))


def _lex_bare(query: str, i: int) -> tuple[_Token, int]:
    found = _BARE.match(query, i)
    assert found is not None
    word, column = found.group(0), i + 1
    if word.isalnum() and word not in _OPERATORS:
        # Most bare words are just words: none of the characters the checks below look for.
        return ("word", word, column, 0), found.end()
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
        return ("NEAR", word, column, distance), found.end()
    if word.startswith("NEAR/") or word == "NEAR":
        raise QueryError("expected NEAR/n, with n the most words allowed between", column)
    if word in ("AND", "OR", "NOT"):
        return (word, word, column, 0), found.end()
    name, colon, rest = word.partition(":")
    if colon and name in QUERY_FIELDS:
        # What follows the colon is lexed on the next turn ("title:word", 'title:"a b"').
        return ("field", name, column, 0), i + len(name) + 1
    if colon and name.isalpha() and not rest.startswith("//"):
        fields = ", ".join(QUERY_FIELDS)
        raise QueryError(f"unknown field {name!r}: expected one of {fields}", column)
    if "~" in word:
        # Lucene's fuzzy word~2: '~' would only separate words, so "word~2" would be "word 2".
        raise QueryError("~n applies to quoted phrases", column + word.index("~"))
    return ("word", word, column, 0), found.end()


# -- the parser ---------------------------------------------------------------------------------


def parse_query(query: str, known_actor: Callable[[str], bool] | None = None) -> Node:
    """Parse ``query``; raise QueryError with the column and what was expected.

    ``known_actor(id)`` tells whether ``@id`` names an actor; unknown ones are errors.
    """
    if len(query) > MAX_QUERY_LENGTH:
        raise QueryError(f"query longer than {MAX_QUERY_LENGTH} characters", MAX_QUERY_LENGTH)
    if not query.strip():
        raise QueryError("empty query: expected a term", 1)
    tokens = _lex(query)
    if len(tokens) > MAX_SHAPE_TOKENS:
        return _parse(tokens, known_actor)
    shape = tuple([kind if kind in _TERMS else text for kind, text, _, _ in tokens])
    known = _SHAPES.get(shape)
    if known is not None:
        terms = [token for token in tokens if token[0] in _TERMS]
        # Terms are built in the order of the query, as the parser builds them, so the first
        # term in error is the one reported.
        built = [
            _term(token, fields, known_actor)
            for token, fields in zip(terms, known.fields, strict=True)
        ]
        return _rebuild(known.tree, iter(built))
    node = _parse(tokens, known_actor)
    if len(_SHAPES) < MAX_SHAPES:
        _SHAPES[shape] = _Shape(node, tuple(term.fields for term in _terms(node)))
    return node


def _parse(tokens: list[_Token], known_actor: Callable[[str], bool] | None) -> Node:
    parser = _Parser(tokens, known_actor)
    node, _height = parser.parse_or(None, 0)
    kind, column = parser.kind(), parser.column()
    if kind == ")":
        raise QueryError("unbalanced ')': no '(' opens it", column)
    if kind != "end":
        raise QueryError(
            f"expected an operator or the end, found {parser.texts[parser.position]!r}", column
        )
    return node


_Parsed = tuple[Node, int]
"""A node and the height of its tree (a term is 1)."""


_TERMS = frozenset(("phrase", "word", "actor", "regex"))
_OPERAND_STARTS = frozenset(("(", "NOT", "field", *_TERMS))
"""Kinds of token an operand of AND may start with (terms next to each other are ANDed)."""


class _Parser:
    """Recursive descent over the tokens; ``position`` is the next token's."""

    def __init__(self, tokens: list[_Token], known_actor: Callable[[str], bool] | None) -> None:
        # Each field of the tokens in a tuple of its own: the parser mostly looks at kinds.
        self.tokens = tokens
        kinds, texts, columns, numbers = zip(*tokens, strict=True)
        self.kinds: tuple[str, ...] = kinds
        self.texts: tuple[str, ...] = texts
        self.columns: tuple[int, ...] = columns
        self.numbers: tuple[int, ...] = numbers
        self.position = 0
        self.known_actor = known_actor

    def kind(self) -> str:
        return self.kinds[self.position]

    def column(self) -> int:
        return self.columns[self.position]

    def parse_or(self, fields: tuple[str, ...] | None, depth: int) -> _Parsed:
        start = self.position
        parsed = self.parse_and(fields, depth)
        if self.kinds[self.position] != "OR":
            return parsed
        children = [parsed]
        while self.kinds[self.position] == "OR":
            self.position += 1
            children.append(self.parse_and(fields, depth))
        return _above(Or(tuple([c for c, _ in children])), children, self.columns[start])

    def parse_and(self, fields: tuple[str, ...] | None, depth: int) -> _Parsed:
        start = self.position
        parsed = self.parse_near(fields, depth)
        kinds = self.kinds
        if kinds[self.position] != "AND" and kinds[self.position] not in _OPERAND_STARTS:
            return parsed
        children = [parsed]
        while (kind := kinds[self.position]) == "AND" or kind in _OPERAND_STARTS:
            if kind == "AND":
                self.position += 1
            children.append(self.parse_near(fields, depth))
        return _above(And(tuple([c for c, _ in children])), children, self.columns[start])

    def parse_near(self, fields: tuple[str, ...] | None, depth: int) -> _Parsed:
        position = self.position
        if (
            self.kinds[position] in _TERMS
            and self.kinds[position + 1] != "NEAR"
            and depth <= MAX_DEPTH
        ):
            # Most operands are a term alone: parse_unary and parse_primary would come to
            # parse_term (the depth check is parse_primary's) and return what it returns.
            return self.parse_term(fields)
        start = self.columns[position]
        left = self.parse_unary(fields, depth)
        while self.kind() == "NEAR":
            operator, distance = self.column(), self.numbers[self.position]
            self.position += 1
            right_start = self.column()
            right = self.parse_unary(fields, depth)
            for (side, _), column in ((left, start), (right, right_start)):
                if not isinstance(side, Phrase | ActorRef | Near | Or) or not _positional(side):
                    raise QueryError(
                        "NEAR needs words, phrases, actors or an OR of them on both sides", column
                    )
            if _nears(left[0]) + _nears(right[0]) >= MAX_NEARS:
                raise QueryError(
                    f"more than {MAX_NEARS} NEAR operators in one expression: each multiplies "
                    "the work of matching it",
                    operator,
                )
            node = Near(left[0], right[0], distance)
            left = _above(node, (left, right), operator)
        return left

    def parse_unary(self, fields: tuple[str, ...] | None, depth: int) -> _Parsed:
        # NOT NOT ... is read in a loop, not by recursion, so a long run of them is refused by
        # the height check below rather than by the interpreter's stack.
        first, nots = self.column(), 0
        while self.kind() == "NOT":
            self.position += 1
            nots += 1
        node, height = self.parse_primary(fields, depth)
        if nots and height + nots > MAX_DEPTH:
            raise QueryError(f"nested deeper than {MAX_DEPTH} levels", first)
        for _ in range(nots):
            node = Not(node)
        return node, height + nots

    def parse_primary(self, fields: tuple[str, ...] | None, depth: int) -> _Parsed:
        if depth > MAX_DEPTH:
            raise QueryError(f"nested deeper than {MAX_DEPTH} levels", self.column())
        kind = self.kind()
        if kind in _TERMS:
            return self.parse_term(fields)
        text, column = self.texts[self.position], self.column()
        self.position += 1
        match kind:
            case "(":
                parsed = self.parse_or(fields, depth + 1)
                if self.kind() != ")":
                    raise QueryError(
                        f"expected ')' to close the '(' at column {column}", self.column()
                    )
                self.position += 1
                return parsed
            case "field":
                if self.kind() in ("end", ")", "AND", "OR", "NEAR"):
                    raise QueryError(f"expected a term or '(' after {text}:", self.column())
                return self.parse_primary((text,), depth + 1)
            case "end":
                raise QueryError("unexpected end of query: expected a term or '('", column)
            case ")":
                raise QueryError("expected a term before ')'", column)
            case _:
                raise QueryError(f"expected a term or '(', found {text}", column)

    def parse_term(self, fields: tuple[str, ...] | None) -> _Parsed:
        """The term at ``position`` (a token of a kind in _TERMS), a tree of height 1."""
        position = self.position
        self.position = position + 1
        return _term(self.tokens[position], fields, self.known_actor), 1


def _term(
    token: _Token, fields: tuple[str, ...] | None, known_actor: Callable[[str], bool] | None
) -> Phrase | ActorRef | Regex:
    """The node of a token of a kind in _TERMS."""
    kind, text, column, number = token
    if kind in ("word", "phrase"):
        try:
            return _shared_phrase(text, max(number, 0), fields, kind == "phrase")  # -1: no ~n
        except QueryError as exc:
            # A phrase's errors point inside its quotes.
            raise QueryError(exc.reason, column if kind == "word" else column + 1) from None
    if kind == "actor":
        if known_actor is not None and not known_actor(text):
            raise QueryError(f"unknown actor {text!r}", column + 1)
        return ActorRef(text, fields, column)
    return _regex(text, column, fields)


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


@lru_cache(maxsize=65_536)
def _shared_phrase(text: str, slop: int, fields: tuple[str, ...] | None, quoted: bool) -> Phrase:
    """The phrase of a term, or a QueryError (at column 0: :func:`_term` gives the column).

    Rule sets repeat their terms thousands of times: each is parsed once, and the rules that use
    it share one (immutable) Phrase.
    """
    column = 0
    if text.isascii() and "*" not in text:
        # Most terms: ASCII words, none a prefix. Their words are those of the whole text, so
        # they need none of the checks below, word by word.
        plain = norms(text)
        if not plain:
            raise _no_words(text, quoted)
        return Phrase(text.strip(), tuple(plain), (False,) * len(plain), slop, fields)
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
        raise _no_words(text, quoted)
    return Phrase(text.strip(), tuple(words), tuple(prefixes), slop, fields)


def _no_words(text: str, quoted: bool) -> QueryError:
    what = "the phrase" if quoted else f"{text!r}"
    return QueryError(f"{what} has no words to match", 0)


def _regex(pattern: str, column: int, fields: tuple[str, ...] | None) -> Regex:
    if not pattern:
        raise QueryError("empty regular expression", column)
    if _ANY_BYTE.search(pattern):
        # \C matches one byte of the UTF-8 text, so a match may start or end inside a
        # character: its hit would have no offsets in the text.
        raise QueryError(r"\C (any single byte) is not supported: use . (any character)", column)
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    try:
        re2.compile(pattern, options)
    except re2.error as exc:
        raise QueryError(f"invalid regular expression: {exc}", column) from None
    return Regex(pattern, fields)


_ANY_BYTE = re.compile(r"(?<!\\)(?:\\\\)*(\\C)")
"""An unescaped ``\\C``: a backslash before it would make it a literal backslash and a C."""


# -- shapes -------------------------------------------------------------------------------------
#
# Rule sets are often written from a few patterns ("@actor AND (a OR "b c"~2) AND NOT d"), so
# thousands of queries differ only in their terms. The parser's every decision, and every error
# it can raise but a term's own, depends only on the kinds of the tokens and the text of the
# others (operators, NEAR/n, fields): what this module calls a query's shape. Once a query of a
# shape has parsed, the next one of that shape is its tree with the terms replaced.


@dataclass(frozen=True, slots=True)
class _Shape:
    tree: Node
    """The tree of the first query of the shape that parsed."""
    fields: tuple[tuple[str, ...] | None, ...]
    """The fields of each of its terms, in order."""


MAX_SHAPES = 4096
"""Shapes kept; a rule set with more (each query its own) parses the rest in full."""
MAX_SHAPE_TOKENS = 100
"""Longer queries are parsed in full: they are rare, and their shapes would take the memory."""
_SHAPES: dict[tuple[str, ...], _Shape] = {}


def _rebuild(node: Node, terms: Iterator[Node]) -> Node:
    """``node`` with its terms replaced, in order, by ``terms``."""
    if isinstance(node, (Phrase, ActorRef, Regex)):
        return next(terms)
    if isinstance(node, And):
        return And(tuple([_rebuild(child, terms) for child in node.children]))
    if isinstance(node, Or):
        return Or(tuple([_rebuild(child, terms) for child in node.children]))
    if isinstance(node, Not):
        return Not(_rebuild(node.child, terms))
    left = _rebuild(node.left, terms)
    return Near(left, _rebuild(node.right, terms), node.distance)
