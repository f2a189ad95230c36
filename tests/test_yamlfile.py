"""The YAML reader: values, the line of every key, and problems, whichever way a value is built."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import yamlfile

SCALARS = st.sampled_from(
    [
        "a",
        "'quoted'",
        '"double"',
        "1",
        "1.5",
        "true",
        "null",
        "~",
        "''",
        "2024-01-01",
        "!!str 5",
        "!!int 5",
        "!!str {a: 1}",
        "!!str [a]",
        "!!python/name:os.system",
        "&x anchored",
        "*x",
        "*m",
        "|\n  block\n",
    ]
)
KEYS = st.sampled_from(["a", "b", "a", "1", "true", "null", "'q'", "!!str 2", "[k]", "<<"])


def _mapping(pairs: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{key}: {value}" for key, value in pairs) + "}"


def _sequence(items: list[str]) -> str:
    return "[" + ", ".join(items) + "]"


def _block(pairs: list[tuple[str, str]]) -> str:
    return "".join(f"{key}: {value}\n" for key, value in pairs)


VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(st.tuples(KEYS, inner), max_size=4).map(_mapping),
        st.lists(inner, max_size=4).map(_sequence),
    ),
    max_leaves=12,
)
ANCHORED = "m: &m {k: v, 1: w, a: [x, y]}\n"
"""A mapping to merge ("<<: *m") or repeat ("*m"). No alias here names a node that holds it:
those cycles are a problem of their own, tested apart."""
DOCUMENTS = st.one_of(
    VALUES,
    st.tuples(
        st.sampled_from(["", ANCHORED]),
        st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=5).map(_block),
    ).map("".join),
)


@settings(max_examples=400, deadline=None)
@given(DOCUMENTS)
def test_string_values_read_without_interpolation_are_read_as_with_it(text: str) -> None:
    """The shortcut for plain string values (taken when nothing rewrites strings) gives the same
    values, lines and problems as building each value on its own (an interpolation that changes
    nothing)."""
    plain = yamlfile.parse(text, "f.yaml")
    interpolated = yamlfile.parse(text, "f.yaml", interpolate=lambda value: value)
    assert (plain.value, plain.lines, plain.problems) == (
        interpolated.value,
        interpolated.lines,
        interpolated.problems,
    )


def test_alias_bomb_is_refused_at_the_same_node_either_way() -> None:
    """Strings in mappings count towards the node limit like any other value."""
    text = "a: &a {k: v, l: w}\n" + "".join(
        f"{level}: &{level} [" + ", ".join([f"*{chr(ord(level) - 1)}"] * 10) + "]\n"
        for level in "bcdef"
    )
    plain = yamlfile.parse(text, "f.yaml")
    assert [p.message for p in plain.problems] == [
        f"document expands to more than {yamlfile.MAX_NODES} nodes (alias bomb?)"
    ]
    assert plain.problems == yamlfile.parse(text, "f.yaml", interpolate=str).problems


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("keywords: &x [*x]\n", 1),
        ("rules:\n  - &r {id: a, more: [*r]}\n", 2),
        ("a: &m\n  b: *m\n", 1),
    ],
)
def test_an_alias_inside_the_node_it_names_is_a_problem_at_its_line(text: str, line: int) -> None:
    """A recursive alias (a cycle) is reported as a problem at the node's line, not a crash."""
    doc = yamlfile.parse(text, "f.yaml")
    assert [(p.line, p.message) for p in doc.problems] == [
        (line, "an alias refers to a node that contains it (a cycle)")
    ]


def test_a_file_that_is_not_utf8_is_a_problem_at_the_line_of_its_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes(b"rules:\n  - id: a\n    name: caf\xe9\n")
    doc = yamlfile.load(path)
    assert [(p.file, p.line) for p in doc.problems] == [(str(path), 3)]
    assert doc.problems[0].message.startswith("not UTF-8: byte 0xe9 cannot be decoded")


def test_a_character_yaml_forbids_is_a_problem_at_its_line() -> None:
    doc = yamlfile.parse("a: 1\nb: x\x00y\n", "f.yaml")
    assert [p.line for p in doc.problems] == [2]
    assert doc.problems[0].message.startswith("character U+0000 is not allowed in YAML")


def test_a_forbidden_character_after_non_ascii_text_is_on_its_own_line() -> None:
    """libyaml counts bytes where Python counts characters: the line is right either way."""
    text = "# " + "漢" * 40 + "\n" + "a: 1\n" * 14 + "d: \x00\n"
    doc = yamlfile.parse(text, "f.yaml")
    assert [p.line for p in doc.problems] == [16]


def test_a_file_over_the_cap_is_a_problem_without_being_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes(b"# " + b"x" * yamlfile.MAX_FILE_BYTES + b"\n")
    doc = yamlfile.load(path)
    assert [(p.line, p.message) for p in doc.problems] == [
        (0, f"file too large (over {yamlfile.MAX_FILE_BYTES} bytes)")
    ]
