"""What users write in rule files: the models the loader validates every file against.

A rule file may define ``actors`` (usable from every file) and ``rules``. Unknown keys are errors.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from monitor.models import Severity

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
Id = Annotated[str, Field(pattern=ID_PATTERN.pattern)]
Term = Annotated[str, Field(min_length=1, max_length=500)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActorModel(_Model):
    """A person or organisation, with every name it goes by. The name itself is an alias too."""

    name: Term
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
    slop: Annotated[int, Field(ge=0, le=50)] = 3
    enabled: bool = True
    notify: tuple[Id, ...] | None = None


class RuleFileModel(_Model):
    """A rule file: actors and rules, both optional."""

    actors: dict[Id, ActorModel] = Field(default_factory=dict)
    rules: tuple[RuleModel, ...] = ()


def vocabulary() -> set[str]:
    """Every key a rule file may use, for "did you mean" suggestions."""
    return {name for model in (RuleFileModel, RuleModel, ActorModel) for name in model.model_fields}
