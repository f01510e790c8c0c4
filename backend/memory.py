"""Work that builds millions of small objects at once (a sync of a large pool: a dict per task, a
row per task) runs with Python's cyclic garbage collector paused. Each collection of the oldest
generation walks every live object, and such work sets off many of them: at 1M tasks they took
more time than the work itself. Nothing built there is a reference cycle, so nothing waits to
be freed."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector for the block; nested blocks and a collector already off are left
    as they were."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
