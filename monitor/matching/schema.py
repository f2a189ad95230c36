"""What users write in rule files: the models the loader validates every file against.

A rule file may define ``actors`` (usable from every file) and ``rules``. Unknown keys are errors.
These models are also the source of the JSON Schema shipped for editors (``monitor schema``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from monitor.durations import PositiveDuration
from monitor.matching.query import MAX_QUERY_LENGTH, MAX_SLOP
from monitor.models import Severity

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
Id = Annotated[str, Field(pattern=ID_PATTERN.pattern)]
Text = Annotated[str, Field(min_length=1, max_length=500)]
FieldName = Literal["title", "summary", "body", "author", "tags", "url", "source"]
Slop = Annotated[int, Field(ge=0, le=MAX_SLOP)]


class _Model(BaseModel):
    # Attribute docstrings become the fields' descriptions in the JSON Schema, which editors show.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class TermModel(_Model):
    """A keyword, alias or exclusion with options of its own."""

    text: Text
    """The words, as written."""
    case_sensitive: bool = False
    """Compare letters exactly: "US" matches "US Treasury" but not "told us"."""
    slop: Slop | None = None
    """Other words allowed between this term's words (default: the rule's, 0 for aliases)."""


Term = Annotated[Text | TermModel, Field(description="a phrase, or {text, case_sensitive, slop}")]


class ActorModel(_Model):
    """A person or organisation, with every name it goes by. The name itself is an alias too."""

    name: Text
    """The full name; it is matched like an alias."""
    aliases: tuple[Term, ...] = ()
    """Other names, spellings and transliterations, each matched as an exact phrase."""


class RuleModel(_Model):
    """One watch rule: which actors, which wording, what to leave out, whom to tell."""

    id: Id
    """Unique across all rule files."""
    name: Annotated[str, Field(min_length=1, max_length=300)]
    """What alerts call the rule."""
    description: str | None = None
    """Free text for people."""
    severity: Severity = Severity.MEDIUM
    """info, low, medium, high or critical."""
    actors: tuple[Id, ...] = ()
    """Actor ids: at least one alias of one of them must occur."""
    keywords: tuple[Term, ...] = ()
    """At least one must occur: its words in order, at most ``slop`` other words between."""
    exclude: tuple[Term, ...] = ()
    """None of these may occur (exact phrases unless an entry sets its own slop)."""
    query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_LENGTH)] | None = None
    """A Boolean search string (AND, OR, NOT, NEAR/n, "phrases"~n, prefix*, @actor, /regex/,
    field:term), ANDed with actors and keywords."""
    slop: Slop = 3
    """Other words allowed between a keyword's words, in total."""
    stem: bool = False
    """Match inflections of the rule's words ("order" matches "ordered")."""
    language: str = "english"
    """The Snowball stemmer for ``stem`` (english, russian, french, german, ...)."""
    fields: Annotated[tuple[FieldName, ...], Field(min_length=1)] | None = None
    """Fields searched by every part of the rule (default: title, summary, body)."""
    min_hits: Annotated[int, Field(ge=1)] | None = None
    """At least this many occurrences of the rule's aliases and keywords in total."""
    sources: Annotated[tuple[Id, ...], Field(min_length=1)] | None = None
    """Only articles from these source ids (default: every source)."""
    languages: (
        Annotated[tuple[Annotated[str, Field(pattern=r"^[a-z]{2}$")], ...], Field(min_length=1)]
        | None
    ) = None
    """Two-letter ISO 639-1 codes (en, ru, ...); an undeclared language is detected."""
    enabled: bool = True
    """False turns the rule off."""
    notify: tuple[Id, ...] | None = None
    """Channel ids to alert (default: the config's ``notify``)."""
    tags: tuple[str, ...] = ()
    """Free text for people and routing."""
    min_sources: Annotated[int, Field(ge=2, le=100)] | None = None
    """Alert only once matching articles from this many distinct sources arrived within
    ``window``: a rumour from one outlet waits, an event reported by several alerts (listing
    them)."""
    window: PositiveDuration = timedelta(hours=6)
    """The window of ``min_sources``."""
    throttle: PositiveDuration | None = None
    """After an alert, further matches within this window (30m, 2h) are gathered and sent as
    one digest at its end, instead of one alert each."""
    template: Id | None = None
    """Write this rule's alerts with the templates NAME.alert.<format>.j2 (and
    NAME.digest.<format>.j2) of the config's templates folder, instead of the channel's."""


class RuleFileModel(_Model):
    """A rule file: actors and rules, both optional."""

    actors: dict[Id, ActorModel] = Field(default_factory=dict)
    """Named people and organisations, by id; usable from every rule file."""
    rules: tuple[RuleModel, ...] = ()
    """The watch rules."""


def vocabulary() -> set[str]:
    """Every key a rule file may use, for "did you mean" suggestions."""
    models: tuple[type[BaseModel], ...] = (RuleFileModel, RuleModel, ActorModel, TermModel)
    return {name for model in models for name in model.model_fields}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a rule file, for editors (yaml-language-server)."""
    schema = RuleFileModel.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "monitor rule file"
    return schema
