"""The query language: parsing (precedence, errors with columns) and matching every construct."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.matching import query as q
from monitor.matching.engine import Matcher
from monitor.matching.rules import Actor, Rule, TermSpec
from monitor.models import Article

TOKAYEV = Actor(
    id="tokayev", name="Kassym-Jomart Tokayev", aliases=("Kassym-Jomart Tokayev", "Tokayev")
)
ACTORS = {"tokayev": TOKAYEV}


def shape(node: q.Node) -> str:
    """A compact rendering of a parse tree, to compare precedence."""
    match node:
        case q.Phrase(words=words, prefixes=prefixes, slop=slop, fields=fields):
            text = " ".join(w + ("*" if p else "") for w, p in zip(words, prefixes, strict=True))
            text = text if len(words) == 1 and not slop else f'"{text}"~{slop}'
            return f"{fields[0]}:{text}" if fields else text
        case q.ActorRef(actor=actor):
            return f"@{actor}"
        case q.Regex(pattern=pattern):
            return f"/{pattern}/"
        case q.And(children):
            return "(" + " AND ".join(map(shape, children)) + ")"
        case q.Or(children):
            return "(" + " OR ".join(map(shape, children)) + ")"
        case q.Not(child):
            return f"NOT {shape(child)}"
        case q.Near(left, right, distance):
            return f"({shape(left)} NEAR/{distance} {shape(right)})"
    raise AssertionError(node)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Nazarbayev OR Putin AND NOT troops", "(nazarbayev OR (putin AND NOT troops))"),
        ("a b c", "(a AND b AND c)"),
        ("a OR b c", "(a OR (b AND c))"),
        ("(a OR b) c", "((a OR b) AND c)"),
        ("NOT a NEAR/2 b OR c", None),  # NOT binds tighter than NEAR: NOT a cannot be NEAR
        ("a NEAR/2 b AND c", "((a NEAR/2 b) AND c)"),
        ("a NEAR/2 b NEAR/1 c", "((a NEAR/2 b) NEAR/1 c)"),
        ('"shoot* without warning"', '"shoot* without warning"~0'),
        ('"order to shoot"~2', '"order to shoot"~2'),
        ("shoot*", "shoot*"),
        ("troop-transports", '"troop transports"~0'),
        ("title:(a OR b) body:c", "((title:a OR title:b) AND body:c)"),
        ('title:"state of emergency"', 'title:"state of emergency"~0'),
        ("@tokayev AND /shoot.{0,20}warning/", "(@tokayev AND /shoot.{0,20}warning/)"),
        ("NOT NOT a", "NOT NOT a"),
        ("ERDOĞAN", "erdogan"),
        ("title:(a OR body:b)", "(title:a OR body:b)"),
        (r"/a\\/ OR /b\/c/ OR /\d\//", r"(/a\\/ OR /b/c/ OR /\d//)"),
        ("a NEAR/100 b", "(a NEAR/100 b)"),
        ('"a b"~50', '"a b"~50'),
        ("a - b", None),  # a lone '-' is a word with nothing to match, not an operator
    ],
)
def test_parse_precedence_and_terms(text: str, expected: str | None) -> None:
    """Operators bind NOT, NEAR, AND, OR from tightest; terms parse to normalised words."""
    if expected is None:
        with pytest.raises(q.QueryError):
            q.parse_query(text, ACTORS.__contains__)
    else:
        assert shape(q.parse_query(text, ACTORS.__contains__)) == expected


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("a AND", 6, "unexpected end of query"),
        ("(a OR b", 8, "expected ')' to close the '(' at column 1"),
        ("a OR b)", 7, "unbalanced ')'"),
        ('"shoot without', 1, 'expected a closing "'),
        ("a NEAR b", 3, "expected NEAR/n"),
        ("a NEAR/x b", 3, "expected NEAR/n"),
        ("/a(/", 1, "invalid regular expression"),
        (r"/a\C/", 1, r"\C (any single byte) is not supported"),
        (r"x OR /[\C]/", 6, r"\C (any single byte) is not supported"),
        ("/abc", 1, "closing /"),
        ("@nobody OR a", 2, "unknown actor 'nobody'"),
        ("titel:a", 1, "unknown field 'titel'"),
        ("title:", 7, "expected a term or '(' after title:"),
        ("a NEAR/2 NOT b", 10, "NEAR needs words"),
        ("a NEAR/2 /x/", 10, "NEAR needs words"),
        ('"a"~', 4, "expected a number of words after ~"),
        ("()", 2, "expected a term before ')'"),
        ("sh*ot", 1, "'*' is allowed only at the end of a word"),
        ("   ", 1, "empty query"),
        ("!!!", 1, "has no words to match"),
        ("(a AND b) NEAR/2 c", 1, "NEAR needs words"),
        ("NOT a NEAR/2 b", 1, "NEAR needs words"),
        ("-troops", 1, "use NOT troops; '-' is not an operator here"),
        ("a -(b OR c)", 3, "use NOT before the term; '-' is not an operator here"),
        ("a +troops", 3, "write troops (terms are ANDed); '+' is not an operator here"),
        ("title:-troops", 7, "use NOT troops"),
        ("word~2", 5, "~n applies to quoted phrases"),
        ("(a b)~2", 6, "~n applies to quoted phrases"),
        ('"a b"~2~3', 8, "a phrase takes one ~n"),
        ('"a b"~2.5', 8, "expected a space or ')' after ~2"),
        ('"a b"~51', 6, "~n must be at most 50"),
        ("a NEAR/101 b", 3, "NEAR distance must be at most 100"),
        (r"/a\\\/", 1, "closing /"),
    ],
)
def test_parse_errors_name_the_column_and_what_was_expected(
    text: str, column: int, fragment: str
) -> None:
    """A malformed query is refused with the 1-based column and what was expected there."""
    with pytest.raises(q.QueryError) as caught:
        q.parse_query(text, ACTORS.__contains__)
    assert caught.value.column == column, str(caught.value)
    assert fragment in str(caught.value)


def height(node: q.Node) -> int:
    """The number of levels of a parse tree (a term is 1), found without recursion."""
    deepest, pending = 0, [(node, 1)]
    while pending:
        current, level = pending.pop()
        deepest = max(deepest, level)
        match current:
            case q.And(children) | q.Or(children):
                pending += [(child, level + 1) for child in children]
            case q.Not(child):
                pending.append((child, level + 1))
            case q.Near(left, right, _):
                pending += [(left, level + 1), (right, level + 1)]
    return deepest


NEARS = [" NEAR/1 ".join(["a"] * n) for n in (10, 1100)]
NINTH_NEAR = 8 * len("a NEAR/1 ") + 3
PAIRS_IN_AN_OR = "(" + " OR ".join(["a NEAR/1 b"] * 8) + ")"  # an OR counts its costliest branch
FOUR_IN_AN_OR = "(a NEAR/1 b NEAR/1 c NEAR/1 d NEAR/1 e OR f)"


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("NOT " * 2400 + "a", 1, "nested deeper than 100 levels"),
        ("a AND NOT " * 2 + "NOT " * 99 + "b", 17, "nested deeper than 100 levels"),
        ("(" * 101 + "a" + ")" * 101, 102, "nested deeper than 100 levels"),
        ("title:" * 102 + "a", 607, "nested deeper than 100 levels"),
        ("(a (b OR " * 51 + "c" + "))" * 51, 452, "nested deeper than 100 levels"),
        ("(a AND NOT NOT NOT " * 30 + "b" + ")" * 30, 97, "nested deeper than 100 levels"),
        (NEARS[0], NINTH_NEAR, "more than 8 NEAR operators"),
        (NEARS[1], NINTH_NEAR, "more than 8 NEAR operators"),
        ("(a NEAR/1 b NEAR/1 c) NEAR/1 (" + " NEAR/1 ".join("defghij") + ")", 23, "more than 8"),
        (f"{FOUR_IN_AN_OR} NEAR/1 {FOUR_IN_AN_OR}", len(FOUR_IN_AN_OR) + 2, "more than 8 NEAR"),
        ("a NEAR/" + "9" * 5000 + " b", 3, "NEAR distance must be at most 100"),
        ('"a b"~' + "9" * 5000, 6, "~n must be at most 50"),
    ],
)
def test_parse_refuses_queries_too_deep_or_too_costly(
    text: str, column: int, fragment: str
) -> None:
    """A query within the length limit that nests too deep or pairs too many NEARs is refused."""
    assert len(text) <= q.MAX_QUERY_LENGTH
    with pytest.raises(q.QueryError) as caught:
        q.parse_query(text)
    assert caught.value.column == column, str(caught.value)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "NOT " * 99 + "a",
        " NEAR/100 ".join(["a"] * 9),
        "(" * 100 + "a" + ")" * 100,
        "(a (b OR " * 49 + "c" + "))" * 49,
        "(a NEAR/1 b NEAR/1 c NEAR/1 d) NEAR/1 (e NEAR/1 f NEAR/1 g NEAR/1 h)",
        f"{PAIRS_IN_AN_OR} NEAR/1 {FOUR_IN_AN_OR} NEAR/1 {PAIRS_IN_AN_OR}",
    ],
)
def test_parse_accepts_queries_at_the_limits_and_they_can_be_matched(text: str) -> None:
    """The deepest queries accepted are at most MAX_DEPTH levels deep and match without a crash."""
    node = q.parse_query(text)
    assert height(node) <= q.MAX_DEPTH
    Matcher([Rule(id="r", name="R", query=node)]).match(Article(title="a", body="a b c a"))


PIECES = ["NOT ", "a ", "(", ")", " NEAR/1 ", " OR ", " AND ", "title:", '"a b"~2 ', "b NEAR/1 "]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PIECES), st.integers(1, 400)), max_size=6))
def test_parse_of_any_query_is_a_shallow_tree_or_a_query_error(
    runs: list[tuple[str, int]],
) -> None:
    """Any runs of operators, terms and parentheses parse to a shallow tree or a QueryError."""
    text = "".join(piece * count for piece, count in runs)[: q.MAX_QUERY_LENGTH]
    try:
        node = q.parse_query(text)
    except q.QueryError:
        return
    assert height(node) <= q.MAX_DEPTH


@dataclass
class Case:
    query: str | None
    text: str
    expected: bool
    rule: dict[str, Any] = field(default_factory=dict)
    title: str = ""
    source: str = "wire"
    language: str | None = None
    tags: tuple[str, ...] = ()
    author: str | None = None
    url: str | None = None


CASES = {
    "word": Case("protest", "Large PROTESTS? No: a protest.", True),
    "whole words only": Case("Kazakh", "The Kazakhstan government", False),
    "phrase exact": Case('"shoot without warning"', "shoot protesters without warning", False),
    "phrase with slop": Case('"shoot without warning"~1', "shoot protesters without warning", True),
    "slop counts all gaps": Case(
        '"shoot without warning"~1', "shoot them now without warning", False
    ),
    "prefix": Case("shoot*", "They were shooting.", True),
    "prefix in phrase": Case('"shoot* without warning"', "shooting without warning", True),
    "prefix not infix": Case("hoot*", "shooting", False),
    "and": Case("police AND protesters", "police met protesters", True),
    "and fails": Case("police AND army", "police met protesters", False),
    "adjacent is and": Case("police army", "police met protesters", False),
    "or": Case("army OR police", "police met protesters", True),
    "not": Case("police NOT army", "police met protesters", True),
    "not fails": Case("police NOT protesters", "police met protesters", False),
    "precedence": Case("Nazarbayev OR Putin AND NOT troops", "Putin sent troops", False),
    "precedence other branch": Case(
        "Nazarbayev OR Putin AND NOT troops", "Nazarbayev troops", True
    ),
    "near exactly n": Case("police NEAR/2 protesters", "police fired on the protesters", False),
    "near n words between": Case(
        "police NEAR/3 protesters", "police fired on the protesters", True
    ),
    "near n plus one": Case(
        "police NEAR/2 protesters", "police fired at the crowd protesters", False
    ),
    "near either order": Case(
        "police NEAR/3 protesters", "protesters were attacked by police", True
    ),
    "near within one field": Case("police NEAR/5 protesters", "protesters", False, title="police"),
    "near with or": Case("(police OR army) NEAR/1 fired", "the army fired", True),
    "actor": Case("@tokayev", "President Tokayev said", True),
    "actor full alias": Case("@tokayev NEAR/0 said", "Kassym-Jomart Tokayev said", True),
    "regex": Case("/shoot.{0,30}warning/", "to shoot to kill without warning", True),
    "regex case-insensitive": Case("/STATE OF EMERGENCY/", "a state of emergency", True),
    "regex across words unanchored": Case("/kill with/", "shoot to kill without", True),
    "regex no match": Case("/curfew \\d+/", "a curfew tonight", False),
    "field title": Case("title:curfew", "curfew declared", False, title="News"),
    "field title hit": Case("title:curfew", "nothing", True, title="Curfew declared"),
    "field group": Case("title:(curfew OR emergency)", "x", True, title="Emergency law"),
    "field author": Case("author:smith", "x", True, author="Jane Smith"),
    "field tags": Case("tags:politics", "x", True, tags=("World", "Politics")),
    "field url": Case('url:"example org"', "x", True, url="https://example.org/a"),
    "field source": Case("source:wire", "x", True),
    "default fields exclude author": Case("smith", "x", False, author="Jane Smith"),
    "cjk": Case("习近平", "中国国家主席习近平表示", True),
    "cyrillic": Case("Токаев", "ТОКАЕВ заявил", True),
    "only negative": Case("NOT troops", "no soldiers here", True),
    "only negative fails": Case("NOT troops", "troops here", False),
    "case sensitive keyword": Case(
        None, "The US Treasury", True, rule={"keywords": (TermSpec("US", case_sensitive=True),)}
    ),
    "case sensitive refuses other case": Case(
        None, "he told us", False, rule={"keywords": (TermSpec("US", case_sensitive=True),)}
    ),
    "keyword own slop": Case(
        None,
        "shoot them without warning",
        False,
        rule={"keywords": (TermSpec("shoot without warning", slop=0),), "slop": 3},
    ),
    "stem": Case(
        None,
        "ordered the police to shoot",
        True,
        rule={"keywords": ("order to shoot",), "stem": True, "slop": 2},
    ),
    "no stem": Case(
        None,
        "ordered the police to shoot",
        False,
        rule={"keywords": ("order to shoot",), "slop": 2},
    ),
    "stem query": Case("orders", "he ordered it", True, rule={"stem": True}),
    "fields restrict keywords": Case(
        None, "curfew", False, rule={"keywords": ("curfew",), "fields": ("title",)}
    ),
    "min hits reached": Case(
        None,
        "Tokayev spoke. Tokayev left.",
        True,
        title="Tokayev",
        rule={"actors": (TOKAYEV,), "min_hits": 3},
    ),
    "min hits missed": Case(
        None, "Tokayev spoke.", False, title="Tokayev", rule={"actors": (TOKAYEV,), "min_hits": 3}
    ),
    "query anded with actors": Case(
        "curfew", "Tokayev declared", False, rule={"actors": (TOKAYEV,)}
    ),
    "sources": Case("curfew", "curfew", False, rule={"sources": ("other",)}),
    "sources ok": Case("curfew", "curfew", True, rule={"sources": ("wire",)}),
    "languages declared": Case(
        "curfew", "curfew", False, language="fr", rule={"languages": ("en",)}
    ),
    "languages detected": Case(
        "огонь",
        "Президент приказал открывать огонь без предупреждения по протестующим в Алматы.",
        True,
        rule={"languages": ("ru",)},
    ),
    "languages detected other": Case(
        "огонь",
        "Президент приказал открывать огонь без предупреждения по протестующим в Алматы.",
        False,
        rule={"languages": ("en",)},
    ),
}


def build_rule(case: Case) -> Rule:
    options = dict(case.rule)
    if case.query is not None:
        options["query"] = q.parse_query(case.query, ACTORS.__contains__)
        options["query_actors"] = (TOKAYEV,)
    return Rule(id="r", name="R", **options)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_query_constructs(case: Case) -> None:
    """Each construct of the rule language matches exactly what its definition says."""
    article = Article(
        title=case.title,
        body=case.text,
        source_id=case.source,
        language=case.language,
        tags=case.tags,
        author=case.author,
        url=case.url,
    )
    matches = Matcher([build_rule(case)]).match(article)
    assert bool(matches) is case.expected
    for hit in matches[0].hits if matches else ():
        assert (
            hit.text == article.field_text(hit.field)[hit.start : hit.end]
            if hit.field
            in (
                "title",
                "summary",
                "body",
            )
            else hit.text
        )


def test_query_hits_are_reported_with_the_term_as_written() -> None:
    """Positive query terms become hits; negated terms do not."""
    rule = Rule(id="r", name="R", query=q.parse_query('"shoot* without warning"~2 AND NOT game'))
    (match,) = Matcher([rule]).match(Article(title="", body="to shoot to kill without warning"))
    assert [(h.term, h.text, h.kind) for h in match.hits] == [
        ("shoot* without warning", "shoot to kill without warning", "query")
    ]


def test_regex_hits_carry_character_offsets() -> None:
    """A regex hit points at the characters it matched, even across words."""
    rule = Rule(id="r", name="R", query=q.parse_query("/kill with\\w*/"))
    body = "shoot to kill without warning"
    (match,) = Matcher([rule]).match(Article(title="", body=body))
    (hit,) = match.hits
    assert body[hit.start : hit.end] == hit.text == "kill without"


def test_redos_pattern_is_linear() -> None:
    """A pattern that makes backtracking engines explode runs in linear time (RE2)."""
    rule = Rule(id="r", name="R", query=q.parse_query("/(a+)+$/"))
    article = Article(title="", body="a" * 5000 + "!")
    assert Matcher([rule]).match(article) == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("alpha NEAR/9 beta", False),
        ("alpha NEAR/10 beta", True),
        ("beta NEAR/10 alpha", True),
        ("alpha NEAR/10 gamma", False),
    ],
)
def test_near_over_thousands_of_repetitions_keeps_its_boundary(query: str, expected: bool) -> None:
    """NEAR between a word written thousands of times and one far from most of them holds at
    exactly the distance from the closest occurrence, and not one word less."""
    body = "alpha " * 5000 + "x " * 10 + "beta. " + "gamma " * 5000
    rule = Rule(id="r", name="R", query=q.parse_query(query))
    matches = Matcher([rule]).match(Article(title="", body=body))
    assert bool(matches) is expected
    if expected:
        assert {hit.text for hit in matches[0].hits} == {"alpha", "beta"}
        assert max(hit.start for hit in matches[0].hits if hit.text == "alpha") == 6 * 4999


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('alpha NEAR/1 "beta gamma delta"', True),
        ('alpha NEAR/0 "beta gamma delta"', False),
        ('"beta gamma delta" NEAR/1 alpha', True),
        ('(alpha NEAR/1 "beta gamma delta") NEAR/2 omega', True),
        ('(alpha NEAR/1 "beta gamma delta") NEAR/1 omega', False),
    ],
)
def test_near_measures_from_the_end_of_a_phrase_written_before_it(
    query: str, expected: bool
) -> None:
    """A phrase (or a NEAR of several words) before the other term is near it when the words
    between its last word and that term are few enough, however long the phrase."""
    body = "omega one two beta gamma delta x alpha"
    rule = Rule(id="r", name="R", query=q.parse_query(query))
    assert bool(Matcher([rule]).match(Article(title="", body=body))) is expected


def test_explain_says_which_part_failed() -> None:
    """`explain` names the failing part for each rule that did not match."""
    rules = [
        Rule(id="actors", name="A", actors=(TOKAYEV,), keywords=("curfew",)),
        Rule(id="keywords", name="K", keywords=("martial law",)),
        Rule(id="exclude", name="E", keywords=("curfew",), exclude=("video game",)),
        Rule(id="query", name="Q", query=q.parse_query("curfew AND NOT game")),
        Rule(id="hits", name="H", keywords=("curfew",), min_hits=2),
        Rule(id="matches", name="M", keywords=("curfew",)),
    ]
    reasons = Matcher(rules).explain(Article(title="Curfew", body="A video game"))
    assert reasons == {
        "actors": "actors: no alias of tokayev found",
        "keywords": "keywords: none found",
        "exclude": "exclude: 'video game' found in body",
        "query": 'query: NOT "game" failed: "game" found in body',
        "hits": "min_hits: 1 occurrences of aliases and keywords, 2 needed",
    }


WORDS = st.text(alphabet="abcdeéíoöu", min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(
    words=st.lists(WORDS, min_size=1, max_size=3),
    before=st.text(alphabet=" ,.;!?()-'\"", max_size=3),
    after=st.text(alphabet=" ,.;!?()-'\"", max_size=3),
    upper=st.booleans(),
)
def test_quoted_phrase_query_matches_text_containing_it(
    words: list[str], before: str, after: str, upper: bool
) -> None:
    """A query of one quoted phrase matches any text containing it, whatever case or punctuation."""
    phrase = " ".join(words)
    rule = Rule(id="r", name="R", query=q.parse_query(f'"{phrase}"'))
    text = f"x{before} {phrase.upper() if upper else phrase} {after}y"
    assert Matcher([rule]).match(Article(title="", body=text))


@settings(max_examples=150, deadline=None)
@given(words=st.lists(WORDS, min_size=2, max_size=4, unique=True), missing=st.integers(0, 3))
def test_and_query_never_matches_without_a_required_word(words: list[str], missing: int) -> None:
    """An AND of words never matches a text that lacks one of them."""
    rule = Rule(id="r", name="R", query=q.parse_query(" AND ".join(words)))
    dropped = words[missing % len(words)]
    text = " ".join(w for w in words if w != dropped)
    from monitor.matching.text import normalize

    if normalize(dropped) in {normalize(w) for w in words if w != dropped}:
        return  # another word normalises to the dropped one: it is not really missing
    assert not Matcher([rule]).match(Article(title="", body=text))


def test_index_does_not_lose_matches_at_scale() -> None:
    """With many rules, candidate selection returns exactly what evaluating every rule returns."""
    import random

    rng = random.Random(7)
    vocabulary = [f"w{i}" for i in range(300)]
    rules = []
    for number in range(400):
        a, b, c = rng.sample(vocabulary, 3)
        shapes = [
            f"{a} AND {b}",
            f'"{a} {b}"~2 OR {c}*',
            f"{a} NEAR/3 {b} NOT {c}",
            f"NOT {a}",
            f"/{a}.{{0,10}}{b}/",
            f"title:{a} OR body:({b} {c})",
        ]
        rules.append(Rule(id=f"r{number}", name="R", query=q.parse_query(rng.choice(shapes))))
    matcher = Matcher(rules)
    for _ in range(30):
        article = Article(
            title=" ".join(rng.choices(vocabulary, k=5)),
            body=" ".join(rng.choices(vocabulary, k=60)),
        )
        # explain() evaluates every rule, with no index: the rules it does not explain matched.
        failed = matcher.explain(article)
        expected = [rule.id for rule in rules if rule.id not in failed]
        assert [m.rule_id for m in matcher.match(article)] == expected
