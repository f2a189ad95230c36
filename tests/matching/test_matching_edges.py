"""Edge cases of matching found by review: scripts with vowel marks, overlaps, glue, NEAR, tags."""

from __future__ import annotations

import time

from monitor.matching import query as q
from monitor.matching.engine import MAX_HITS, Matcher
from monitor.matching.rules import Actor, Rule, TermSpec
from monitor.models import Article

TOKAYEV = Actor(id="t", name="Kassym-Jomart Tokayev", aliases=("Kassym-Jomart Tokayev", "Tokayev"))


def matches(rule: Rule, **article: object) -> bool:
    return bool(Matcher([rule]).match(Article(**{"title": "", **article})))  # type: ignore[arg-type]


def test_thai_vowel_marks_are_letters_not_accents() -> None:
    """ "ดี" (good) does not match "ดอกไม้" (flower): Thai marks are kept, not stripped."""
    rule = Rule(id="r", name="R", keywords=("ดี",))
    assert not matches(rule, body="ดอกไม้")
    assert matches(rule, body="อากาศดีมาก")


def test_devanagari_marks_are_kept() -> None:
    """Hindi vowel signs distinguish words and are not folded away."""
    rule = Rule(id="r", name="R", keywords=("हिंदी",))
    assert matches(rule, body="वह हिंदी बोलता है")
    assert not matches(rule, body="वह हिदी बोलता है")


def test_min_hits_counts_overlapping_aliases_once() -> None:
    """ "Kassym-Jomart Tokayev" is one mention, though two aliases cover it."""
    rule = Rule(id="r", name="R", actors=(TOKAYEV,), min_hits=3)
    assert not matches(rule, title="Tokayev", body="Kassym-Jomart Tokayev said.")
    assert matches(rule, title="Tokayev", body="Kassym-Jomart Tokayev said. Tokayev left.")


def test_min_hits_counts_chains_sharing_words_once() -> None:
    """Two sloppy occurrences that share words are one mention."""
    rule = Rule(id="r", name="R", keywords=("shoot without warning",), min_hits=2)
    assert not matches(rule, body="shoot shoot without warning")


def test_written_words_are_glued_even_with_slop() -> None:
    """Slop never splits a written word: CJK terms and hyphenated names stay contiguous."""
    chinese = Rule(id="r", name="R", keywords=("习近平",), slop=3)
    assert not matches(chinese, body="学习近况平稳")
    assert matches(chinese, body="中国国家主席习近平表示")
    assert not matches(Rule(id="r", name="R", keywords=("中国",)), body="中美两国")
    hyphen = Rule(id="r", name="R", keywords=("Kassym-Jomart visit",), slop=3)
    assert not matches(hyphen, body="Kassym met Jomart on a visit")
    assert matches(hyphen, body="Kassym-Jomart made a visit")


def test_near_accepts_a_term_between_the_other_terms_words() -> None:
    """A word inside a sloppy phrase's gap is at distance 0 from it."""
    rule = Rule(
        id="r", name="R", query=q.parse_query('"shoot without warning"~3 NEAR/2 protesters')
    )
    assert matches(rule, body="police shoot protesters without warning")
    same_words = Rule(id="r", name="R", query=q.parse_query("shoot NEAR/2 shoot"))
    assert not matches(same_words, body="they shoot")
    assert matches(same_words, body="shoot and shoot")


def test_chained_near_stays_fast_on_repetitive_text() -> None:
    """Chained NEARs over hundreds of repeated words finish promptly (combinations are capped)."""
    rule = Rule(id="r", name="R", query=q.parse_query(" NEAR/5 ".join(["a"] * 5)))
    started = time.perf_counter()
    assert matches(rule, body=" ".join(["a"] * 300))
    assert time.perf_counter() - started < 10  # generous: it took 30 s before the cap


def test_case_sensitive_terms_fold_accents_and_width_but_not_case() -> None:
    """A case-sensitive term ignores accents and width, never case, at the exact words."""
    societe = Rule(id="r", name="R", keywords=(TermSpec("Societe Generale", case_sensitive=True),))
    assert matches(societe, body="Société Générale said")
    assert not matches(societe, body="société générale said")
    us = Rule(id="r", name="R", keywords=(TermSpec("US", case_sensitive=True),))
    assert matches(us, body="the ＵＳ Treasury")
    army = Rule(
        id="r", name="R", keywords=(TermSpec("US Army", case_sensitive=True, slop=3),), min_hits=2
    )
    assert not matches(army, body="us US Army")


def test_tag_values_are_kept_apart() -> None:
    """A phrase never spans two tags."""
    rule = Rule(id="r", name="R", keywords=("martial law",), fields=("tags",))
    assert not matches(rule, tags=("martial", "law"))
    (match,) = Matcher([rule]).match(Article(title="", tags=("World", "Martial law")))
    (hit,) = match.hits
    assert (hit.field, hit.text) == ("tags", "Martial law")
    assert "World\nMartial law"[hit.start : hit.end] == "Martial law"


def test_a_regex_searches_text_with_lone_surrogates_at_its_offsets() -> None:
    """An article not read through monitor.documents may hold a lone surrogate, which RE2 cannot
    be given: the regex still searches the text, and its hit has the text's offsets."""
    rule = Rule(id="r", name="R", query=q.parse_query("/app.e/ AND NOT /zz+/"))
    title = "x \ud800 apple"
    [match] = Matcher([rule]).match(Article(title=title))
    [hit] = match.hits
    assert (hit.start, hit.end, hit.text) == (4, 9, "apple")


def test_a_regex_whose_first_match_is_empty_holds_by_a_later_one() -> None:
    """Deciding a regex stops at its first match, unless that match is empty: a later one that
    is not still makes it hold."""
    rule = Rule(id="r", name="R", query=q.parse_query("x AND NOT /b*/"))
    assert not matches(rule, title="x ab")
    assert matches(rule, title="x a")


def test_an_escaped_backslash_before_c_is_a_literal_not_any_byte() -> None:
    rule = Rule(id="r", name="R", query=q.parse_query(r"/a\\C/"))
    assert matches(rule, title=r"see a\C here")


def test_a_field_with_hundreds_of_distinct_hit_words_gets_every_offset() -> None:
    """Past a few distinct hit words, a field finds where every word starts at once (a search
    of the text per word made this quadratic): each hit is still the text at its offsets."""
    rule = Rule(id="r", name="R", query=q.parse_query("appl*"))
    body = "; ".join(f"Apple{n} x" for n in range(500))
    [match] = Matcher([rule]).match(Article(title="", body=body))
    assert [h.text for h in match.hits] == [f"Apple{n}" for n in range(500)]
    assert all(body[h.start : h.end] == h.text for h in match.hits)


def test_a_match_keeps_its_first_hits_but_min_hits_counts_every_occurrence() -> None:
    body = "Tokayev spoke. " * (MAX_HITS + 500)
    rule = Rule(id="r", name="R", actors=(TOKAYEV,), min_hits=MAX_HITS + 500)
    [match] = Matcher([rule]).match(Article(title="", body=body))
    assert len(match.hits) == MAX_HITS
    assert [h.start for h in match.hits] == [15 * n for n in range(MAX_HITS)]
    over = Rule(id="r", name="R", actors=(TOKAYEV,), min_hits=MAX_HITS + 501)
    assert not Matcher([over]).match(Article(title="", body=body))


def test_a_term_past_the_hit_cap_keeps_its_first_hit() -> None:
    """A notification names the terms that matched from the hits: a term whose hits all come
    after MAX_HITS hits of another still has its first one."""
    rule = Rule(id="r", name="R", keywords=("apple", "banana"))
    body = "apple " * (MAX_HITS + 10) + "banana banana"
    [match] = Matcher([rule]).match(Article(title="", body=body))
    assert len(match.hits) == MAX_HITS
    assert [h.text for h in match.hits].count("banana") == 1
    assert match.hits[-1].start == body.index("banana")
    assert all(body[h.start : h.end] == h.text for h in match.hits)
