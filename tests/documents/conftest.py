"""Fixtures for the document parser tests: the sample files under tests/fixtures/documents."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "documents"


@pytest.fixture
def fixture_bytes() -> Callable[[str], bytes]:
    """``fixture_bytes(name)``: the bytes of one sample document."""

    def read(name: str) -> bytes:
        return (FIXTURES / name).read_bytes()

    return read
