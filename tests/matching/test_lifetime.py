"""Building rule sets with the cyclic collector paused, and filing the result as old."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from monitor.matching.lifetime import long_lived


@pytest.fixture
def collecting() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


@pytest.mark.usefixtures("collecting")
def test_pauses_the_collector_and_moves_what_was_built_to_the_oldest_generation() -> None:
    with long_lived():
        assert not gc.isenabled()
        built = [[n] for n in range(1_000)]
    assert gc.isenabled()
    # Nothing is left in the young generations to scan again, and nothing is frozen.
    assert gc.get_count()[0] < 10
    assert gc.get_freeze_count() == 0
    assert gc.is_tracked(built[0])


@pytest.mark.usefixtures("collecting")
def test_reenables_the_collector_when_the_build_fails() -> None:
    with pytest.raises(ValueError, match="bad rule"), long_lived():
        raise ValueError("bad rule")
    assert gc.isenabled()


def test_leaves_a_paused_collector_paused() -> None:
    was = gc.isenabled()
    gc.disable()
    try:
        with long_lived():
            pass
        assert not gc.isenabled()
    finally:
        if was:
            gc.enable()


@pytest.mark.usefixtures("collecting")
def test_keeps_objects_the_process_froze_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with long_lived():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
