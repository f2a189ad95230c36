"""Dedup, match and store, on a real SQLite file and on the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event
from sqlmodel import col, select

from monitor.matching.loader import RuleSet
from monitor.matching.rules import Actor, Rule
from monitor.models import Article, Severity
from monitor.notify.policy import ChannelPolicy, DigestSchedule, Policy, Route
from monitor.pipeline import CompiledRules, IngestResult, Pipeline, Unit
from monitor.store import repo
from monitor.store.db import Database
from monitor.store.tables import ArticleRow, DeliveryRow, MatchRow

TOKAYEV = Actor(
    id="tokayev", name="Kassym-Jomart Tokayev", aliases=("Tokayev", "Kassym-Jomart Tokayev")
)
LETHAL = Rule(
    id="lethal",
    name="Lethal force",
    severity=Severity.CRITICAL,
    actors=(TOKAYEV,),
    keywords=("shoot without warning",),
)
EMERGENCY = Rule(
    id="emergency", name="Emergency", keywords=("state of emergency",), notify=("slack",)
)
SILENT = Rule(id="silent", name="Silent", keywords=("curfew",), notify=())

ARTICLE = Article(
    title="Tokayev orders troops to shoot without warning",
    body="The president spoke on Friday.",
    source_id="seeds",
    key="a.txt",
    location="a.txt",
)


def pipeline(db: Database, *rules: Rule) -> Pipeline:
    return Pipeline(
        db, CompiledRules.build(RuleSet(rules=rules)), default_channels=("console", "mail")
    )


def count(db: Database, table: type) -> int:
    with db.session() as session:
        return len(session.exec(select(table)).all())


def test_new_article_is_stored_with_its_match_and_one_delivery_per_channel(db: Database) -> None:
    """A matching article yields one match with its hits and an outbox row per default channel."""
    result = pipeline(db, LETHAL).ingest("seeds", [ARTICLE])
    assert (result.new, len(result.match_ids)) == (1, 1)
    with db.session() as session:
        match = session.exec(select(MatchRow)).one()
        channels = sorted(d.channel for d in session.exec(select(DeliveryRow)).all())
    assert match.rule_id == "lethal"
    assert match.severity == "critical"
    assert {hit["text"] for hit in match.hits} == {"Tokayev", "shoot without warning"}
    assert channels == ["console", "mail"]


def test_same_article_again_is_neither_stored_nor_matched_twice(db: Database) -> None:
    """Seeing the same key with the same text again changes nothing, in a new pipeline too."""
    pipeline(db, LETHAL).ingest("seeds", [ARTICLE])
    again = pipeline(db, LETHAL).ingest("seeds", [ARTICLE])
    assert (again.new, again.unchanged, again.match_ids) == (0, 1, [])
    assert count(db, MatchRow) == 1
    assert count(db, DeliveryRow) == 2


def test_changed_article_is_rematched_without_repeating_a_rule(db: Database) -> None:
    """An edited article is re-matched: only rules that had not matched it yet alert."""
    flow = pipeline(db, LETHAL, EMERGENCY)
    flow.ingest("seeds", [ARTICLE])
    edited = replace(ARTICLE, body="A state of emergency was declared.")
    result = flow.ingest("seeds", [edited])
    assert result.updated == 1
    with db.session() as session:
        rows = session.exec(select(MatchRow, ArticleRow).join(ArticleRow)).all()
        current = session.exec(select(ArticleRow).where(ArticleRow.current)).one()
    # Each match keeps the version it matched: the evidence as it was alerted.
    assert sorted((m.rule_id, a.body) for m, a in rows) == [
        ("emergency", edited.body),
        ("lethal", ARTICLE.body),
    ]
    assert current.body == edited.body
    assert count(db, ArticleRow) == 2
    assert count(db, DeliveryRow) == 3  # two for lethal, one (slack) for emergency
    again = flow.ingest("seeds", [replace(edited, title="Tokayev: shoot without warning")])
    assert (again.updated, again.match_ids) == (1, [])  # lethal matched an earlier version


def test_tracking_url_and_guid_duplicates_are_recognised(db: Database) -> None:
    """The same story under a tracking URL, or the same GUID under another key, is a duplicate."""
    flow = pipeline(db, LETHAL)
    flow.ingest("seeds", [replace(ARTICLE, url="https://Example.org/a?id=1", guid="g-1")])
    tracked = replace(
        ARTICLE, key="b", body="other", url="https://EXAMPLE.org:443/a?utm_source=rss&id=1#top"
    )
    same_guid = replace(ARTICLE, key="c", body="yet another", guid="g-1")
    other_source_guid = replace(ARTICLE, source_id="other", key="d", body="third", guid="g-1")
    assert flow.ingest("seeds", [tracked]).duplicates == 1
    assert flow.ingest("seeds", [same_guid]).duplicates == 1
    assert flow.ingest("other", [other_source_guid]).new == 1  # GUIDs are per source


def test_edit_into_a_copy_of_another_article_is_a_duplicate(db: Database) -> None:
    """A changed file whose new text equals another stored article is not alerted again."""
    flow = pipeline(db, LETHAL)
    flow.ingest("seeds", [ARTICLE, replace(ARTICLE, key="b.txt", body="Unrelated.")])
    result = flow.ingest("seeds", [replace(ARTICLE, key="b.txt")])
    assert (result.duplicates, result.match_ids) == (1, [])


def test_same_content_or_url_under_another_key_is_a_duplicate(db: Database) -> None:
    """A copy of a stored article (same text, or same URL) is not stored or alerted again."""
    flow = pipeline(db, LETHAL)
    flow.ingest("seeds", [replace(ARTICLE, url="https://example.org/a")])
    copy = flow.ingest("other", [replace(ARTICLE, source_id="other", key="b.txt")])
    same_url = flow.ingest(
        "other",
        [replace(ARTICLE, source_id="other", key="c", body="x", url="https://example.org/a")],
    )
    assert (copy.duplicates, same_url.duplicates) == (1, 1)
    assert count(db, ArticleRow) == 1
    assert count(db, MatchRow) == 1


def test_rule_notify_overrides_default_channels(db: Database) -> None:
    """A rule's notify list replaces the defaults; an empty list stores the match without alerts."""
    flow = pipeline(db, EMERGENCY, SILENT)
    flow.ingest("seeds", [replace(ARTICLE, body="A state of emergency and a curfew.")])
    with db.session() as session:
        deliveries = session.exec(select(DeliveryRow)).all()
    assert [d.channel for d in deliveries] == ["slack"]
    assert count(db, MatchRow) == 2


def test_nothing_is_committed_when_the_unit_fails(db: Database) -> None:
    """Articles, matches and outbox rows of one unit commit together or not at all."""
    flow = pipeline(db, LETHAL)
    broken = replace(ARTICLE, key="b.txt", title="Tokayev: shoot without warning", published="x")  # type: ignore[arg-type]
    with pytest.raises(Exception):  # noqa: B017, PT011 (whatever the driver raises)
        flow.ingest("seeds", [ARTICLE, broken])
    assert count(db, ArticleRow) == 0
    assert count(db, MatchRow) == 0
    assert count(db, DeliveryRow) == 0


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def deliveries(db: Database) -> list[tuple[str, datetime | None, str | None]]:
    with db.session() as session:
        rows = session.exec(select(DeliveryRow).order_by(col(DeliveryRow.id))).all()
        return [(row.channel, row.next_attempt_at, row.batch) for row in rows]


def story(number: int) -> Article:
    return replace(ARTICLE, key=f"{number}.txt", body=f"Report number {number}.", url=None)


def test_routes_send_a_match_where_its_severity_and_tags_say(db: Database) -> None:
    """The first route that holds decides the channels; unrouted matches take the default."""
    routed = Policy(
        default=("console",),
        routes=(Route(notify=("telegram", "mail"), severities=frozenset({Severity.CRITICAL})),),
    )
    flow = Pipeline(db, CompiledRules.build(RuleSet(rules=(LETHAL, SILENT))), policy=routed)
    flow.ingest("seeds", [ARTICLE])
    assert sorted(channel for channel, _due, _batch in deliveries(db)) == ["mail", "telegram"]


def test_a_throttled_rule_alerts_once_then_batches_its_window(db: Database) -> None:
    """The first match alerts at once; the next ones, within the throttle window, are batched
    to its end, in this unit and in later ones; after the window, one alerts at once again."""
    start = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    clock = Clock(start)
    throttled = replace(LETHAL, throttle=timedelta(minutes=10))
    separate = Policy(default=("mail",), story_window=None)  # each story its own, here
    flow = Pipeline(
        db, CompiledRules.build(RuleSet(rules=(throttled,))), clock=clock, policy=separate
    )
    flow.ingest("seeds", [story(1), story(2)])
    clock.now = start + timedelta(minutes=3)
    flow.ingest("seeds", [story(3)])
    clock.now = start + timedelta(minutes=11)
    flow.ingest("seeds", [story(4)])
    end, batch = start + timedelta(minutes=10), f"throttle:lethal:{start.isoformat()}"
    assert deliveries(db) == [
        ("mail", start, None),
        ("mail", end, batch),
        ("mail", end, batch),
        ("mail", clock.now, None),
    ]


def test_a_digest_channel_batches_every_alert_by_slot(db: Database) -> None:
    """A channel with digest: 1h gets each delivery due at the next hour, in that hour's batch."""
    now = datetime(2026, 3, 10, 12, 20, tzinfo=UTC)
    policy = Policy(
        default=("digest", "mail"),
        channels={"digest": ChannelPolicy(DigestSchedule.parse("1h"))},
        story_window=None,
    )
    flow = Pipeline(
        db, CompiledRules.build(RuleSet(rules=(LETHAL,))), clock=Clock(now), policy=policy
    )
    flow.ingest("seeds", [story(1), story(2)])
    slot = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
    assert sorted(deliveries(db), key=lambda d: d[0]) == [
        ("digest", slot, f"digest:{slot.isoformat()}"),
        ("digest", slot, f"digest:{slot.isoformat()}"),
        ("mail", now, None),
        ("mail", now, None),
    ]


WIRE = (
    "Kazakhstan's president Tokayev said on Friday he had ordered troops to shoot without "
    "warning at what he called bandits and terrorists, after days of unrest that began with "
    "protests over fuel prices in the west of the country and spread to Almaty, where "
    "government buildings were stormed and set on fire. Russian-led troops arrived to help."
)


def rewrite(number: int) -> Article:
    """The wire story as outlet ``number`` ran it: its own headline, a sentence of its own."""
    return replace(
        ARTICLE,
        source_id=f"outlet{number}",
        key=f"story-{number}",
        title=f"Tokayev orders troops to shoot without warning (outlet {number})",
        body=f"{WIRE} Reporting by desk {number}.",
        url=f"https://outlet{number}.example/tokayev",
    )


def test_rewrites_of_one_story_alert_once_listing_the_other_outlets(db: Database) -> None:
    """Ten outlets' rewrites of one wire story make one alert; the nine others are its
    outlets, and their matches are stored, folded into it, without deliveries."""
    flow = pipeline(db, LETHAL)
    flow.ingest("outlet0", [rewrite(0), rewrite(1)])
    for number in range(2, 10):
        flow.ingest(f"outlet{number}", [rewrite(number)])
    with db.session() as session:
        matches = session.exec(select(MatchRow).order_by(col(MatchRow.id))).all()
        story = matches[0]
        assert [m.story_of for m in matches[1:]] == [story.id] * 9
        assert {d.match_id for d in session.exec(select(DeliveryRow)).all()} == {story.id}
        outlets = repo.outlets_for(session, [story.id])[story.id]  # type: ignore[index]
    assert [o.source_id for o in outlets] == [f"outlet{n}" for n in range(1, 10)]
    assert outlets[0].link == "https://outlet1.example/tokayev"


def test_another_story_on_the_same_subject_alerts_on_its_own(db: Database) -> None:
    """A different report matching the same rule is not folded into the first one."""
    flow = pipeline(db, LETHAL)
    flow.ingest("outlet0", [rewrite(0)])
    other = replace(
        ARTICLE,
        source_id="other",
        key="other",
        title="Tokayev: troops will shoot without warning, parliament told",
        body="Lawmakers in Astana heard the interior minister describe the night's operations "
        "district by district, with figures for arrests and for the wounded in each.",
    )
    flow.ingest("other", [other])
    with db.session() as session:
        assert [m.story_of for m in session.exec(select(MatchRow)).all()] == [None, None]
    assert count(db, DeliveryRow) == 4


def test_a_rewrite_older_than_the_story_window_alerts_again(db: Database) -> None:
    """Past story_window, the same story is news again: it alerts on its own."""
    clock = Clock(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    policy = Policy(default=("mail",), story_window=timedelta(hours=48))
    flow = Pipeline(db, CompiledRules.build(RuleSet(rules=(LETHAL,))), clock=clock, policy=policy)
    flow.ingest("outlet0", [rewrite(0)])
    clock.now += timedelta(hours=49)
    flow.ingest("outlet1", [rewrite(1)])
    assert count(db, DeliveryRow) == 2


def test_an_exact_copy_from_another_outlet_is_listed_in_the_original_alert(db: Database) -> None:
    """The same text under another source is not stored again; it becomes an outlet of the
    original's match, once however often it is seen."""
    flow = pipeline(db, LETHAL)
    flow.ingest("outlet0", [rewrite(0)])
    copy = replace(rewrite(0), source_id="aggregator", key="agg-1", url="https://agg.example/1")
    for _ in range(2):
        assert flow.ingest("aggregator", [copy]).duplicates == 1
    with db.session() as session:
        story = session.exec(select(MatchRow)).one()
        outlets = repo.outlets_for(session, [story.id])  # type: ignore[list-item]
    assert [(o.source_id, o.link) for o in outlets[story.id]] == [  # type: ignore[index]
        ("aggregator", "https://agg.example/1")
    ]
    assert count(db, ArticleRow) == 1


def test_stories_stored_by_another_process_are_seen(db: Database) -> None:
    """Two pipelines on one database (two processes, or replicas) fold each other's rewrites:
    each reads the stories stored since it last looked."""
    first, second = pipeline(db, LETHAL), pipeline(db, LETHAL)
    first.ingest("outlet0", [rewrite(0)])
    second.ingest("outlet1", [rewrite(1)])
    first.ingest("outlet2", [rewrite(2)])
    with db.session() as session:
        matches = session.exec(select(MatchRow).order_by(col(MatchRow.id))).all()
        assert [m.story_of for m in matches] == [None, matches[0].id, matches[0].id]


def test_units_stored_together_keep_their_own_outcomes(db: Database) -> None:
    """Units stored in one transaction each get their own result, in order; a unit whose hold
    raises stores nothing and gets its exception, and the others are stored with their matches
    and their saves."""
    saved: list[tuple[str, int]] = []

    def refuse(_session: object) -> None:
        raise LookupError("claim lost")

    def save(source_id: str) -> Callable[[object, IngestResult], None]:
        return lambda _session, result: saved.append((source_id, result.new))

    units = [
        Unit("a", [replace(ARTICLE, source_id="a")], save=save("a")),
        Unit("b", [replace(ARTICLE, source_id="b", title="Another story")], hold=refuse),
        Unit("c", [replace(ARTICLE, source_id="c", body="Other words.")], save=save("c")),
    ]
    first, second, third = pipeline(db, LETHAL).ingest_many(units)
    assert isinstance(first, IngestResult)
    assert (first.new, len(first.match_ids)) == (1, 1)
    assert isinstance(second, LookupError)
    assert isinstance(third, IngestResult)
    assert third.new == 1
    assert saved == [("a", 1), ("c", 1)]
    with db.session() as session:
        stored = sorted(row.source_id for row in session.exec(select(ArticleRow)).all())
    assert stored == ["a", "c"]
    assert count(db, MatchRow) == 2


def test_units_whose_transaction_fails_are_stored_each_alone(db: Database) -> None:
    """When the shared transaction cannot commit, each unit is stored again on its own, as
    ingest() would store it, and each gets that outcome."""
    flow = pipeline(db, LETHAL)
    commits = []

    def fail_first(_connection: object) -> None:
        commits.append(1)
        if len(commits) == 1:
            raise RuntimeError("disk I/O error")

    event.listen(db.engine, "commit", fail_first)
    units = [
        Unit("a", [replace(ARTICLE, source_id="a")]),
        Unit("b", [replace(ARTICLE, source_id="b", body="Other words.")]),
    ]
    outcomes = flow.ingest_many(units)
    event.remove(db.engine, "commit", fail_first)
    assert [type(outcome) for outcome in outcomes] == [IngestResult, IngestResult]
    assert len(commits) == 3  # the shared one, then one per unit
    assert count(db, ArticleRow) == 2
    assert count(db, MatchRow) == 2


def test_rewrites_stored_together_fold_into_a_story_of_the_same_transaction(db: Database) -> None:
    """A rewrite stored in the same transaction as its story, by a later unit, folds into it;
    a unit that raises after storing its story (its save) takes the story with it, so the
    rewrites that follow alert on their own and fold into stories that exist."""
    flow = pipeline(db, LETHAL)
    shared: list[int] = []

    def fail(_session: object, _result: IngestResult) -> None:
        raise LookupError("state not saved")

    def look(_session: object, _result: IngestResult) -> None:
        # What other threads (a folder's ingest) would read meanwhile: committed stories only.
        shared.extend(row[0] for rows in flow._stories._known.values() for row in rows)

    first = flow.ingest_many(
        [
            Unit("outlet0", [rewrite(0)]),
            Unit("outlet1", [rewrite(1)], save=look),
            Unit("outlet2", [rewrite(2)], save=fail),
        ]
    )
    assert [type(outcome) for outcome in first] == [IngestResult, IngestResult, LookupError]
    assert shared == []
    with db.session() as session:
        matches = session.exec(select(MatchRow).order_by(col(MatchRow.id))).all()
        assert [m.story_of for m in matches] == [None, matches[0].id]
    # A second transaction: its story must not fold into the story of a rolled-back unit.
    flow.ingest_many([Unit("outlet3", [rewrite(3)], save=fail), Unit("outlet4", [rewrite(4)])])
    flow.ingest("outlet5", [rewrite(5)])
    with db.session() as session:
        matches = session.exec(select(MatchRow).order_by(col(MatchRow.id))).all()
        story = matches[0].id
        assert [(m.article_id is not None, m.story_of) for m in matches] == [
            (True, None),
            (True, story),
            (True, story),
            (True, story),
        ]
