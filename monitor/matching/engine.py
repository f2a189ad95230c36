"""The compiled matcher: rules in, for each article the rules it matches and why.

Semantics (the contract users write their watchlists against):

* Matching is case- and accent-insensitive on both sides and on whole words only, with words as
  :mod:`monitor.matching.text` defines them: "Kazakh" does not match "Kazakhstan", "China"
  matches "China's" (with either apostrophe), "troop transports" matches "troop-transports".
* An actor alias is an exact phrase: its words consecutive within one field.
* A keyword's words must occur in order within one field with at most ``rule.slop`` other words
  between them in total; a one-word keyword is a single word.
* An exclude entry is an exact phrase, never sloppy: an exclusion that matched more than its
  author wrote would silently suppress alerts, which is worse than noise for an alerting tool.
* A rule matches when every part it has holds: an alias of one of its actors (if it has actors),
  one of its keywords (if it has keywords), and none of its excludes in any searched field.
  Disabled rules and rules with neither actors nor keywords never match.

Cost per article is one tokenisation per field plus work proportional to the rules that could
match: each rule is indexed under one word of every alias and keyword, and only rules whose
indexed words occur in the article (in each part they require) are evaluated.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from monitor.matching.rules import Rule
from monitor.matching.text import Words, split_words
from monitor.models import FIELDS, Article, Hit, RuleMatch

__all__ = ["Matcher"]

_FIELD_ORDER = {name: order for order, name in enumerate(FIELDS)}

_ACTOR = 1
_KEYWORD = 2

# (field number in FIELDS, first token index, last token index)
_Span = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class _Term:
    """An alias or keyword, normalised and tokenised once at compile time."""

    text: str
    tokens: tuple[str, ...]
    kind: str
    slop: int


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A rule in matching form."""

    rule: Rule
    terms: tuple[_Term, ...]
    """Actor aliases first, then keywords, each in the order the rule gives them."""
    excludes: tuple[tuple[str, ...], ...]
    needs: int
    """The parts the rule requires, as a mask of _ACTOR and _KEYWORD."""


class Matcher:
    """Matches articles against a fixed set of rules, compiled once.

    Build one per rule set (rules are reloaded by building a new Matcher) and call
    :meth:`match` for each article; it is pure, so one Matcher may serve any number of callers.
    """

    __slots__ = ("_by_actor", "_by_keyword", "_compiled", "_with_actors", "_with_keywords")

    def __init__(self, rules: Iterable[Rule]) -> None:
        compiled = [entry for entry in map(_compile, rules) if entry is not None]
        self._compiled = tuple(compiled)
        # Each part's index maps a word to the rules with a term of that part indexed under it.
        by_kind: dict[str, dict[str, set[int]]] = {"actor": {}, "keyword": {}}
        for number, entry in enumerate(compiled):
            for term in entry.terms:
                by_kind[term.kind].setdefault(_index_token(term.tokens), set()).add(number)
        self._by_actor = {token: frozenset(s) for token, s in by_kind["actor"].items()}
        self._by_keyword = {token: frozenset(s) for token, s in by_kind["keyword"].items()}
        self._with_actors = frozenset(n for n, e in enumerate(compiled) if e.needs & _ACTOR)
        self._with_keywords = frozenset(n for n, e in enumerate(compiled) if e.needs & _KEYWORD)

    def match(self, article: Article) -> list[RuleMatch]:
        """Return a RuleMatch for each rule the article matches, in the order rules were given.

        Each RuleMatch lists every occurrence of every actor alias and keyword of its rule in the
        article, sorted by field (in FIELDS order), start and end. An empty list means no rule
        matched; this never raises for any article.
        """
        fields = [_Field(name, article.field_text(name)) for name in FIELDS]
        candidates = self._candidates(fields)
        if not candidates:
            return []
        spans: dict[tuple[tuple[str, ...], int], list[_Span]] = {}

        def find(tokens: tuple[str, ...], slop: int) -> list[_Span]:
            # Rules often share actors and terms; each is searched once per article.
            key = (tokens, slop)
            found = spans.get(key)
            if found is None:
                found = spans[key] = _occurrences(fields, tokens, slop)
            return found

        matches: list[RuleMatch] = []
        for number in candidates:
            entry = self._compiled[number]
            if any(find(tokens, 0) for tokens in entry.excludes):
                continue
            hits: list[Hit] = []
            seen = 0
            for term in entry.terms:
                found = find(term.tokens, term.slop)
                if found:
                    seen |= _ACTOR if term.kind == "actor" else _KEYWORD
                    hits.extend(fields[f].hit(term, first, last) for f, first, last in found)
            if seen != entry.needs:
                continue
            # Identical hits arise when two actors share an alias; sort is stable, so hits on
            # the same span keep the rule's order (actors before keywords).
            unique = sorted(
                dict.fromkeys(hits), key=lambda h: (_FIELD_ORDER[h.field], h.start, h.end)
            )
            matches.append(RuleMatch(entry.rule.id, entry.rule.severity, tuple(unique)))
        return matches

    def _candidates(self, fields: list[_Field]) -> list[int]:
        """Numbers of the rules whose indexed words occur for every part they require."""
        present = set().union(*(field.words.norms for field in fields))
        actors = _lookup(self._by_actor, present)
        keywords = _lookup(self._by_keyword, present)
        # A rule without a part is in neither that part's index nor its "with" set, so it
        # needs only the other part.
        found = (
            (actors & keywords) | (actors - self._with_keywords) | (keywords - self._with_actors)
        )
        return sorted(found)


def _lookup(index: dict[str, frozenset[int]], present: set[str]) -> set[int]:
    """The rules indexed under any of the ``present`` words."""
    found: set[int] = set()
    # The intersection iterates the smaller side, so the cost follows the article's
    # vocabulary or the rules' vocabulary, whichever is smaller, not the number of rules.
    for token in index.keys() & present:
        found |= index[token]
    return found


class _Field:
    """One field of one article: its words, and where each word occurs."""

    __slots__ = ("_index", "name", "text", "words")

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        self.words: Words = split_words(text)
        self._index: dict[str, list[int]] | None = None

    def positions(self, token: str) -> Sequence[int]:
        """The ascending indexes of ``token`` among the field's words."""
        if self._index is None:
            # Built on first use: most articles match no candidate rule and never need it.
            self._index = {}
            for position, norm in enumerate(self.words.norms):
                self._index.setdefault(norm, []).append(position)
        return self._index.get(token, ())

    def hit(self, term: _Term, first: int, last: int) -> Hit:
        start, end = self.words.starts[first], self.words.ends[last]
        return Hit(term.text, self.name, start, end, self.text[start:end], term.kind)


def _occurrences(fields: list[_Field], tokens: tuple[str, ...], slop: int) -> list[_Span]:
    """Every occurrence of ``tokens`` in order, at most ``slop`` words between them in total.

    One occurrence per position of the first word: for a given start, taking the earliest
    following occurrence of each next word minimises the last position and so the total gap.
    """
    found: list[_Span] = []
    head, rest = tokens[0], tokens[1:]
    for number, field in enumerate(fields):
        starts = field.positions(head)
        if not starts or not rest:
            found.extend((number, p, p) for p in starts)
            continue
        if slop == 0:
            # Exact phrase: compare the following words in place, no lookups needed.
            norms, size = field.words.norms, len(tokens)
            found.extend(
                (number, p, p + size - 1) for p in starts if tuple(norms[p : p + size]) == tokens
            )
            continue
        following = [field.positions(token) for token in rest]
        if all(following):
            found.extend((number, p, last) for p, last in _sloppy(starts, following, slop))
    return found


def _sloppy(
    starts: Sequence[int], following: list[Sequence[int]], slop: int
) -> list[tuple[int, int]]:
    """(first, last) word indexes of each in-order chain within ``slop``, one per start."""
    chains: list[tuple[int, int]] = []
    for first in starts:
        last, gap = first, 0
        for positions in following:
            k = bisect_right(positions, last)
            if k == len(positions):
                # No occurrence of this word after this start, so none after any later start
                # either: chains from later starts only end further right.
                return chains
            gap += positions[k] - last - 1
            last = positions[k]
            if gap > slop:
                break
        else:
            chains.append((first, last))
    return chains


def _compile(rule: Rule) -> _Compiled | None:
    """The rule's terms in matching form, or None if the rule can never match."""
    if not rule.enabled:
        return None
    terms: list[_Term] = []
    for actor in rule.actors:
        terms.extend(_term(alias, "actor", 0) for alias in actor.aliases)
    # The loader rejects a negative slop; clamping keeps such a rule matching exact phrases
    # rather than silently never matching.
    slop = max(rule.slop, 0)
    terms.extend(_term(keyword, "keyword", slop) for keyword in rule.keywords)
    # Spellings that normalise alike ("Erdoğan", "Erdogan") are one term: reporting the same
    # words twice under two names would only clutter the alert.
    unique: dict[tuple[str, tuple[str, ...], int], _Term] = {}
    for term in terms:
        if term.tokens:
            unique.setdefault((term.kind, term.tokens, term.slop), term)
    kept = list(unique.values())
    needs = (_ACTOR if rule.actors else 0) | (_KEYWORD if rule.keywords else 0)
    has = 0
    for term in kept:
        has |= _ACTOR if term.kind == "actor" else _KEYWORD
    # A required part with no usable term can never hold; the loader rejects such rules, but
    # the matcher must not turn "no alias to find" into "no alias required".
    if needs == 0 or has != needs:
        return None
    excludes = tuple(tokens for tokens in (_tokens(text) for text in rule.exclude) if tokens)
    return _Compiled(rule, tuple(kept), tuple(dict.fromkeys(excludes)), needs)


def _term(text: str, kind: str, slop: int) -> _Term:
    tokens = _tokens(text)
    # Slop means nothing for one word; normalising it lets rules share the per-article cache.
    return _Term(text, tokens, kind, slop if len(tokens) > 1 else 0)


def _tokens(text: str) -> tuple[str, ...]:
    return tuple(split_words(text).norms)


def _index_token(tokens: tuple[str, ...]) -> str:
    """The word a term is indexed under: its longest, as long words tend to be the rarer ones."""
    return max(tokens, key=len)
