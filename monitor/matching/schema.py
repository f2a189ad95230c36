"""What users write in rule files: the models the loader validates every file against.

A rule file may define ``actors`` (usable from every file) and ``rules``. Unknown keys are errors.
These models are also the source of the JSON Schema shipped for editors (``monitor schema``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from monitor.models import Severity

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
Id = Annotated[str, Field(pattern=ID_PATTERN.pattern)]
Text = Annotated[str, Field(min_length=1, max_length=500)]
FieldName = Literal["title", "summary", "body", "author", "tags", "url", "source"]
Slop = Annotated[int, Field(ge=0, le=50)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TermModel(_Model):
    """A keyword, alias or exclusion with options of its own."""

    text: Text
    case_sensitive: bool = False
    """Compare letters exactly: "US" matches "US Treasury" but not "told us"."""
    slop: Slop | None = None
    """Other words allowed between this term's words (default: the rule's, 0 for aliases)."""


Term = Annotated[Text | TermModel, Field(description="a phrase, or {text, case_sensitive, slop}")]


class ActorModel(_Model):
    """A person or organisation, with every name it goes by. The name itself is an alias too."""

    name: Text
    aliases: tuple[Term, ...] = ()


class RuleModel(_Model):
    """One watch rule: which actors, which wording, what to leave out, whom to tell."""

    id: Id
    name: Annotated[str, Field(min_length=1, max_length=300)]
    description: str | None = None
    severity: Severity = Severity.MEDIUM
    actors: tuple[Id, ...] = ()
    keywords: tuple[Term, ...] = ()
    exclude: tuple[Term, ...] = ()
    query: Annotated[str, Field(min_length=1, max_length=10_000)] | None = None
    """A Boolean search string (AND, OR, NOT, NEAR/n, "phrases"~n, prefix*, @actor, /regex/,
    field:term), ANDed with actors and keywords."""
    slop: Slop = 3
    stem: bool = False
    """Match inflections of the rule's words ("order" matches "ordered")."""
    language: str = "english"
    """The Snowball stemmer for ``stem``."""
    fields: tuple[FieldName, ...] | None = None
    """Fields searched by every part of the rule (default: title, summary, body)."""
    min_hits: Annotated[int, Field(ge=1)] | None = None
    """At least this many occurrences of the rule's aliases and keywords in total."""
    sources: tuple[Id, ...] | None = None
    languages: tuple[Annotated[str, Field(pattern=r"^[a-z]{2,3}$")], ...] | None = None
    """ISO 639-1 codes; an article without a declared language is detected."""
    enabled: bool = True
    notify: tuple[Id, ...] | None = None
    tags: tuple[str, ...] = ()


class RuleFileModel(_Model):
    """A rule file: actors and rules, both optional."""

    actors: dict[Id, ActorModel] = Field(default_factory=dict)
    rules: tuple[RuleModel, ...] = ()


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
