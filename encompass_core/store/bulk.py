"""Reading many documents at once (listings, migration) without paying for the cycle collector.

Parsing and converting thousands of documents makes hundreds of thousands of small objects,
none of them garbage; each few hundred allocations start a collection that walks them all again.
At 10,000 images that was a third of ``image list``'s time: the collector is paused while a
bulk read builds its objects, and runs as usual afterwards.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block (nested blocks are fine)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
