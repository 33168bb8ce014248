"""Process-wide interpreter tuning for the pipeline's long-running consumers (sink, worker)."""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def runtime_tuning(gc_gen0: int | None, switch_interval: float | None) -> Iterator[None]:
    """Process-wide for the duration: the cyclic GC's generation-0 threshold and the GIL's
    switch interval (``None`` leaves either as is); both are restored afterwards.

    A batch of thousands of events allocates several tracked objects per event that die by
    reference counting; at Python's default threshold (700) the collector traverses the live
    heap over and over while a batch is decoded or folded."""
    old_gc, old_switch = gc.get_threshold(), sys.getswitchinterval()
    if gc_gen0 is not None:
        gc.set_threshold(gc_gen0, *old_gc[1:])
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)
    try:
        yield
    finally:
        gc.set_threshold(*old_gc)
        sys.setswitchinterval(old_switch)
