"""Building the long-lived objects of a rule set without making the garbage collector pay for them.

Loading and compiling rules create hundreds of thousands of small objects (millions for 100,000
rules) that hold no reference cycles and live until the next reload. CPython's cyclic collector
would scan them repeatedly while they are built, then once in each younger generation before they
reach the oldest one: seconds of pauses, most of them in the first articles matched after a
reload. :func:`long_lived` builds with the collector paused and files the result directly in the
oldest generation, which it scans only on a full collection, as it would have anyway.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["long_lived"]


@contextmanager
def long_lived() -> Iterator[None]:
    """Pause the cyclic collector for the block; on success, move every tracked object to the
    oldest generation.

    Nothing changes if the collector was already off (the caller manages it) or if the process
    froze objects itself (``gc.freeze``): moving goes through the permanent generation, and would
    thaw those. Objects are only moved, never frozen: cycles among them are still collected.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    except BaseException:
        gc.enable()
        raise
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()
    gc.enable()
