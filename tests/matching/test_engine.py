"""The compiled matcher: which rules an article matches, and the hits it reports for them."""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.matching.engine import MAX_HITS, Matcher
from monitor.matching.rules import Actor, Rule
from monitor.matching.text import normalize, tokenize
from monitor.models import FIELDS, Article, Hit, RuleMatch, Severity

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "seeds" / "000_b84c25b2169af3e7.txt"


def make_rule(
    *,
    rule_id: str = "r",
    aliases: tuple[str, ...] = (),
    actors: tuple[tuple[str, ...], ...] = (),
    keywords: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    slop: int = 3,
    enabled: bool = True,
    severity: Severity = Severity.MEDIUM,
) -> Rule:
    """A rule; ``aliases`` is shorthand for one actor, ``actors`` gives each actor's aliases."""
    groups = ((aliases,) if aliases else ()) + actors
    return Rule(
        id=rule_id,
        name=rule_id,
        severity=severity,
        actors=tuple(Actor(f"a{i}", group[0], group) for i, group in enumerate(groups)),
        keywords=keywords,
        exclude=exclude,
        slop=slop,
        enabled=enabled,
    )


def make_article(fields: str | dict[str, str]) -> Article:
    """An article; a plain string is its body."""
    if isinstance(fields, str):
        return Article(title="", body=fields)
    return Article(
        title=fields.get("title", ""),
        summary=fields.get("summary", ""),
        body=fields.get("body", ""),
    )


@dataclass(frozen=True)
class Case:
    """A rule, an article, and the texts of the hits expected in order (None: no match)."""

    name: str
    rule: dict[str, Any]
    article: str | dict[str, str]
    hits: tuple[str, ...] | None


TOKAYEV_SHOOT = {"aliases": ("Tokayev",), "keywords": ("shoot",), "exclude": ("video game",)}
SHOOT_SLOP_3 = {"keywords": ("shoot without warning",), "slop": 3}
SHOOT_SLOP_0 = {"keywords": ("shoot without warning",), "slop": 0}

CASES = [
    # Case and accents, on both sides.
    Case("accents in the article", {"aliases": ("Erdogan",)}, "ERDOĞAN spoke", ("ERDOĞAN",)),
    Case("accents in the rule", {"aliases": ("Erdoğan",)}, "erdogan spoke", ("erdogan",)),
    Case("Cyrillic case", {"aliases": ("Токаев",)}, "ТОКАЕВ заявил", ("ТОКАЕВ",)),
    Case("decomposed accents", {"aliases": ("Stéphane",)}, "Ste\u0301phane", ("Ste\u0301phane",)),
    # Whole words only.
    Case(
        "Kazakh is not Kazakhstan",
        {"keywords": ("Kazakh government",)},
        "The Kazakhstan government said",
        None,
    ),
    Case(
        "Kazakh government",
        {"keywords": ("Kazakh government",)},
        "The Kazakh government said",
        ("Kazakh government",),
    ),
    Case("no prefix match", {"aliases": ("Toka",)}, "Tokayev", None),
    Case("straight apostrophe", {"aliases": ("China",)}, "China's economy", ("China",)),
    Case("curly apostrophe", {"aliases": ("China",)}, "China’s economy", ("China",)),
    Case(
        "hyphen separates words",
        {"keywords": ("troop transports",)},
        "70 troop-transports landed",
        ("troop-transports",),
    ),
    Case(
        "hyphenated alias, spaced text",
        {"aliases": ("Kassym-Jomart Tokayev",)},
        "Kassym Jomart Tokayev",
        ("Kassym Jomart Tokayev",),
    ),
    # Spaceless scripts.
    Case("CJK alias inside a run", {"aliases": ("习近平",)}, "中国国家主席习近平表示", ("习近平",)),
    Case("CJK alias must be consecutive", {"aliases": ("习近平",)}, "习近的平", None),
    # Aliases are exact phrases, within one field.
    Case(
        "alias is never sloppy",
        {"aliases": ("Kassym-Jomart Tokayev",), "slop": 3},
        "Kassym-Jomart, the president, Tokayev",
        None,
    ),
    Case(
        "alias does not span fields",
        {"aliases": ("Xi Jinping",)},
        {"title": "A message from Xi", "body": "Jinping said"},
        None,
    ),
    # Keywords: in order, within one field, at most slop words between in total.
    Case(
        "keyword does not span fields",
        {"keywords": ("shoot without",)},
        {"title": "Orders to shoot", "body": "without warning"},
        None,
    ),
    Case(
        "slop 3, one word between",
        SHOOT_SLOP_3,
        "to shoot protesters without warning",
        ("shoot protesters without warning",),
    ),
    Case(
        "slop 3, two words between",
        SHOOT_SLOP_3,
        "police to shoot to kill without warning.",
        ("shoot to kill without warning",),
    ),
    Case(
        "slop 3, three words between",
        SHOOT_SLOP_3,
        "shoot them to kill without warning",
        ("shoot them to kill without warning",),
    ),
    Case(
        "slop 3, four words between",
        SHOOT_SLOP_3,
        "to shoot protesters in cold blood, without warning",
        None,
    ),
    Case("slop is a total over all gaps", SHOOT_SLOP_3, "shoot a b without c d warning", None),
    Case("slop keeps the order", SHOOT_SLOP_3, "without warning, police began to shoot", None),
    Case("slop 0 rejects a word between", SHOOT_SLOP_0, "shoot protesters without warning", None),
    Case(
        "slop 0 accepts the exact phrase",
        SHOOT_SLOP_0,
        "They shoot without warning.",
        ("shoot without warning",),
    ),
    Case(
        "one word repeated", {"keywords": ("bye bye",), "slop": 0}, "bye bye bye", ("bye bye",) * 2
    ),
    # Excludes: exact phrases, anywhere in the searched fields.
    Case("exclude in the same field", TOKAYEV_SHOOT, "Tokayev: shoot, says a video game", None),
    Case(
        "exclude in another field",
        TOKAYEV_SHOOT,
        {"summary": "A video game review", "body": "Tokayev orders to shoot"},
        None,
    ),
    Case("exclude absent", TOKAYEV_SHOOT, "Tokayev orders to shoot", ("Tokayev", "shoot")),
    Case(
        "exclude is never sloppy",
        TOKAYEV_SHOOT,
        {"summary": "a video of the game", "body": "Tokayev orders to shoot"},
        ("Tokayev", "shoot"),
    ),
    Case(
        "exclude ignores case and accents",
        {**TOKAYEV_SHOOT, "exclude": ("Jeu Vidéo",)},
        "JEU VIDEO: Tokayev orders to shoot",
        None,
    ),
    # Every part the rule has must hold.
    Case("disabled rule", {"aliases": ("Tokayev",), "enabled": False}, "Tokayev", None),
    Case("actor required", TOKAYEV_SHOOT, "Police shoot", None),
    Case("keyword required", TOKAYEV_SHOOT, "Tokayev spoke", None),
    Case("actors only", {"aliases": ("Tokayev",)}, "Tokayev spoke", ("Tokayev",)),
    Case("keywords only", {"keywords": ("martial law",)}, "martial law declared", ("martial law",)),
    Case(
        "any actor's alias",
        {"actors": (("Tokayev",), ("Putin", "Vladimir Putin"))},
        "Vladimir Putin spoke",
        ("Vladimir Putin", "Putin"),
    ),
    Case(
        "any keyword",
        {"keywords": ("shoot to kill", "martial law")},
        "declared martial law",
        ("martial law",),
    ),
    Case("neither actors nor keywords", {"exclude": ("video game",)}, "anything at all", None),
    # Hits: every occurrence, sorted by field, start, end.
    Case(
        "every occurrence in every field",
        {"aliases": ("Tokayev",)},
        {"title": "Tokayev speaks", "summary": "tokayev", "body": "Tokayev and TOKAYEV"},
        ("Tokayev", "tokayev", "Tokayev", "TOKAYEV"),
    ),
    Case(
        "overlapping aliases both hit",
        {"aliases": ("Tokayev", "Kassym-Jomart Tokayev")},
        "President Kassym-Jomart Tokayev",
        ("Kassym-Jomart Tokayev", "Tokayev"),
    ),
    Case(
        "keyword hits interleave with actor hits",
        TOKAYEV_SHOOT,
        {"title": "Shoot, says Tokayev", "body": "Tokayev: shoot"},
        ("Shoot", "Tokayev", "Tokayev", "shoot"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_matching_table(case: Case) -> None:
    """Each rule matches its article exactly when expected, with the expected hits in order."""
    article = make_article(case.article)
    matches = Matcher([make_rule(**case.rule)]).match(article)
    if case.hits is None:
        assert matches == []
        return
    assert [m.rule_id for m in matches] == ["r"]
    assert tuple(hit.text for hit in matches[0].hits) == case.hits
    for hit in matches[0].hits:
        assert article.field_text(hit.field)[hit.start : hit.end] == hit.text


def test_every_repetition_of_a_term_gets_its_own_offsets() -> None:
    """A term written thousands of times (a pasted log, a spam page) has one hit per place,
    each pointing at its own words, the many-word ones included, up to the first MAX_HITS."""
    body = "".join(
        f"Tokayev, {'said' if n % 3 else 'told'} the order stands; troop transports {n}. "
        for n in range(3000)
    )
    article = Article(title="t", body=body)
    rule = make_rule(aliases=("Tokayev",), keywords=("troop transports", "said the order"))
    (match,) = Matcher([rule]).match(article)
    places = sorted(
        (found.start(), text)
        for text in ("Tokayev", "troop transports", "said the order")
        for found in re.finditer(text, body)
    )
    assert len(places) == 3000 + 3000 + 2000
    assert [(hit.start, hit.text) for hit in match.hits] == places[:MAX_HITS]
    for hit in match.hits:
        assert body[hit.start : hit.end] == hit.text


def test_hit_records_term_field_offsets_and_kind() -> None:
    """A hit names the term as the rule wrote it, its field, its offsets and whether an actor."""
    article = Article(title="ERDOĞAN’s troops", body="Troop-transports, Erdogan said.")
    rule = make_rule(aliases=("Erdoğan",), keywords=("troop transports",))
    [match] = Matcher([rule]).match(article)
    assert match == RuleMatch(
        "r",
        Severity.MEDIUM,
        (
            Hit("Erdoğan", "title", 0, 7, "ERDOĞAN", "actor"),
            Hit("troop transports", "body", 0, 16, "Troop-transports", "keyword"),
            Hit("Erdoğan", "body", 18, 25, "Erdogan", "actor"),
        ),
    )


def test_results_follow_rule_order_with_rule_severity() -> None:
    """match() returns one RuleMatch per matching rule, in the order given, at its severity."""
    rules = [
        make_rule(rule_id="z", aliases=("Tokayev",), severity=Severity.CRITICAL),
        make_rule(rule_id="none", aliases=("Putin",)),
        make_rule(rule_id="a", keywords=("shoot",), severity=Severity.LOW),
    ]
    matches = Matcher(iter(rules)).match(make_article("Tokayev: shoot"))
    assert [(m.rule_id, m.severity) for m in matches] == [
        ("z", Severity.CRITICAL),
        ("a", Severity.LOW),
    ]


def test_alias_shared_by_two_actors_hits_once() -> None:
    """The same alias under two actors of one rule yields one hit per occurrence, not two."""
    rule = make_rule(actors=(("Xi", "Xi Jinping"), ("Xi Jinping",)))
    [match] = Matcher([rule]).match(make_article("Xi Jinping spoke"))
    assert [(h.text, h.start) for h in match.hits] == [("Xi", 0), ("Xi Jinping", 0)]


def test_spellings_that_normalise_alike_hit_once_under_the_first() -> None:
    """Aliases "Erdoğan" and "Erdogan" are one term: one hit, named as first written."""
    erdogan = Actor(id="e", name="Recep Tayyip Erdoğan", aliases=("Erdoğan", "Erdogan", "ERDOGAN"))
    rule = Rule(id="r", name="R", actors=(erdogan,))
    (match,) = Matcher([rule]).match(Article(title="Erdogan spoke", body="Erdoğan spoke"))
    assert [(h.term, h.field, h.text) for h in match.hits] == [
        ("Erdoğan", "title", "Erdogan"),
        ("Erdoğan", "body", "Erdoğan"),
    ]


def test_terms_without_words_are_skipped() -> None:
    """A term with no words is ignored; a required part left with none never matches."""
    usable = make_rule(aliases=("---", "Tokayev"), exclude=("!!!",))
    unusable = make_rule(rule_id="u", aliases=("---",))
    matches = Matcher([usable, unusable]).match(make_article("Tokayev!!!"))
    assert [m.rule_id for m in matches] == ["r"]


def test_negative_slop_means_exact_phrase() -> None:
    """A negative slop (rejected by the loader) still matches the exact phrase."""
    rule = make_rule(keywords=("shoot without warning",), slop=-1)
    matcher = Matcher([rule])
    assert matcher.match(make_article("shoot without warning"))
    assert not matcher.match(make_article("shoot them without warning"))


def test_empty_article_and_no_rules() -> None:
    """An empty article matches nothing, and a matcher without rules matches no article."""
    assert Matcher([make_rule(aliases=("Tokayev",))]).match(Article(title="")) == []
    assert Matcher([]).match(make_article("Tokayev")) == []


def test_seed_article_matches_lethal_force_rule() -> None:
    """The customer's sample matches with slop 3 though "shoot without warning" is not verbatim."""
    lines = SEED.read_text(encoding="utf-8").splitlines()
    article = Article(title=lines[1], body="\n".join(lines[2:]))
    rule = make_rule(
        aliases=("Tokayev", "Kassym-Jomart Tokayev"),
        keywords=("shoot without warning", "shoot to kill"),
        exclude=("video game",),
        slop=3,
    )
    [match] = Matcher([rule]).match(article)
    by_field = {
        (hit.term, hit.field): [
            h.text for h in match.hits if (h.term, h.field) == (hit.term, hit.field)
        ]
        for hit in match.hits
    }
    # The body's "shoot protesters in cold blood, without warning" has four words between.
    assert by_field["shoot without warning", "body"] == ["shoot to kill without warning"]
    # The headline carries the phrase too, one word apart.
    assert by_field["shoot without warning", "title"] == ["shoot protesters without warning"]
    assert by_field["shoot to kill", "body"] == ["shoot to kill"]
    assert by_field["Kassym-Jomart Tokayev", "body"] == ["Kassym-Jomart Tokayev"]
    assert len(by_field["Tokayev", "body"]) == article.body.count("Tokayev")


# Properties.

_BASE_LETTERS = "abcdefghijklmnopqrstuvwxyzéüñçåøł"
_ACCENTS = "\u0301\u0300\u0308\u0327\u030c"
_STROKES = {"ø": "o", "ł": "l"}
_SEPARATORS = [" ", "  ", "-", "'", "’", ", ", "_", " — ", "\n", "... ", "(", ") "]

_word = st.text(st.sampled_from(_BASE_LETTERS), min_size=1, max_size=8)
_separator = st.sampled_from(_SEPARATORS)


def _strip(letter: str) -> str:
    """The letter without its accent or stroke."""
    base = unicodedata.normalize("NFD", letter)[0]
    return _STROKES.get(base, base)


@st.composite
def _spelling(draw: st.DrawFn, word: str) -> str:
    """The word as a writer might spell it: any case, accents kept, dropped, added, decomposed."""
    out = []
    for letter in word:
        how = draw(st.sampled_from(["keep", "upper", "strip", "accent"]))
        if how == "upper":
            out.append(letter.upper())
        elif how == "strip":
            out.append(_strip(letter))
        elif how == "accent":
            out.append(_strip(letter) + draw(st.sampled_from(_ACCENTS)))
        else:
            out.append(letter)
    return "".join(out)


@st.composite
def _joined(draw: st.DrawFn, words: list[str]) -> str:
    """The words, each spelt some way, with punctuation and spaces between them."""
    return "".join(draw(_spelling(w)) + draw(_separator) for w in words)


@settings(deadline=None)
@given(st.data(), st.lists(_word, min_size=1, max_size=4), st.sampled_from(FIELDS))
def test_phrase_matches_any_spelling_in_context(
    data: st.DataObject, phrase: list[str], field: str
) -> None:
    """A one-term rule matches any text holding its phrase, whatever case, accents, punctuation."""
    term = " ".join(data.draw(_spelling(word)) for word in phrase)
    slop = data.draw(st.integers(0, 3))
    if data.draw(st.booleans()):
        rule = make_rule(aliases=(term,), slop=slop)
    else:
        rule = make_rule(keywords=(term,), slop=slop)
    before = data.draw(st.lists(_word, max_size=5))
    after = data.draw(st.lists(_word, max_size=5))
    text = (
        data.draw(_joined(before))
        + data.draw(_separator)
        + data.draw(_joined(phrase))
        + data.draw(_joined(after))
    )
    assert [m.rule_id for m in Matcher([rule]).match(make_article({field: text}))] == ["r"]


@settings(deadline=None)
@given(
    st.data(),
    st.lists(_word, min_size=1, max_size=2),
    st.lists(_word, min_size=1, max_size=3),
    st.lists(_word, max_size=8),
)
def test_rule_never_matches_without_a_required_word(
    data: st.DataObject, alias: list[str], keyword: list[str], noise: list[str]
) -> None:
    """A rule never matches an article missing any one word of its only alias or only keyword."""
    rule = make_rule(aliases=(" ".join(alias),), keywords=(" ".join(keyword),), slop=3)
    missing = normalize(data.draw(st.sampled_from(alias + keyword)))
    words = data.draw(st.permutations(alias + keyword + noise))
    kept = [w for w in words if normalize(w) != missing]
    cut = sorted(data.draw(st.lists(st.integers(0, len(kept)), min_size=2, max_size=2)))
    article = make_article(
        {
            "title": data.draw(_joined(kept[: cut[0]])),
            "summary": data.draw(_joined(kept[cut[0] : cut[1]])),
            "body": data.draw(_joined(kept[cut[1] :])),
        }
    )
    assert Matcher([rule]).match(article) == []


# A small vocabulary with spelling variants, so random rules and texts hit each other often.
_VOCAB = ["ab", "Áb", "ba", "c", "dé", "DE"]
_small_text = st.lists(st.sampled_from(_VOCAB), max_size=14).flatmap(_joined)
_small_phrase = st.lists(st.sampled_from(_VOCAB), min_size=1, max_size=3).map(" ".join)


@st.composite
def _small_rule(draw: st.DrawFn) -> Rule:
    return make_rule(
        actors=tuple(
            draw(st.lists(st.lists(_small_phrase, min_size=1, max_size=2).map(tuple), max_size=2))
        ),
        keywords=tuple(draw(st.lists(_small_phrase, max_size=2))),
        exclude=tuple(draw(st.lists(_small_phrase.filter(lambda p: " " in p), max_size=1))),
        slop=draw(st.integers(0, 3)),
    )


@settings(deadline=None, max_examples=200)
@given(_small_rule(), _small_text, _small_text, _small_text)
def test_hits_slice_back_to_their_terms(rule: Rule, title: str, summary: str, body: str) -> None:
    """Every hit's text is its field's slice, and its words hold the term's words in order."""
    article = Article(title=title, summary=summary, body=body)
    for match in Matcher([rule]).match(article):
        for hit in match.hits:
            assert article.field_text(hit.field)[hit.start : hit.end] == hit.text
            found = [t.norm for t in tokenize(hit.text)]
            term = [t.norm for t in tokenize(hit.term)]
            assert (found[0], found[-1]) == (term[0], term[-1])
            assert _is_subsequence(term, found)
            allowed = rule.slop if hit.kind == "keyword" else 0
            assert len(found) - len(term) <= allowed


@settings(deadline=None, max_examples=200)
@given(_small_rule(), _small_text, _small_text, _small_text)
def test_matches_agree_with_brute_force(rule: Rule, title: str, summary: str, body: str) -> None:
    """The matcher's result equals an exhaustive search over every choice of word positions."""
    article = Article(title=title, summary=summary, body=body)
    assert Matcher([rule]).match(article) == _brute_force(rule, article)


def _is_subsequence(needle: list[str], haystack: list[str]) -> bool:
    rest = iter(haystack)
    return all(word in rest for word in needle)


def _brute_force(rule: Rule, article: Article) -> list[RuleMatch]:
    """The specification, executed literally: try every increasing choice of positions."""

    def spans(term: str, slop: int) -> list[tuple[str, int, int]]:
        wanted = [t.norm for t in tokenize(term)]
        out = []
        for field in FIELDS:
            tokens = tokenize(article.field_text(field))
            for first in range(len(tokens)):
                ends = [
                    rest[-1] if rest else first
                    for rest in itertools.combinations(
                        range(first + 1, len(tokens)), len(wanted) - 1
                    )
                    if [tokens[i].norm for i in (first, *rest)] == wanted
                    and (rest[-1] if rest else first) - first - (len(wanted) - 1) <= slop
                ]
                if ends:
                    out.append((field, tokens[first].start, tokens[min(ends)].end))
        return out

    if any(spans(phrase, 0) for phrase in rule.exclude):
        return []
    hits: list[Hit] = []
    parts = set()
    terms = [(a, "actor", 0) for actor in rule.actors for a in actor.aliases]
    terms += [(k, "keyword", rule.slop) for k in rule.keywords]
    # Spellings that normalise alike are one term, reported under the first spelling.
    first: dict[tuple[str, tuple[str, ...], int], tuple[str, str, int]] = {}
    for term, kind, slop in terms:
        first.setdefault((kind, tuple(t.norm for t in tokenize(term)), slop), (term, kind, slop))
    for term, kind, slop in first.values():
        for field, start, end in spans(term, slop):
            parts.add(kind)
            text = article.field_text(field)[start:end]
            hits.append(Hit(term, field, start, end, text, kind))
    needed = {"actor"} if rule.actors else set()
    needed |= {"keyword"} if rule.keywords else set()
    if not needed or parts != needed:
        return []
    unique = sorted(dict.fromkeys(hits), key=lambda h: (FIELDS.index(h.field), h.start, h.end))
    return [RuleMatch(rule.id, rule.severity, tuple(unique))]
