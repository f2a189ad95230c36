"""The compiled matcher: rules in, for each article the rules it matches and why.

Semantics (the contract users write their watchlists against):

* Matching is case- and accent-insensitive on both sides and on whole words only, with words as
  :mod:`monitor.matching.text` defines them: "Kazakh" does not match "Kazakhstan", "China"
  matches "China's" (with either apostrophe), "troop transports" matches "troop-transports".
  A term marked ``case_sensitive`` also compares the letters of each word exactly.
* An actor alias is an exact phrase: its words consecutive within one field.
* A keyword's words must occur in order within one field with at most ``slop`` other words
  between them in total; a one-word keyword is a single word.
* An exclude entry is an exact phrase unless it sets its own slop: an exclusion that matched more
  than its author wrote would silently suppress alerts, which is worse than noise.
* ``query`` is a Boolean expression (see :mod:`monitor.matching.query`).
* A rule matches when every part it has holds: an alias of one of its actors, one of its
  keywords, none of its excludes, its query, ``min_hits`` occurrences of aliases and keywords in
  total, its ``sources`` and ``languages``. Disabled rules never match.

Cost: one tokenisation per article field, then work for the rules that could match only. Every
rule is indexed under a few words it cannot match without: for each of at most two required
parts, one word of each of its aliases or keywords (the word fewest terms of the rule set share,
then the longest, as rarer words are longer; a prefix term under its first letters, a stemmed
word under its stem). An article's candidates are the rules the index holds under one of its
words for their first part that have a word of their second too (one C call, or a search for a
prefix); each must then have, for every required part, a term all of whose words it holds before
it is evaluated. Rules with nothing to index (a purely negative query, a lone regex) are
evaluated for every article; a regex runs only over fields that hold the text it opens with.
Words and prefixes are found in a field by searching its words joined into one string, and a
hit's offsets by searching its folded text, so an article pays for neither a position index nor
the offsets of every word unless it needs them.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from typing import Any

import re2

from monitor.matching import query as q
from monitor.matching.language import detect_language, stemmer
from monitor.matching.lifetime import long_lived
from monitor.matching.rules import Actor, Rule, Term, TermSpec
from monitor.matching.text import (
    Words,
    ascii_words,
    fold_accents,
    norms,
    spaced_norms,
    split_words,
    word_spans,
)
from monitor.models import FIELDS, Article, Hit, RuleMatch

__all__ = ["MAX_HITS", "Matcher"]

ALL_FIELDS: tuple[str, ...] = q.QUERY_FIELDS
_FIELD_ORDER = {name: order for order, name in enumerate(ALL_FIELDS)}
_MAX_GROUPS = 2
"""Index a rule under at most this many required parts: more costs postings, saves little."""
_SCANS_BEFORE_INDEX = 32
"""Word lookups in a field answered by searching before its position index is built: a search
costs a few microseconds, the index about as much as thirty."""
_GAP = 128
"""Empty words between two values of a multi-valued field: more than any slop or NEAR distance."""
_MAX_SPANS = 1000
MAX_HITS = 1000
"""Hits a match keeps: the first hit of each of its terms, then the first by field and position.
A document that repeats a term thousands of times would otherwise store, send and show every
one. ``min_hits`` counts every occurrence all the same."""
_PREFIX_KEY = 3
"""A prefix term is indexed by its first characters; shorter prefixes are not indexed."""
_SURROGATE = re.compile("[\ud800-\udfff]")


# -- compiled terms -----------------------------------------------------------------------------

# Compiled nodes are never changed once built, and rules share them. They are not frozen
# dataclasses all the same: those set each field through object.__setattr__, which made building
# the tens of thousands of nodes of a large rule set several times slower.


@dataclass(slots=True, eq=False)
class _Leaf:
    """A phrase in matching form: normalised (and maybe stemmed) words, options, where to look."""

    text: str
    kind: str  # "actor", "keyword" or "query"
    words: tuple[str, ...]
    prefixes: tuple[bool, ...]
    slop: int
    fields: tuple[str, ...]
    stem: str | None  # the stemmer's language, when words are stems
    raw: tuple[str, ...] | None  # words with their case (accents folded), for case_sensitive
    glued: tuple[bool, ...]  # glued[i]: word i+1 directly follows word i (one written word)
    needs: tuple[str, ...]  # whole words that must all be in the fields' vocabulary (not stems)
    plain: bool  # no prefix, stem or case: the words are found as they are in the field
    word: str | None  # the leaf is this one word, plainly: being in the vocabulary decides it
    prefix: str | None  # the leaf is this one prefix, plainly: a word that starts so decides it

    def holds(self, doc: _Doc) -> bool:
        """Whether the phrase occurs: decided on the article's vocabulary when that suffices,
        since most leaves a candidate rule asks about are absent, and positions cost more."""
        if self.word is not None:
            return self.word in doc.vocabulary(self.fields)
        if self.prefix is not None:
            return doc.has_prefix(self.prefix, self.fields)
        if not doc.vocabulary(self.fields).issuperset(self.needs):
            return False
        return bool(_leaf_occurrences(self, doc))

    def key(self, rarity: Mapping[str, int]) -> str | None:
        """The index key of the word most likely to be rare, or None if none can be indexed.

        ``rarity`` counts the terms of the whole rule set that use each word: a word many terms
        share ("president" in "President X") is a poor key, so the least shared word wins, and
        among those the longest (longer words are rarer in text).
        """
        whole = self.words
        if True in self.prefixes:
            whole = tuple([w for w, prefix in zip(whole, self.prefixes, strict=True) if not prefix])
        if whole:
            if len(whole) == 1:
                word = whole[0]
            else:
                word = min(whole, key=lambda w: (rarity.get(w, 0), -len(w)))
            return f"\x01{self.stem}:{word}" if self.stem else word
        longest = max(self.words, key=len)
        return "\x02" + longest[:_PREFIX_KEY] if len(longest) >= _PREFIX_KEY else None


@dataclass(slots=True, eq=False)
class _Literal:
    """Text that every match of a regex holds (see _required_literal), in the forms a field is
    searched for it: a field without it is not searched with the regex, which costs far more."""

    folded: str  # casefolded, for the casefolded text
    ascii: bytes | None  # of an ASCII literal, as text.ascii_words has it, for a field's own


@dataclass(slots=True, eq=False)
class _Regex:
    pattern: Any  # re2._Regexp
    text: str
    fields: tuple[str, ...]
    literal: _Literal | None

    def holds(self, doc: _Doc) -> bool:
        """Whether the regex matches some text: the first non-empty match decides, so a regex
        that matches a million times is not asked for every match to decide a NOT."""
        found = doc.memo.get(self)
        if found is not None:
            return bool(found)
        for _name, text in self.texts(doc):
            first = self.pattern.search(text)
            if first is not None and (first.end() > first.start() or _regex_occurrences(self, doc)):
                return True
        doc.memo[self] = []  # no match in any field: the next rule asking is answered here
        return False

    def texts(self, doc: _Doc) -> Iterator[tuple[str, str]]:
        """(field name, text to search) for each field the regex could match in."""
        for name in self.fields:
            fld = doc.field(name)
            if not fld.text or (self.literal is not None and not fld.may_hold(self.literal)):
                continue  # nothing to find: a search costs microseconds even so
            yield name, fld.searchable


# Every node decides with ``holds`` (a method, so the hot path dispatches without a ``match``,
# and loops rather than any()/all() over a generator, which cost a frame per call); collecting
# the occurrences that make a node hold is ``_holds``, done for matching rules only.


@dataclass(slots=True, eq=False)
class _Any:
    """At least one child holds (an OR; also a rule's actors or keywords part)."""

    children: tuple[_Node, ...]

    def holds(self, doc: _Doc) -> bool:
        for child in self.children:  # noqa: SIM110 (see above)
            if child.holds(doc):
                return True
        return False


@dataclass(slots=True, eq=False)
class _All:
    children: tuple[_Node, ...]

    def holds(self, doc: _Doc) -> bool:
        for child in self.children:  # noqa: SIM110 (see above)
            if not child.holds(doc):
                return False
        return True


@dataclass(slots=True, eq=False)
class _None:
    """The child does not hold (NOT)."""

    child: _Node

    def holds(self, doc: _Doc) -> bool:
        return not self.child.holds(doc)


@dataclass(slots=True, eq=False)
class _Near:
    left: _Node
    right: _Node
    distance: int

    def holds(self, doc: _Doc) -> bool:
        return bool(_spans(self, doc))


_Node = _Leaf | _Regex | _Any | _All | _None | _Near


@dataclass(slots=True, eq=False)
class _Compiled:
    rule: Rule
    actors: _Any | None
    keywords: _Any | None
    excludes: tuple[_Leaf, ...]
    query: _Node | None


# -- per-article state --------------------------------------------------------------------------


class _Field:
    """One field of one article: its words, and where each word occurs (built on demand).

    A multi-valued field (tags) keeps its values apart: ``_GAP`` empty words stand between two
    values, so no phrase, slop or NEAR can join words of different values.
    """

    __slots__ = (
        "_casefolded",
        "_found",
        "_index",
        "_joined",
        "_prefixes",
        "_segments",
        "_spaced",
        "_starts",
        "_stems",
        "_vocabulary",
        "_words",
        "name",
        "norms",
        "text",
    )

    def __init__(self, name: str, text: str, segments: Sequence[str] | None = None) -> None:
        self.name = name
        self.text = text
        self._segments = segments
        # The text's ASCII words, where a hit's offsets are found (see span), between two
        # spaces; None when the text has none, or when the field has several values.
        self._spaced: bytes | None = None
        if segments is None:
            self.norms: list[str]
            self.norms, spaced = spaced_norms(text)
            if spaced is not None:
                self._spaced = b" " + spaced + b" "
        else:
            self.norms = []
            for number, segment in enumerate(segments):
                if number:
                    self.norms.extend([""] * _GAP)
                self.norms.extend(norms(segment))
        self._words: Words | None = None
        self._found: dict[str, list[int]] = {}
        self._casefolded: str | None = None
        self._starts: dict[str, list[int]] = {}
        self._vocabulary: set[str] | None = None
        self._index: dict[str, list[int]] | None = None
        self._joined: str | None = None
        self._stems: dict[str, dict[str, list[int]]] = {}
        self._prefixes: dict[str, list[int]] = {}

    def index(self) -> dict[str, list[int]]:
        if self._index is None:
            # Built on first use: most articles match no candidate rule and never need it.
            index: dict[str, list[int]] = {}
            for position, norm in enumerate(self.norms):
                index.setdefault(norm, []).append(position)
            self._index = index
        return self._index

    @property
    def vocabulary(self) -> set[str]:
        """The distinct words of the field."""
        if self._vocabulary is None:
            self._vocabulary = set(self.norms)
        return self._vocabulary

    def may_hold(self, literal: _Literal) -> bool:
        """Whether the text holds ``literal``, but for case: whether a regex that needs it may
        match."""
        if literal.ascii is not None and self._spaced is not None:
            # Cheaper than casefolding a text that is not ASCII.
            return literal.ascii in self._spaced
        if self._casefolded is None:
            self._casefolded = self.text.casefold()
        return literal.folded in self._casefolded

    @property
    def searchable(self) -> str:
        """The text as a regex searches it: lone surrogates, which an article may hold when it
        was not read through monitor.documents and which cannot be encoded for RE2, each
        become U+FFFD, one character for one, so offsets are those of the text."""
        text = self.text
        if text.isascii() or not _SURROGATE.search(text):
            return text
        return _SURROGATE.sub("\ufffd", text)

    @property
    def joined(self) -> str:
        """The words, each between two NULs (never part of a word): the occurrences of a word,
        or of the words that start with a prefix, are found with ``str.find``, in C."""
        if self._joined is None:
            self._joined = "\x00" + "\x00".join(self.norms) + "\x00"
        return self._joined

    def positions(self, word: str, prefix: bool, stem: str | None) -> Sequence[int]:
        """Ascending word indexes of ``word`` (a stem when ``stem``; a prefix when ``prefix``)."""
        if prefix:
            found = self._prefixes.get(word)
            if found is None:
                found = self._prefixes[word] = self._find("\x00" + word)
            return found
        if stem is None:
            found = self._found.get(word)
            if found is not None:
                return found
            if word not in self.vocabulary:
                return ()
            if self._index is None and len(self._found) < _SCANS_BEFORE_INDEX:
                # Searches are cheaper than building the whole index, up to a point.
                found = self._found[word] = self._find(f"\x00{word}\x00")
                return found
            return self.index().get(word, ())
        stems = self._stems.get(stem)
        if stems is None:
            stem_of = stemmer(stem)
            stems = {}
            for norm, ps in self.index().items():
                if norm:
                    stems.setdefault(stem_of(norm), []).extend(ps)
            for ps in stems.values():
                ps.sort()
            self._stems[stem] = stems
        return stems.get(word, ())

    def _find(self, needle: str) -> list[int]:
        """The positions of the words that ``needle`` (a NUL, then a word and a NUL, or a
        prefix) starts in :attr:`joined`: a word's position is the count of NULs before it."""
        joined = self.joined
        found: list[int] = []
        position = counted = 0
        at = joined.find(needle)
        while at >= 0:
            position += joined.count("\x00", counted, at)
            counted = at
            found.append(position)
            # The NUL that ends this word may start the next occurrence.
            at = joined.find(needle, at + len(needle) - 1)
        return found

    @property
    def words(self) -> Words:
        """Words with their offsets, computed only for fields that have hits."""
        if self._words is None:
            spans = word_spans(self.text) if self._segments is None else None
            if spans is not None and len(spans[0]) == len(self.norms):
                self._words = Words(self.norms, *spans)
            elif self._segments is None:
                self._words = split_words(self.text)
            else:
                self._words = _joined_words(self._segments)
        return self._words

    def span(self, first: int, last: int) -> tuple[int, int]:
        """The character offsets of words ``first`` to ``last``."""
        if self._spaced is None or len(self._starts) >= _SCANS_BEFORE_INDEX:
            # Past a few words, each found by a search of the whole text, finding where every
            # word starts at once is cheaper, and keeps a field with thousands of distinct hit
            # words ("appl*" over a list of products) linear.
            words = self.words
            return words.starts[first], words.ends[last]
        return self._start(first), self._start(last) + len(self.norms[last])

    def _start(self, position: int) -> int:
        """Where word ``position`` starts. ``_spaced`` holds each word where the text does, so it
        is the occurrence of the word there that has as many before it as the word has in
        ``norms``. Fields have a hit or two: finding where the few words that have hits start
        saves working out where every word starts."""
        word = self.norms[position]
        starts = self._starts.get(word)
        if starts is None:
            # Every place the word stands, in one pass of searches: a word with k hits then
            # costs k lookups, not k searches of k lengths. The space before the word stands
            # where the word does in the text.
            spaced = self._spaced
            assert spaced is not None  # callers check
            needle = f" {word} ".encode("ascii")
            starts = self._starts[word] = []
            at = spaced.find(needle)
            while at >= 0:
                starts.append(at)
                at = spaced.find(needle, at + 1)
        return starts[bisect_left(self.positions(word, False, None), position)]

    def raw(self, position: int) -> str:
        start, end = self.span(position, position)
        return self.text[start:end]


def _joined_words(segments: Sequence[str]) -> Words:
    """Words of segments joined by newlines, with _GAP empty words between two segments."""
    joined = Words([], [], [])
    offset = 0
    for number, segment in enumerate(segments):
        if number:
            joined.norms.extend([""] * _GAP)
            joined.starts.extend([offset - 1] * _GAP)
            joined.ends.extend([offset - 1] * _GAP)
        words = split_words(segment)
        joined.norms.extend(words.norms)
        joined.starts.extend(start + offset for start in words.starts)
        joined.ends.extend(end + offset for end in words.ends)
        offset += len(segment) + 1
    return joined


class _Doc:
    """An article being matched: its fields, built as rules ask for them."""

    __slots__ = ("_fields", "_joined", "_vocabularies", "article", "language", "memo", "spans")

    def __init__(self, article: Article) -> None:
        self.article = article
        self._fields: dict[str, _Field] = {}
        # Occurrences per term: rules share actors and words, and a matching rule's terms are
        # looked at twice (to decide, then to collect hits).
        self.memo: dict[_Leaf | _Regex, list[_Occ]] = {}
        self.spans: dict[_Leaf, list[_Span]] = {}
        self.language: str | None = article.language
        # Per tuple of fields (nearly every rule searches the same few): their distinct words,
        # as a set and joined (see has_prefix).
        self._vocabularies: dict[tuple[str, ...], set[str]] = {}
        self._joined: dict[tuple[str, ...], str] = {}

    def vocabulary(self, fields: tuple[str, ...]) -> set[str]:
        """The distinct words of ``fields``."""
        found = self._vocabularies.get(fields)
        if found is None:
            if len(fields) == 1:
                found = self.field(fields[0]).vocabulary
            else:
                found = set().union(*[self.field(name).vocabulary for name in fields])
            self._vocabularies[fields] = found
        return found

    def has_prefix(self, prefix: str, fields: tuple[str, ...]) -> bool:
        """Whether a word of ``fields`` starts with ``prefix``."""
        joined = self._joined.get(fields)
        if joined is None:
            # The fields' distinct words in one string, each after a NUL (never part of a word),
            # for one search.
            joined = self._joined[fields] = "\x00" + "\x00".join(self.vocabulary(fields))
        return "\x00" + prefix in joined

    def field(self, name: str) -> _Field:
        found = self._fields.get(name)
        if found is None:
            if name == "tags":
                tags = self.article.tags
                found = _Field(name, "\n".join(tags), tags)
            else:
                found = _Field(name, _field_text(self.article, name))
            self._fields[name] = found
        return found

    def article_language(self) -> str | None:
        if self.language is None:
            text = " ".join(self.field(name).text for name in FIELDS)
            self.language = detect_language(text) or ""
        return self.language.split("-")[0].lower() or None


def _field_text(article: Article, name: str) -> str:
    if name in FIELDS:
        return article.field_text(name)
    if name == "tags":
        return "\n".join(article.tags)
    if name == "source":
        return article.source_id
    return getattr(article, name) or ""


# An occurrence of a term: (field name, first word, last word, term, the words it matched).
# For a regex, first and last encode character offsets as -1 - offset, and there are no words.
_Occ = tuple[str, int, int, "_Leaf | _Regex", tuple[int, ...]]
# A positional unit for NEAR: (field name, first word, last word, occurrences, words)
_Span = tuple[str, int, int, tuple[_Occ, ...], frozenset[int]]


# -- the matcher --------------------------------------------------------------------------------


class Matcher:
    """Matches articles against a fixed set of rules, compiled once.

    Build one per rule set (a reload builds a new Matcher) and call :meth:`match` for each
    article; it is pure, so one Matcher may serve any number of callers.
    """

    __slots__ = (
        "_always",
        "_checks",
        "_compiled",
        "_fields",
        "_index",
        "_never",
        "_prefix_keys",
        "_second",
        "_stem_languages",
    )

    def __init__(self, rules: Iterable[Rule]) -> None:
        # Compiling builds hundreds of thousands of small objects and no cycles: the cyclic
        # garbage collector would scan them again and again for nothing.
        with long_lived():
            self._build(rules)

    def _build(self, rules: Iterable[Rule]) -> None:
        compiled: list[_Compiled] = []
        self._never: dict[str, str] = {}
        compiler = _Compiler()
        for rule in rules:
            entry = compiler.rule(rule)
            if entry is None:
                self._never[rule.id] = "disabled" if not rule.enabled else "nothing it can match"
            else:
                compiled.append(entry)
        self._compiled = tuple(compiled)
        # Which words the rule set's terms share (for the index keys), and which fields some rule
        # searches (index keys come from all of them): the compiler listed every use of a term,
        # counted here, so shared actors and terms are looked at once, not once per rule.
        rarity: dict[str, int] = {}
        searched: set[str] = set()
        for terminal, uses in Counter(compiler.terminals).items():
            if isinstance(terminal, _Leaf):
                searched.update(terminal.fields)
                for word in set(terminal.words):
                    rarity[word] = rarity.get(word, 0) + uses
            elif isinstance(terminal, _Regex):
                searched.update(terminal.fields)
        for entry in compiled:
            for exclude in entry.excludes:
                searched.update(exclude.fields)
        # The index maps a key to the rules whose first (smallest, rarest-keyed) group holds it:
        # an article's candidates are one union of sets, done in C. Most candidates lack a key
        # of their second group, found in C too when it has no prefix (the check of a prefix
        # is a search); the rest must then pass their checks (see _Compiler.checks).
        grouping = _Grouping(rarity)
        postings: dict[str, set[int]] = {}
        seconds: list[tuple[str, ...] | None] = []
        checks: list[_Checks] = []
        always: list[int] = []
        for number, entry in enumerate(compiled):
            groups = grouping.entry(entry)
            if groups:
                for key in groups[0]:
                    posting = postings.get(key)
                    if posting is None:
                        postings[key] = {number}
                    else:
                        posting.add(number)
            else:
                always.append(number)
            second = groups[1] if len(groups) > 1 and not _has_prefix_key(groups[1]) else None
            seconds.append(tuple(second) if second is not None else None)
            checks.append(compiler.checks(entry, groups))
        self._index = {key: frozenset(rules) for key, rules in postings.items()}
        self._second = tuple(seconds)
        self._checks = tuple(checks)
        self._always = tuple(always)
        # Prefixes are index keys only for rules with nothing better to index (checks search
        # for prefixes instead): an article's prefixes are computed only if there are any.
        self._prefix_keys = frozenset(key[1:] for key in postings if key.startswith("\x02"))
        self._fields = tuple(name for name in ALL_FIELDS if name in searched)
        indexed = chain(postings, chain.from_iterable(filter(None, seconds)))
        self._stem_languages = compiler.stem_languages(indexed)

    def __len__(self) -> int:
        return len(self._compiled)

    def match(self, article: Article) -> list[RuleMatch]:
        """Return a RuleMatch for each rule the article matches, in the order rules were given.

        Each RuleMatch lists every occurrence of the rule's aliases, keywords and positive query
        terms, sorted by field, start and end. An empty list means no rule matched.
        """
        doc = _Doc(article)
        matches = []
        for number in self._candidates(doc):
            entry = self._compiled[number]
            occurrences = _evaluate(entry, doc)
            if occurrences is not None:
                matches.append(
                    RuleMatch(entry.rule.id, entry.rule.severity, _hits(doc, occurrences))
                )
        return matches

    def explain(self, article: Article) -> dict[str, str]:
        """For each rule that does not match ``article``, which part failed, in words."""
        doc = _Doc(article)
        reasons = dict(self._never)
        for entry in self._compiled:
            if _evaluate(entry, doc) is None:
                reasons[entry.rule.id] = _explain(entry, doc)
        return reasons

    def _candidates(self, doc: _Doc) -> list[int]:
        """Numbers of the rules that pass their checks against the article's keys (its words,
        their prefixes and stems), in ascending order."""
        present = doc.vocabulary(self._fields)
        keys = present
        if self._prefix_keys:
            starts = set(map(_prefix_key, present))
            starts &= self._prefix_keys
            keys = keys.union(map("\x02".__add__, starts))
        for language in self._stem_languages:
            stem_of = stemmer(language)
            keys = keys | {f"\x01{language}:{stem_of(word)}" for word in present}
        index, second, checks, fields = self._index, self._second, self._checks, self._fields
        first: set[int] = set().union(*[index[key] for key in keys & index.keys()])
        found = [
            n
            for n in first
            if ((group := second[n]) is None or not keys.isdisjoint(group))
            and _admits(checks[n], keys, doc, fields)
        ]
        found.extend(self._always)
        found.sort()
        return found


_prefix_key = itemgetter(slice(None, _PREFIX_KEY))
"""The first characters of a word, under which prefix terms are indexed (in C, for a map)."""


def _admits(checks: _Checks, keys: set[str], doc: _Doc, fields: tuple[str, ...]) -> bool:
    """Whether the article passes every check: one of its single keys present, or every key of
    one of its groups, or a word of ``fields`` that starts with one of its prefixes."""
    for singles, groups, prefixes in checks:
        if (
            keys.isdisjoint(singles)
            and not (groups and _any_within(groups, keys))
            and not (prefixes and _any_prefix(prefixes, doc, fields))
        ):
            return False
    return True


def _any_within(groups: tuple[tuple[str, ...], ...], keys: set[str]) -> bool:
    for group in groups:  # noqa: SIM110 (a loop: cheaper than any() over a generator)
        if keys.issuperset(group):
            return True
    return False


def _any_prefix(prefixes: tuple[str, ...], doc: _Doc, fields: tuple[str, ...]) -> bool:
    for prefix in prefixes:  # noqa: SIM110 (a loop: cheaper than any() over a generator)
        if doc.has_prefix(prefix, fields):
            return True
    return False


# -- compiling ----------------------------------------------------------------------------------


class _Compiler:
    """Compiles the rules of one rule set, sharing what they have in common.

    Rules repeat actors and terms: equal terms become one leaf (leaves are never changed once
    built, so safe to share), which also lets an article look each one up once however many rules
    use it. The caches live for one build, so a reload does not keep the previous rule set alive.
    """

    __slots__ = (
        "_actors",
        "_checks",
        "_keys",
        "_leaves",
        "_needs",
        "_parts",
        "_regexes",
        "_stemmed",
        "_terms",
        "terminals",
    )

    def __init__(self) -> None:
        self._terms: dict[str, q.Phrase | None] = {}
        self._leaves: dict[tuple[Any, ...], _Leaf] = {}
        self._actors: dict[tuple[Any, ...], _Any] = {}
        self._needs: dict[_Leaf, tuple[tuple[str, ...], str | None]] = {}
        self._keys: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._parts: dict[tuple[_Leaf, ...], _Check | None] = {}
        self._checks: dict[_Check, _Check] = {}
        self._regexes: dict[tuple[str, tuple[str, ...]], _Regex] = {}
        self.terminals: list[_Node] = []
        """Every phrase and regex of every compiled rule, once per use (a shared actor's aliases
        once per rule naming it): how many terms use each word makes the index keys."""
        self._stemmed = False

    def rule(self, rule: Rule) -> _Compiled | None:
        """The rule in matching form, or None if it can never match."""
        if not rule.enabled:
            return None
        fields = tuple(rule.fields) or FIELDS
        stem = rule.language if rule.stem else None
        aliases = [
            self.term(alias, "actor", 0, fields, stem)
            for actor in rule.actors
            for alias in actor.aliases
        ]
        keywords = [
            self.term(keyword, "keyword", max(rule.slop, 0), fields, stem)
            for keyword in rule.keywords
        ]
        actors_part = _part(aliases) if rule.actors else None
        keywords_part = _part(keywords) if rule.keywords else None
        if (rule.actors and actors_part is None) or (rule.keywords and keywords_part is None):
            return None  # a required part with no usable term can never hold
        excludes: tuple[_Leaf, ...] = ()
        if rule.exclude:
            found = [self.term(x, "exclude", 0, fields, stem) for x in rule.exclude]
            excludes = tuple([e for e in found if e is not None])
        # The query's terminals are counted as it is compiled, and forgotten if the rule is.
        counted = len(self.terminals)
        query = self.node(rule.query, rule, fields, stem) if rule.query is not None else None
        if actors_part is None and keywords_part is None and query is None:
            del self.terminals[counted:]
            return None
        if actors_part is not None:
            self.terminals += actors_part.children
        if keywords_part is not None:
            self.terminals += keywords_part.children
        return _Compiled(rule, actors_part, keywords_part, excludes, query)

    def term(
        self, term: Term, kind: str, slop: int, fields: tuple[str, ...], stem: str | None
    ) -> _Leaf | None:
        """A keyword, alias or exclusion as a leaf; None if it has no words."""
        spec = term if isinstance(term, TermSpec) else TermSpec(term)
        if spec.text in self._terms:
            phrase = self._terms[spec.text]
        else:
            phrase = self._terms[spec.text] = q.parse_term_text(spec.text)
        if phrase is None:
            return None
        slop = spec.slop if spec.slop is not None else slop
        return self.leaf(phrase, kind, slop, fields, stem, case_sensitive=spec.case_sensitive)

    def leaf(
        self,
        phrase: q.Phrase,
        kind: str,
        slop: int,
        fields: tuple[str, ...],
        stem: str | None,
        *,
        case_sensitive: bool,
    ) -> _Leaf:
        # The phrase's fields rather than the phrase: a dataclass hashes in Python, a tuple in C.
        key = (
            phrase.text,
            phrase.words,
            phrase.prefixes,
            phrase.slop,
            phrase.fields,
            phrase.case_sensitive,
            kind,
            slop,
            fields,
            stem,
            case_sensitive,
        )
        found = self._leaves.get(key)
        if found is None:
            found = _leaf(phrase, kind, slop, fields, stem, case_sensitive=case_sensitive)
            self._leaves[key] = found
            self._stemmed = self._stemmed or stem is not None
        return found

    def actor(self, actor: Actor, fields: tuple[str, ...], stem: str | None) -> _Any:
        """An actor's aliases in matching form, as a query's ``@actor`` names them."""
        key = (actor.id, actor.name, actor.aliases, fields, stem)  # hashed in C, as for a leaf
        found = self._actors.get(key)
        if found is None:
            leaves = [self.term(alias, "actor", 0, fields, stem) for alias in actor.aliases]
            found = self._actors[key] = _part(leaves) or _Any(())
        return found

    def regex(self, pattern: str, fields: tuple[str, ...]) -> _Regex:
        """A query's ``/pattern/``: one for all rules that search the same fields for it, so an
        article runs it once."""
        key = (pattern, fields)
        found = self._regexes.get(key)
        if found is None:
            options = re2.Options()
            options.case_sensitive = False
            options.log_errors = False
            literal = None
            if text := _required_literal(pattern):
                literal = _Literal(text.casefold(), ascii_words(text) if text.isascii() else None)
            found = _Regex(re2.compile(pattern, options), f"/{pattern}/", fields, literal)
            self._regexes[key] = found
        return found

    def node(self, node: q.Node, rule: Rule, fields: tuple[str, ...], stem: str | None) -> _Node:
        # The most common nodes first: a query is mostly phrases, ORs and ANDs of them.
        match node:
            case q.Phrase():
                leaf = self.leaf(
                    node, "query", node.slop, fields, stem, case_sensitive=node.case_sensitive
                )
                self.terminals.append(leaf)
                return leaf
            case q.Or(children):
                return _Any(tuple([self.node(c, rule, fields, stem) for c in children]))
            case q.And(children):
                return _All(tuple([self.node(c, rule, fields, stem) for c in children]))
            case q.ActorRef(actor_id, scope):
                aliases = self.actor(_actor(rule, actor_id), scope or fields, stem)
                self.terminals += aliases.children
                return aliases
            case q.Not(child):
                return _None(self.node(child, rule, fields, stem))
            case q.Near(left, right, distance):
                return _Near(
                    self.node(left, rule, fields, stem),
                    self.node(right, rule, fields, stem),
                    distance,
                )
            case q.Regex(pattern, scope):
                regex = self.regex(pattern, scope or fields)
                self.terminals.append(regex)
                return regex
        raise AssertionError(node)

    def checks(self, entry: _Compiled, groups: Sequence[frozenset[str]]) -> _Checks:
        """The checks a candidate must pass before it is evaluated.

        First its index ``groups`` after the first (the index found it by that one) that have a
        prefix (the others are checked ahead of these, see Matcher._candidates), then its
        required parts: each needs one term whose words all occur in the article (prefixes
        aside), so an alias indexed under "President" is not worth a phrase search when the name
        beside it is absent. Terms of one word are single keys (one C call decides them all);
        identical checks are shared between rules, and a shared part's check is made once.

        A check that another makes already is left out: a part's whose single keys hold every
        key of a group (one of which the candidate has), and a group's that a part's implies
        (the part's check searches for its terms' whole prefixes, where the group's searches
        for their first letters: most articles that have those have no term of the part).
        """
        parts: list[tuple[_Leaf, ...]] = []
        if entry.actors is not None:
            _required(entry.actors, parts)
        if entry.keywords is not None:
            _required(entry.keywords, parts)
        if entry.query is not None:
            _required(entry.query, parts)
        known = self._parts
        required: list[_Check] = []
        for alternatives in parts:
            if alternatives in known:
                check = known[alternatives]
            else:
                check = known[alternatives] = self._check(alternatives)
            if check is not None:
                required.append(check)
        checks: list[_Check] = []
        for group in groups[1:]:
            if _has_prefix_key(group) and not any(_implies(c, group) for c in required):
                checks.append(self._group_check(group))
        checks += [check for check in required if not _implied(check, groups)]
        return tuple(checks)

    def _group_check(self, group: frozenset[str]) -> _Check:
        """The check that an article has a key of ``group``."""
        singles: list[str] = []
        prefixes: list[str] = []
        for key in group:
            if key.startswith("\x02"):
                prefixes.append(key[1:])
            else:
                singles.append(key)
        singles.sort()
        prefixes.sort()
        return self._intern((tuple(singles), (), tuple(prefixes)))

    def _check(self, alternatives: tuple[_Leaf, ...]) -> _Check | None:
        """The check of a part that one of ``alternatives`` must hold; None if one always
        passes."""
        singles: set[str] = set()
        groups: list[tuple[str, ...]] = []
        prefixes: set[str] = set()
        for leaf in alternatives:
            keys, prefix = self._need(leaf)
            if len(keys) == 1:
                singles.add(keys[0])
            elif keys:
                groups.append(keys)
            elif prefix is not None:
                prefixes.add(prefix)
            else:
                return None  # an alternative with nothing to check always passes
        return self._intern((tuple(sorted(singles)), tuple(groups), tuple(sorted(prefixes))))

    def _need(self, leaf: _Leaf) -> tuple[tuple[str, ...], str | None]:
        """What the article's keys must hold for a leaf to occur, cheaply checked: the keys of
        its whole words (stems as stem keys), sorted, else its prefix when it is one prefix; or
        nothing."""
        found = self._needs.get(leaf)
        if found is None:
            if leaf.stem is None:
                keys: Iterable[str] = leaf.needs  # its whole words
            else:
                keys = [
                    f"\x01{leaf.stem}:{word}"
                    for word, prefix in zip(leaf.words, leaf.prefixes, strict=True)
                    if not prefix
                ]
            ordered = tuple(sorted(set(keys)))
            prefix = leaf.words[0] if not ordered and len(leaf.words) == 1 else None
            # Equal leaves of other fields or kinds need the same keys: one tuple for them all.
            ordered = self._keys.setdefault(ordered, ordered)
            found = self._needs[leaf] = (ordered, prefix)
        return found

    def _intern(self, check: _Check) -> _Check:
        """One tuple for equal checks, however many rules have them."""
        found = self._checks.get(check)
        if found is None:
            found = self._checks[check] = check
        return found

    def stem_languages(self, keys: Iterable[str]) -> list[str]:
        """The languages of the stem keys among ``keys`` (read only if some leaf is stemmed)
        and the keys of the checks: an article computes the stems of its words in each."""
        if not self._stemmed:
            return []  # no leaf is stemmed, so there are no stem keys to look for
        every_key = set(keys)
        for singles, groups, _prefixes in self._checks:
            every_key.update(singles, *groups)
        return sorted({key[1:].split(":", 1)[0] for key in every_key if key.startswith("\x01")})


def _has_prefix_key(group: frozenset[str]) -> bool:
    for key in group:  # noqa: SIM110 (a loop: cheaper than any() over a generator)
        if key.startswith("\x02"):
            return True
    return False


def _implies(check: _Check, group: frozenset[str]) -> bool:
    """Whether an article that passes ``check`` has a key of ``group``."""
    singles, groups, prefixes = check
    if not group.issuperset(singles):
        return False
    for keys in groups:
        if group.isdisjoint(keys):
            return False
    for prefix in prefixes:  # noqa: SIM110 (a loop: cheaper than all() over a generator)
        # A word that starts with the prefix starts with its first letters.
        if "\x02" + prefix[:_PREFIX_KEY] not in group:
            return False
    return True


def _implied(check: _Check, groups: Sequence[frozenset[str]]) -> bool:
    singles = check[0]
    for group in groups:  # noqa: SIM110 (a loop: cheaper than any() over a generator)
        if group.issubset(singles):
            return True
    return False


_REGEX_SPECIAL = frozenset("\\.+*?()|[]{}^$")
_ZERO_WIDTH = ("^", "\\A", "\\b", "\\B")


def _required_literal(pattern: str) -> str:
    """Text that every match of ``pattern`` (RE2 syntax) holds but for case, or "".

    Only the plain characters that open the pattern, after zero-width assertions, are taken,
    and only when the pattern has no ``|`` at all: a match must then hold them one after the
    other. A character followed by a repetition may be absent, so it ends the run before it.

    A character matches its case variants only (k and the Kelvin sign, s and the long s), which
    casefold alike, so the casefolded literal is in the casefolded text of every match; and
    the variants of an ASCII character fold to it in text.ascii_words (both checked for every
    character against RE2 itself).
    """
    if "|" in pattern:
        return ""
    at = 0
    while True:
        for assertion in _ZERO_WIDTH:
            if pattern.startswith(assertion, at):
                at += len(assertion)
                break
        else:
            break
    end = at
    while end < len(pattern) and pattern[end] not in _REGEX_SPECIAL:
        end += 1
    if end < len(pattern) and pattern[end] in "?*{":
        end -= 1  # repeated, maybe zero times
    return pattern[at:end]


def _actor(rule: Rule, actor_id: str) -> Actor:
    """The actor a rule's query names ``@actor_id``."""
    for actor in rule.query_actors:
        if actor.id == actor_id:
            return actor
    for actor in rule.actors:
        if actor.id == actor_id:
            return actor
    raise AssertionError(actor_id)


def _part(leaves: list[_Leaf | None]) -> _Any | None:
    # Spellings that normalise alike ("Erdoğan", "Erdogan") are one term: reporting the same
    # words twice under two names would only clutter the alert.
    unique: dict[tuple[Any, ...], _Leaf] = {}
    for item in leaves:
        if item is not None:
            unique.setdefault((item.words, item.prefixes, item.slop, item.raw), item)
    return _Any(tuple(unique.values())) if unique else None


def _leaf(
    phrase: q.Phrase,
    kind: str,
    slop: int,
    fields: tuple[str, ...],
    stem: str | None,
    *,
    case_sensitive: bool,
) -> _Leaf:
    words = phrase.words
    prefixes = phrase.prefixes
    prefixed = True in prefixes
    if stem is not None:
        stem_of = stemmer(stem)
        words = tuple([w if p else stem_of(w) for w, p in zip(words, prefixes, strict=True)])
    raw = None
    if case_sensitive:
        raw = tuple([fold_accents(word.rstrip("*")) for word in q.raw_words(phrase.text)])
    alone = len(words) == 1 and raw is None
    # Stems are not the article's words, so only unstemmed whole words can be required.
    if stem is not None:
        needs: tuple[str, ...] = ()
    elif prefixed:
        needs = tuple([w for w, p in zip(words, prefixes, strict=True) if not p])
    else:
        needs = words
    text = phrase.text
    glued = _glue(text, len(words))
    plain = stem is None and raw is None and not prefixed
    word = words[0] if alone and not prefixed and stem is None else None
    # Prefixes are never stemmed: a prefix leaf is decided on the vocabulary even when stemming.
    prefix = words[0] if alone and prefixed else None
    fields = phrase.fields or fields
    # Positional: tens of thousands of leaves, and keywords cost more than the rest of the call.
    return _Leaf(
        text, kind, words, prefixes, slop, fields, stem, raw, glued, needs, plain, word, prefix
    )


@lru_cache(maxsize=65_536)
def _glue(text: str, size: int) -> tuple[bool, ...]:
    """Which consecutive words of a term were written as one word ("Kassym-Jomart", "习近平"):
    slop never applies inside a written word. ``glued[i]`` is about words i and i+1."""
    if size < 2:
        return ()  # nothing to glue: most terms are one word
    parts = text.split()
    for part in parts:  # a loop: cheaper than all() over a generator
        if not (part.isascii() and part.rstrip("*").isalnum()):
            break
    else:
        return (False,) * max(0, size - 1)  # each written word is one word
    starts: list[bool] = []  # for each word: does it start a written word?
    for part in parts:
        count = len(norms(part.replace("*", " ")))
        starts.extend([True] + [False] * (count - 1) if count else [])
    glued = [not start for start in starts[1:size]]
    return tuple(glued) + (False,) * max(0, size - 1 - len(glued))


_Check = tuple[tuple[str, ...], tuple[tuple[str, ...], ...], tuple[str, ...]]
"""A check of a candidate against the article: one of its single keys present, or every key of
one of its groups, or a word that starts with one of its prefixes."""
_Checks = tuple[_Check, ...]


def _required(node: _Node, parts: list[tuple[_Leaf, ...]]) -> None:
    """Add to ``parts`` the alternatives of leaves (one must occur) that ``node`` requires."""
    if isinstance(node, _Leaf):
        parts.append((node,))
    elif isinstance(node, _Any):
        if node.children and _all_leaves(node.children):
            parts.append(node.children)  # type: ignore[arg-type]
    elif isinstance(node, _All):
        for child in node.children:
            _required(child, parts)
    elif isinstance(node, _Near):
        _required(node.left, parts)
        _required(node.right, parts)


def _all_leaves(nodes: tuple[_Node, ...]) -> bool:
    for node in nodes:  # noqa: SIM110 (a loop: cheaper than all() over a generator)
        if not isinstance(node, _Leaf):
            return False
    return True


class _Grouping:
    """Index groups of compiled rules, keyed on the rarest words of the rule set.

    A group is a set of keys of which at least one must occur for a part of a rule to hold.
    Rules share leaves and actors: the group of each leaf and of each OR is computed once.
    """

    __slots__ = ("_groups", "_keys", "_rarity")

    def __init__(self, rarity: Mapping[str, int]) -> None:
        self._rarity = rarity
        self._groups: dict[_Any, frozenset[str] | None] = {}
        self._keys: dict[_Leaf, str | None] = {}

    def entry(self, entry: _Compiled) -> list[frozenset[str]]:
        """The index groups of ``entry``: at most ``_MAX_GROUPS``, the smallest."""
        groups: list[frozenset[str]] = []
        for part in (entry.actors, entry.keywords):
            if part is not None and (group := self.group(part)):
                groups.append(group)
        query = entry.query
        if isinstance(query, _All):
            # Independent groups of a query: one per indexable child of a top-level AND.
            for child in query.children:
                if group := self.group(child):
                    groups.append(group)
        elif query is not None and (group := self.group(query)):
            groups.append(group)
        if len(groups) > 1:
            # Fewer, smaller groups are cheaper: keep the ones with the fewest keys.
            groups.sort(key=len)
            del groups[_MAX_GROUPS:]
        return groups

    def group(self, node: _Node) -> frozenset[str] | None:
        """Keys of which at least one must occur for ``node`` to hold; None if there are none."""
        match node:
            case _Leaf():
                key = self._key(node)
                return frozenset((key,)) if key is not None else None
            case _Any(children):
                # Only an OR can be shared (an actor's aliases): other nodes are one rule's.
                if node in self._groups:
                    return self._groups[node]
                group = self._groups[node] = self._any(children)
                return group
            case _All(children):
                candidates = [g for g in (self.group(c) for c in children) if g]
                return min(candidates, key=len) if candidates else None
            case _Near(left, right, _):
                sides = [g for g in (self.group(left), self.group(right)) if g]
                return min(sides, key=len) if sides else None
            case _:
                return None

    def _any(self, children: tuple[_Node, ...]) -> frozenset[str] | None:
        keys: set[str] = set()
        for child in children:
            # Most children are leaves, whose key is all their group holds.
            if isinstance(child, _Leaf):
                key = self._key(child)
                if key is None:
                    return None
                keys.add(key)
                continue
            group = self.group(child)
            if group is None:
                return None
            keys |= group
        return frozenset(keys) if keys else None

    def _key(self, leaf: _Leaf) -> str | None:
        if leaf in self._keys:
            return self._keys[leaf]
        key = self._keys[leaf] = leaf.key(self._rarity)
        return key


# -- evaluating ---------------------------------------------------------------------------------


def _evaluate(entry: _Compiled, doc: _Doc) -> list[_Occ] | None:
    """The occurrences that make ``entry`` match ``doc``, or None if it does not match.

    Most candidates fail, so a first pass stops at the first term that decides each part; only a
    rule that matches pays for collecting every occurrence (its hits).
    """
    rule = entry.rule
    if rule.sources is not None and doc.article.source_id not in rule.sources:
        return None
    counted: list[_Occ] = []
    if rule.min_hits is None:
        for part in (entry.actors, entry.keywords):
            if part is not None and not part.holds(doc):
                return None
    else:
        for part in (entry.actors, entry.keywords):
            if part is not None:
                found = _all_occurrences(part, doc)
                if not found:
                    return None
                counted += found
        if counted and _mentions(counted) < rule.min_hits:
            return None
    for exclude in entry.excludes:
        if exclude.holds(doc):
            return None
    if entry.query is not None and not entry.query.holds(doc):
        return None
    if rule.languages is not None and doc.article_language() not in rule.languages:
        return None
    occurrences = counted
    if rule.min_hits is None:
        for part in (entry.actors, entry.keywords):
            if part is not None:
                occurrences += _all_occurrences(part, doc)
    if entry.query is not None:
        occurrences += _holds(entry.query, doc) or []
    return occurrences


def _mentions(occurrences: list[_Occ]) -> int:
    """Occurrences counted once per place: overlapping aliases or keywords ("Kassym-Jomart
    Tokayev" and "Tokayev") at the same words are one mention."""
    count = 0
    reach: dict[str, int] = {}
    for name, first, last, _term, _words in sorted(occurrences, key=lambda o: (o[0], o[1], -o[2])):
        if first > reach.get(name, -1):
            count += 1
        reach[name] = max(reach.get(name, -1), last)
    return count


def _all_occurrences(part: _Any, doc: _Doc) -> list[_Occ]:
    return [occ for child in part.children for occ in _leaf_occurrences(child, doc)]  # type: ignore[arg-type]


def _holds(node: _Node, doc: _Doc) -> list[_Occ] | None:
    """Occurrences of the positive terms that make ``node`` hold, or None if it does not.

    Every child of an OR that holds contributes: the hits show every reason for a match. Only
    deciding, without the occurrences, is ``node.holds(doc)``.
    """
    match node:
        case _Leaf():
            found = _leaf_occurrences(node, doc)
            return found or None
        case _Regex():
            found = _regex_occurrences(node, doc)
            return found or None
        case _All(children):
            collected: list[_Occ] = []
            for child in children:
                part = _holds(child, doc)
                if part is None:
                    return None
                collected += part
            return collected
        case _Any(children):
            results = [r for r in (_holds(child, doc) for child in children) if r is not None]
            if not results:
                return None
            return [occ for r in results for occ in r]
        case _None(child):
            return None if child.holds(doc) else []
        case _Near():
            spans = _spans(node, doc)
            if not spans:
                return None
            return list(dict.fromkeys(occ for span in spans for occ in span[3]))
    raise AssertionError(node)


def _spans(node: _Node, doc: _Doc) -> list[_Span]:
    """Positional units of ``node`` (a leaf, an OR of them, or NEAR) for NEAR."""
    match node:
        case _Leaf():
            # Made once per article: chained NEARs often repeat a term (and rules share them).
            made = doc.spans.get(node)
            if made is None:
                made = doc.spans[node] = [
                    (occ[0], occ[1], occ[2], (occ,), frozenset(occ[4]))
                    for occ in _leaf_occurrences(node, doc)
                ]
            return made
        case _Any(children):
            return [span for child in children for span in _spans(child, doc)]
        case _Near(left, right, distance):
            lefts = _spans(left, doc)
            if not lefts:
                return []
            # Per field, the right spans by first word: each left span looks only at those that
            # start close enough to it, so a term repeated thousands of times costs thousands of
            # comparisons, not millions.
            fields: dict[str, list[_Span]] = {}
            for b in _spans(right, doc):
                fields.setdefault(b[0], []).append(b)
            near: dict[str, tuple[list[int], list[_Span], int]] = {}
            for name, spans in fields.items():
                spans.sort(key=itemgetter(1))
                widest = max(b[2] - b[1] for b in spans)
                near[name] = ([b[1] for b in spans], spans, widest)
            joined: dict[tuple[str, int, int], _Span] = {}
            for a in lefts:
                found = near.get(a[0])
                if found is None:
                    continue
                firsts, spans, widest = found
                low = bisect_left(firsts, a[1] - distance - 1 - widest)
                high = bisect_right(firsts, a[2] + distance + 1)
                for index in range(low, high):
                    b = spans[index]
                    if a[4] & b[4]:
                        continue  # the same words: not "near", the same
                    if a[2] < b[1]:
                        between = b[1] - a[2] - 1
                    elif b[2] < a[1]:
                        between = a[1] - b[2] - 1
                    else:
                        between = 0  # one sits between the other's words
                    if between > distance:
                        continue
                    key = (a[0], min(a[1], b[1]), max(a[2], b[2]))
                    if key not in joined:
                        joined[key] = (*key, a[3] + b[3], a[4] | b[4])
                        if len(joined) >= _MAX_SPANS:
                            # Enough to prove the NEAR holds and to show hits; chained NEARs
                            # would otherwise multiply their combinations.
                            return list(joined.values())
            return list(joined.values())
    return []


def _leaf_occurrences(leaf: _Leaf, doc: _Doc) -> list[_Occ]:
    found = doc.memo.get(leaf)
    if found is None:
        found = doc.memo[leaf] = _find_leaf(leaf, doc)
    return found


def _find_leaf(leaf: _Leaf, doc: _Doc) -> list[_Occ]:
    found: list[_Occ] = []
    needs = leaf.needs
    if not doc.vocabulary(leaf.fields).issuperset(needs):
        return found
    for name in leaf.fields:
        fld = doc.field(name)
        if not fld.norms or not fld.vocabulary.issuperset(needs):
            continue
        if leaf.plain:
            starts = fld.positions(leaf.words[0], False, None)
            if len(leaf.words) == 1:
                found.extend((name, p, p, leaf, (p,)) for p in starts)
            else:
                found.extend(
                    (name, words[0], words[-1], leaf, words)
                    for words in _phrases(fld.norms, starts, leaf.words[1:], leaf.slop, leaf.glued)
                )
            continue
        lists = []
        for number, (word, prefix) in enumerate(zip(leaf.words, leaf.prefixes, strict=True)):
            positions = fld.positions(word, prefix, leaf.stem)
            if positions and leaf.raw is not None:
                positions = _same_case(fld, positions, leaf.raw[number], prefix)
            if not positions:
                break
            lists.append(positions)
        else:
            if len(lists) == 1:
                found.extend((name, p, p, leaf, (p,)) for p in lists[0])
            else:
                found.extend(
                    (name, words[0], words[-1], leaf, words)
                    for words in _chains(lists[0], lists[1:], leaf.slop, leaf.glued)
                )
    return found


def _same_case(fld: _Field, positions: Sequence[int], raw: str, prefix: bool) -> list[int]:
    """The positions where the article writes the word with the term's letters and case."""
    if prefix:
        return [p for p in positions if fold_accents(fld.raw(p)).startswith(raw)]
    return [p for p in positions if fold_accents(fld.raw(p)) == raw]


def _regex_occurrences(node: _Regex, doc: _Doc) -> list[_Occ]:
    memo = doc.memo.get(node)
    if memo is not None:
        return memo
    found: list[_Occ] = []
    doc.memo[node] = found
    for name, text in node.texts(doc):
        for hit in node.pattern.finditer(text):
            if hit.end() > hit.start():
                found.append((name, -1 - hit.start(), -1 - hit.end(), node, ()))
    return found


def _chains(
    starts: Sequence[int],
    following: list[Sequence[int]],
    slop: int,
    glued: tuple[bool, ...],
) -> list[tuple[int, ...]]:
    """The word positions of each in-order chain within ``slop``, one per start.

    For a given start, taking the earliest following occurrence of each next word minimises the
    last position and so the total gap; so one greedy chain per start finds every occurrence.
    A glued word must come right after the one before it.
    """
    chains: list[tuple[int, ...]] = []
    for first in starts:
        chain = [first]
        last, gap = first, 0
        for positions, stuck in zip(following, glued, strict=True):
            k = bisect_right(positions, last)
            if k == len(positions):
                # No occurrence of this word after this start, so none after any later start.
                return chains
            if stuck and positions[k] != last + 1:
                break
            gap += positions[k] - last - 1
            last = positions[k]
            if gap > slop:
                break
            chain.append(last)
        else:
            chains.append(tuple(chain))
    return chains


def _phrases(
    norms: list[str],
    starts: Sequence[int],
    following: tuple[str, ...],
    slop: int,
    glued: tuple[bool, ...],
) -> list[tuple[int, ...]]:
    """The chains of :func:`_chains` for plain words, found without their positions.

    From each start, the earliest next word within what is left of the slop is one bounded
    ``list.index`` (a scan in C of a few words), so only the first word's positions are needed.
    """
    chains: list[tuple[int, ...]] = []
    for first in starts:
        chain = [first]
        last, gap = first, 0
        for word, stuck in zip(following, glued, strict=True):
            try:
                at = norms.index(word, last + 1, last + 2 + (0 if stuck else slop - gap))
            except ValueError:
                break
            gap += at - last - 1
            last = at
            chain.append(at)
        else:
            chains.append(tuple(chain))
    return chains


def _hits(doc: _Doc, occurrences: list[_Occ]) -> tuple[Hit, ...]:
    hits = []
    for name, first, last, term, _words in occurrences:
        fld = doc.field(name)
        if first < 0:
            start, end = -1 - first, -1 - last
        else:
            start, end = fld.span(first, last)
        kind = term.kind if isinstance(term, _Leaf) else "query"
        hits.append(Hit(term.text, name, start, end, fld.text[start:end], kind))
    unique = dict.fromkeys(hits)
    ordered = sorted(unique, key=lambda h: (_FIELD_ORDER[h.field], h.start, h.end))
    if len(ordered) <= MAX_HITS:
        return tuple(ordered)
    # Every term keeps its first hit (a notification names the terms that matched from the
    # hits), and the rest of the room goes to the first hits by place.
    firsts: dict[str, Hit] = {}
    for hit in ordered:
        firsts.setdefault(hit.term, hit)
    kept = {id(hit) for hit in firsts.values()}
    room = MAX_HITS - len(kept)
    chosen = []
    for hit in ordered:
        if id(hit) in kept:
            chosen.append(hit)
        elif room > 0:
            chosen.append(hit)
            room -= 1
    return tuple(chosen)


# -- explaining ---------------------------------------------------------------------------------


def _explain(entry: _Compiled, doc: _Doc) -> str:
    rule = entry.rule
    if rule.sources is not None and doc.article.source_id not in rule.sources:
        return f"source {doc.article.source_id!r} is not one of {', '.join(rule.sources)}"
    counted = 0
    if entry.actors is not None:
        found = _all_occurrences(entry.actors, doc)
        if not found:
            names = ", ".join(actor.id for actor in rule.actors)
            return f"actors: no alias of {names} found"
        counted += len(found)
    if entry.keywords is not None:
        found = _all_occurrences(entry.keywords, doc)
        if not found:
            return "keywords: none found"
        counted += len(found)
    if rule.min_hits is not None and (entry.actors or entry.keywords) and counted < rule.min_hits:
        return f"min_hits: {counted} occurrences of aliases and keywords, {rule.min_hits} needed"
    for exclude in entry.excludes:
        found = _leaf_occurrences(exclude, doc)
        if found:
            return f"exclude: {exclude.text!r} found in {found[0][0]}"
    if entry.query is not None and _holds(entry.query, doc) is None:
        return f"query: {_why_not(entry.query, doc)}"
    if rule.languages is not None:
        language = doc.article_language() or "unknown"
        return f"language {language!r} is not one of {', '.join(rule.languages)}"
    return "no match"


def _why_not(node: _Node, doc: _Doc) -> str:
    match node:
        case _All(children):
            for child in children:
                if _holds(child, doc) is None:
                    return _why_not(child, doc)
        case _None(child):
            found = _holds(child, doc) or []
            where = f" in {found[0][0]}" if found else ""
            return f"NOT {_describe(child)} failed: {_describe(child)} found{where}"
    return f"{_describe(node)} not found"


def _describe(node: _Node) -> str:
    match node:
        case _Leaf(text=text, kind=kind):
            return f'"{text}"' if kind != "actor" else text
        case _Regex(text=text):
            return text
        case _Any(children):
            inner = " OR ".join(_describe(c) for c in children)
            return f"({inner})" if len(children) > 1 else inner
        case _All(children):
            return "(" + " AND ".join(_describe(c) for c in children) + ")"
        case _None(child):
            return f"NOT {_describe(child)}"
        case _Near(left, right, distance):
            return f"{_describe(left)} NEAR/{distance} {_describe(right)}"
    raise AssertionError(node)
