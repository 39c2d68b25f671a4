"""Garbage-collector settings for a serving process, applied once the app is built (wsgi.py).

Start-up leaves a large heap that lives as long as the process: the R4 element tables, the compiled profiles and
value sets, the fhir.resources models, the SQLAlchemy metadata. CPython's cyclic collector walks every tracked
object of a generation at each collection of it, so a request that allocates many containers (a census of 500
episodes builds ~300,000 dicts and lists) triggered full collections that walked that whole start-up heap again:
measured, 82 ms of CPU per census of which 31 ms were collections. Freezing moves the start-up heap out of the
collector's reach for good (https://docs.python.org/3/library/gc.html#gc.freeze), and a larger first threshold
lets short-lived request garbage die in fewer, cheaper young collections. Reference counting still frees
everything acyclic at once; only cycles wait somewhat longer.
"""
from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # allocations between young collections (CPython's default: 700)
MIDDLE_THRESHOLD = 20  # young collections between middle ones (default 10)
OLD_THRESHOLD = 20  # middle collections between full ones (default 10)


def settle() -> None:
    """Freeze what start-up allocated and set the thresholds for request work: call once, after create_app()."""
    gc.collect()  # start-up's own cycles go now, rather than being frozen in
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
