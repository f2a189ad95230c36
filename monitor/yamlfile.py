"""YAML files -> plain Python values, with the line of every key kept for error messages.

Only YAML's safe subset is accepted (no Python tags). PyYAML silently keeps the last of two equal
keys and expands aliases without limit; both are errors here, because a watchlist with a duplicated
``keywords:`` loses half its terms without a word, and an alias bomb must not take the daemon down.
"""

from __future__ import annotations

import difflib
import errno
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from monitor.errors import Problem

# libyaml's parser is some twenty times faster than PyYAML's own: it decides whether a reload of
# tens of thousands of rules takes one second or twenty. Both build the same safe nodes.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_FILE_BYTES = 4 * 1024 * 1024
"""Larger YAML files are refused: a watchlist this big is a mistake or an attack."""

MAX_NODES = 200_000
"""Alias expansion beyond this many nodes is refused (billion-laughs for YAML)."""

Key = tuple[str | int | float | bool, ...]
Interpolate = Callable[[str], str]
"""Rewrites a string scalar (e.g. ${VAR} substitution); raises ValueError with a message."""


@dataclass
class Document:
    """A parsed YAML file: its value, the line of each path in it, and the problems found."""

    file: str
    value: Any = None
    lines: dict[Key, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line_of(self, loc: Sequence[str | int | float | bool]) -> int:
        """The line of the deepest known path along ``loc`` (pydantic error locations).

        Locations may hold entries with no YAML counterpart (the tag of a tagged union); those
        are skipped rather than ending the walk.
        """
        best: Key = ()
        current: Key = ()
        for part in loc:
            candidate = (*current, part)
            if candidate in self.lines:
                current = candidate
                best = current
        return self.lines.get(best, 1)

    def problem(self, loc: Sequence[str | int | float | bool], message: str) -> Problem:
        return Problem(self.file, self.line_of(loc), message)


def read_regular(path: Path, limit: int = -1) -> bytes:
    """The bytes of ``path`` (at most ``limit`` of them, when given), which must be a regular
    file: a FIFO or a device would block the reader (or never end), so it raises
    OSError("not a regular file") instead."""
    # O_NONBLOCK: opening a FIFO with no writer must not wait for one.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return handle.read(limit)


def load(
    path: Path, *, display: str | None = None, interpolate: Interpolate | None = None
) -> Document:
    """Read and parse one YAML file; problems are collected in the Document, never raised."""
    name = display or str(path)
    try:
        data = read_regular(path, MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            reason = f"file too large (over {MAX_FILE_BYTES} bytes)"
            return Document(name, problems=[Problem(name, 0, reason)])
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        reason = f"not UTF-8: byte {exc.object[exc.start]:#04x} cannot be decoded ({exc.reason})"
        return Document(name, problems=[Problem(name, line, reason)])
    except OSError as exc:
        return Document(name, problems=[Problem(name, 0, f"cannot read: {exc}")])
    return parse(text, name, interpolate=interpolate)


def parse(text: str, name: str, *, interpolate: Interpolate | None = None) -> Document:
    """Parse YAML text; problems are collected in the Document, never raised."""
    doc = Document(name)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            doc.value = _Builder(loader, doc, interpolate).build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        reason = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        doc.problems.append(Problem(name, line, f"YAML syntax error: {reason}"))
    except yaml.reader.ReaderError as exc:
        # A character YAML does not allow (a NUL, say): the reader knows where, not the line.
        # libyaml (the C loader) counts bytes of UTF-8, the Python reader characters.
        if _Loader is yaml.SafeLoader:
            line = text.count("\n", 0, exc.position) + 1
        else:
            line = text.encode("utf-8", "surrogatepass").count(b"\n", 0, exc.position) + 1
        character = exc.character if isinstance(exc.character, str) else chr(exc.character)
        reason = f"character U+{ord(character):04X} is not allowed in YAML ({exc.reason})"
        doc.problems.append(Problem(name, line, reason))
    except yaml.YAMLError as exc:
        doc.problems.append(Problem(name, 0, f"YAML error: {exc}"))
    except (_TooManyNodesError, _CycleError) as exc:
        doc.problems.append(Problem(name, exc.line, str(exc)))
    finally:
        loader.dispose()
    return doc


_STR = "tag:yaml.org,2002:str"
_PLAIN_KEY_TYPES = (str, int, bool, float)
_PLAIN_TAGS = frozenset(
    {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:omap"}
)


class _TooManyNodesError(Exception):
    def __init__(self, line: int) -> None:
        self.line = line
        super().__init__(f"document expands to more than {MAX_NODES} nodes (alias bomb?)")


class _CycleError(Exception):
    def __init__(self, line: int) -> None:
        self.line = line
        super().__init__("an alias refers to a node that contains it (a cycle)")


class _Builder:
    def __init__(
        self, loader: yaml.SafeLoader, doc: Document, interpolate: Interpolate | None
    ) -> None:
        self.loader = loader
        self.doc = doc
        self.interpolate = interpolate
        self.count = 0
        self._open: set[int] = set()
        """The collections being built, by id: one met again inside itself is a cycle."""

    def build(self, node: yaml.Node, key: Key) -> Any:
        line = self._count(node)
        self.doc.lines.setdefault(key, line)
        if node.tag not in _PLAIN_TAGS and not isinstance(node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"unsupported YAML tag {node.tag!r}", node.start_mark
            )
        if isinstance(node, yaml.CollectionNode):
            if id(node) in self._open:
                raise _CycleError(line)
            self._open.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return self._mapping(node, key)
                return [self.build(item, (*key, i)) for i, item in enumerate(node.value)]
            finally:
                self._open.discard(id(node))
        # Strings are most scalars of a rule file; the resolver has tagged them already, so
        # their value needs no constructor (the constructor costs more than all the rest).
        value = node.value if node.tag == _STR else self.loader.construct_object(node, deep=True)
        if isinstance(value, str) and self.interpolate is not None:
            try:
                value = self.interpolate(value)
            except ValueError as exc:
                self.doc.problems.append(Problem(self.doc.file, line, str(exc)))
        return value

    def _count(self, node: yaml.Node) -> int:
        """Count ``node`` towards MAX_NODES; its line."""
        self.count += 1
        line: int = node.start_mark.line + 1
        if self.count > MAX_NODES:
            raise _TooManyNodesError(line)
        return line

    def _mapping(self, node: yaml.MappingNode, key: Key) -> dict[Any, Any]:
        self.loader.flatten_mapping(node)  # resolves "<<" merge keys
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            name = (
                key_node.value
                if key_node.tag == _STR
                else self.loader.construct_object(key_node, deep=True)
            )
            line = key_node.start_mark.line + 1
            if not isinstance(name, _PLAIN_KEY_TYPES):
                self.doc.problems.append(Problem(self.doc.file, line, "keys must be plain scalars"))
                continue
            if name in result:
                first = self.doc.lines.get((*key, name), 0)
                self.doc.problems.append(
                    Problem(self.doc.file, line, f"duplicate key {name!r} (first at line {first})")
                )
                continue
            path = (*key, name)
            self.doc.lines[path] = line
            if (
                value_node.tag == _STR
                and isinstance(value_node, yaml.ScalarNode)
                and self.interpolate is None
            ):
                # Most values are strings: what build() would do for them, without the call.
                self._count(value_node)
                result[name] = value_node.value
            else:
                result[name] = self.build(value_node, path)
        return result


def validation_problems(
    doc: Document, error: ValidationError, vocabulary: Iterable[str] = (), prefix: Key = ()
) -> list[Problem]:
    """Turn pydantic's errors into file:line problems, with a suggestion for misspelt keys."""
    words = sorted(set(vocabulary))
    problems = []
    for item in error.errors(include_url=False):
        loc = (*prefix, *item["loc"])
        where = ".".join(str(part) for part in loc) or "document"
        if item["type"] == "extra_forbidden":
            name = str(loc[-1])
            hint = difflib.get_close_matches(name, words, n=1)
            message = f"unknown key {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        elif item["type"] == "missing":
            message = f"{where}: required key is missing"
        else:
            message = f"{where}: {item['msg']}"
        problems.append(doc.problem(loc, message))
    return problems
