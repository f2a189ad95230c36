"""Rule files -> a RuleSet, or every problem found in them.

Every ``*.yaml``/``*.yml`` under the rules path is read (hidden files and folders are skipped, so
editors' swap files are not). Each file is validated on its own; cross-file checks follow:
duplicate rule or actor ids, unknown actors, unknown channels and templates, rules with nothing to
match.
Loading either yields a complete RuleSet or raises ConfigError: a half-loaded watchlist would
silently drop alerts.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from monitor import yamlfile
from monitor.errors import ConfigError, Problem
from monitor.matching.language import STEMMER_LANGUAGES
from monitor.matching.lifetime import long_lived
from monitor.matching.query import Node, QueryError, actor_refs, parse_query
from monitor.matching.rules import Actor, Rule, Term, TermSpec, term_text
from monitor.matching.schema import (
    ID_PATTERN,
    ActorModel,
    RuleFileModel,
    RuleModel,
    TermModel,
    vocabulary,
)
from monitor.matching.text import norms
from monitor.models import FIELDS

SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class RuleSet:
    """Every rule and actor loaded from a rules path."""

    rules: tuple[Rule, ...]
    actors: dict[str, Actor] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    def by_id(self) -> dict[str, Rule]:
        return {rule.id: rule for rule in self.rules}


def rule_files(path: Path) -> list[Path]:
    """The rule files under ``path`` (or ``path`` itself), in a stable order. Whatever has a rule
    file's name and is not a folder is one: a FIFO or a symlink loop so named is then reported
    as a file that cannot be read, not skipped as if it were not there."""
    if not path.is_dir():
        return [path]
    return sorted(
        candidate
        for candidate in path.rglob("*")
        if candidate.suffix.lower() in SUFFIXES
        and not candidate.is_dir()
        and not any(part.startswith(".") for part in candidate.relative_to(path).parts)
    )


def load_rules(
    path: Path,
    channels: Collection[str] | None = None,
    sources: Collection[str] | None = None,
    templates: Collection[str] | None = None,
) -> RuleSet:
    """Load every rule file under ``path``; raise ConfigError with every problem found.

    ``channels`` and ``sources`` are the configured ids, ``templates`` the template names of the
    config's templates folder; when given, a rule's ``notify``, ``sources`` and ``template`` are
    checked against them.
    """
    if not path.exists():
        reason = "is a broken symlink or a symlink loop" if path.is_symlink() else "does not exist"
        raise ConfigError([Problem(str(path), 0, f"rules path {reason}")])
    # Loading builds many small objects and no cycles; the cyclic collector would only rescan
    # them (a third of the time of a large reload).
    with long_lived():
        return _load(path, channels, sources, templates)


def _load(
    path: Path,
    channels: Collection[str] | None,
    sources: Collection[str] | None,
    templates: Collection[str] | None,
) -> RuleSet:
    files = rule_files(path)
    problems: list[Problem] = []
    parsed: list[_File] = []
    for file in files:
        doc = yamlfile.load(file, display=_display(file))
        problems += doc.problems
        if not doc.problems:
            parsed.append(_validate(doc, problems))
    actors, actor_problems = _collect_actors(parsed)
    rules, rule_problems = _collect_rules(parsed, actors, channels, sources, templates)
    problems += actor_problems + rule_problems
    if problems:
        raise ConfigError(problems)
    return RuleSet(rules=tuple(rules), actors=actors, files=tuple(_display(f) for f in files))


@dataclass
class _File:
    doc: yamlfile.Document
    actors: dict[str, ActorModel] = field(default_factory=dict)
    rules: list[tuple[int, RuleModel]] = field(default_factory=list)


def _validate(doc: yamlfile.Document, problems: list[Problem]) -> _File:
    """Validate each actor and rule on its own, so one bad rule does not hide the others."""
    result = _File(doc)
    raw = doc.value if doc.value is not None else {}
    if not isinstance(raw, dict):
        problems.append(
            doc.problem((), "a rule file must be a mapping with 'actors' and/or 'rules'")
        )
        return result
    words = vocabulary()
    for key in raw:
        if key not in RuleFileModel.model_fields:
            hint = difflib.get_close_matches(str(key), sorted(words), n=1)
            problems.append(
                doc.problem(
                    (key,),
                    f"unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""),
                )
            )
    actors = raw.get("actors") or {}
    if not isinstance(actors, dict):
        problems.append(doc.problem(("actors",), "'actors' must be a mapping of actor ids"))
        actors = {}
    for actor_id, spec in actors.items():
        if not isinstance(actor_id, str) or not ID_PATTERN.match(actor_id):
            problems.append(doc.problem(("actors", actor_id), f"invalid actor id {actor_id!r}"))
            continue
        try:
            result.actors[actor_id] = ActorModel.model_validate(spec)
        except ValidationError as exc:
            problems += yamlfile.validation_problems(doc, exc, words, prefix=("actors", actor_id))
    rules = raw.get("rules") or []
    if not isinstance(rules, list):
        problems.append(doc.problem(("rules",), "'rules' must be a list of rules"))
        rules = []
    for index, spec in enumerate(rules):
        try:
            result.rules.append((index, RuleModel.model_validate(spec)))
        except ValidationError as exc:
            problems += yamlfile.validation_problems(doc, exc, words, prefix=("rules", index))
    return result


def _display(file: Path) -> str:
    try:
        return str(file.resolve().relative_to(Path.cwd()))
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return str(file)


def _collect_actors(parsed: list[_File]) -> tuple[dict[str, Actor], list[Problem]]:
    actors: dict[str, Actor] = {}
    where: dict[str, str] = {}
    problems = []
    for file in parsed:
        doc = file.doc
        for actor_id, spec in file.actors.items():
            line = doc.line_of(("actors", actor_id))
            if actor_id in actors:
                problems.append(
                    Problem(
                        doc.file, line, f"duplicate actor id {actor_id!r} (also {where[actor_id]})"
                    )
                )
                continue
            aliases = _dedupe((spec.name, *(_term(a) for a in spec.aliases)))
            if not norms(spec.name):
                # The name is an alias too; one with no words would silently match nothing.
                where_name = ("actors", actor_id, "name")
                problems.append(
                    doc.problem(where_name, f"name {spec.name!r} has no words to match")
                )
            for index, alias in enumerate(spec.aliases):
                if not norms(term_text(_term(alias))):
                    loc = ("actors", actor_id, "aliases", index)
                    problems.append(
                        doc.problem(loc, f"alias {term_text(_term(alias))!r} has no words to match")
                    )
            actors[actor_id] = Actor(id=actor_id, name=spec.name, aliases=aliases)
            where[actor_id] = f"{doc.file}:{line}"
    return actors, problems


def _collect_rules(
    parsed: list[_File],
    actors: dict[str, Actor],
    channels: Collection[str] | None,
    sources: Collection[str] | None,
    templates: Collection[str] | None,
) -> tuple[list[Rule], list[Problem]]:
    rules: list[Rule] = []
    where: dict[str, str] = {}
    problems = []
    for file in parsed:
        doc = file.doc
        for index, spec in file.rules:
            loc = ("rules", index)
            line = doc.line_of(loc)
            if spec.id in where:
                message = f"duplicate rule id {spec.id!r} (also {where[spec.id]})"
                problems.append(Problem(doc.file, line, message))
                continue
            where[spec.id] = f"{doc.file}:{line}"
            found = _check_rule(
                doc,
                loc,
                spec,
                actors=actors,
                channels=channels,
                sources=sources,
                templates=templates,
            )
            problems += found.problems
            rules.append(
                Rule(
                    id=spec.id,
                    name=spec.name,
                    severity=spec.severity,
                    actors=tuple(actors[a] for a in spec.actors if a in actors),
                    keywords=tuple(map(_term, spec.keywords)),
                    exclude=tuple(map(_term, spec.exclude)),
                    query=found.query,
                    query_text=spec.query,
                    slop=spec.slop,
                    enabled=spec.enabled,
                    notify=spec.notify,
                    fields=spec.fields if spec.fields is not None else FIELDS,
                    min_hits=spec.min_hits,
                    sources=spec.sources,
                    languages=spec.languages,
                    stem=spec.stem,
                    language=spec.language,
                    tags=spec.tags,
                    throttle=spec.throttle,
                    min_sources=spec.min_sources,
                    window=spec.window,
                    template=spec.template,
                    query_actors=tuple(actors[a] for a in found.query_actors if a in actors),
                    file=doc.file,
                    line=line,
                )
            )
    return rules, problems


@dataclass
class _Checked:
    problems: list[Problem] = field(default_factory=list)
    query: Node | None = None
    query_actors: list[str] = field(default_factory=list)


def _check_rule(
    doc: yamlfile.Document,
    loc: tuple[str, int],
    spec: RuleModel,
    *,
    actors: dict[str, Actor],
    channels: Collection[str] | None,
    sources: Collection[str] | None,
    templates: Collection[str] | None,
) -> _Checked:
    """Checks that need more than one rule's own keys: references, terms, the query."""
    result = _Checked()
    problems = result.problems
    for position, actor_id in enumerate(spec.actors):
        if actor_id not in actors:
            problems.append(
                doc.problem((*loc, "actors", position), _unknown("actor", actor_id, actors))
            )
    for key, known, ids in (("notify", channels, spec.notify), ("sources", sources, spec.sources)):
        for position, item in enumerate(ids or ()):
            if known is not None and item not in known:
                kind = "channel" if key == "notify" else "source"
                problems.append(doc.problem((*loc, key, position), _unknown(kind, item, known)))
    if spec.template is not None and templates is not None and spec.template not in templates:
        name = spec.template
        message = _unknown("template", name, templates) + (
            f"; the templates folder has no {name}.alert.<format>.j2 or {name}.digest.<format>.j2"
        )
        problems.append(doc.problem((*loc, "template"), message))
    for key, terms in (("keywords", spec.keywords), ("exclude", spec.exclude)):
        for position, term in enumerate(terms):
            text = term_text(_term(term))
            if not norms(text):
                problems.append(
                    doc.problem((*loc, key, position), f"{text!r} has no words to match")
                )
    if spec.language not in STEMMER_LANGUAGES:
        hint = _unknown("stemmer language", spec.language, STEMMER_LANGUAGES)
        problems.append(doc.problem((*loc, "language"), hint))
    if spec.query is not None:
        try:
            result.query = parse_query(spec.query, known_actor=actors.__contains__)
        except QueryError as exc:
            problems.append(doc.problem((*loc, "query"), f"query {exc}"))
        else:
            result.query_actors = [ref.actor for ref in actor_refs(result.query)]
    if not spec.actors and not spec.keywords and spec.query is None:
        message = f"rule {spec.id!r} has nothing to match: give it actors, keywords or a query"
        problems.append(doc.problem(loc, message))
    return result


def _term(entry: str | TermModel) -> Term:
    if isinstance(entry, str):
        return entry
    return TermSpec(entry.text, entry.case_sensitive, entry.slop)


def _dedupe(terms: tuple[Term, ...]) -> tuple[Term, ...]:
    return tuple(dict.fromkeys(terms))


def _unknown(kind: str, name: str, known: Collection[str]) -> str:
    hint = difflib.get_close_matches(name, list(known), n=1)
    return f"unknown {kind} {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
