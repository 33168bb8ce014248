"""Fork and exit hooks for every live tracker.

After ``fork()`` librdkafka's threads do not exist in the child: its copy of the parent's
producer is unusable, and destroying it would wait for those threads forever. The child
therefore leaks that object on purpose (one extra reference, never freed) and builds a new
producer and spool; the parent's queued records are sent by the parent only.

A ``multiprocessing`` child (``fork`` or ``forkserver``) leaves through ``os._exit``, which
skips ``atexit``: its trackers are closed (flushed, the rest spooled) by a multiprocessing
finalizer that every such child registers (``multiprocessing.util.register_after_fork``
runs in the child after the parent's finalizers are cleared). A bare ``os.fork()`` child that
ends with ``os._exit`` has no such hook: it must call ``tracker.close()`` itself.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import threading
import weakref
from multiprocessing import util as mp_util
from typing import Any, Protocol


class Forkable(Protocol):
    def _reinit_in_child(self) -> None: ...

    def close(self, timeout: float | None = None) -> Any: ...


_live: weakref.WeakSet[Any] = weakref.WeakSet()
_lock = threading.Lock()


def watch(tracker: Forkable) -> None:
    with _lock:
        _live.add(tracker)


def forget(tracker: Forkable) -> None:
    with _lock:
        _live.discard(tracker)


def abandon(obj: object) -> None:
    """Keep ``obj`` alive until the process ends, so its destructor never runs."""
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    for tracker in list(_live):
        tracker._reinit_in_child()


def _close_all_at_exit() -> None:
    """Bounded by each tracker's ``close_timeout_seconds``; never hangs the exit."""
    for tracker in list(_live):
        with contextlib.suppress(Exception):  # nothing useful left to do at exit
            tracker.close()


def _at_child_exit(_anchor: object) -> None:
    """In a multiprocessing child: close every tracker when the child's target returns."""
    mp_util.Finalize(None, _close_all_at_exit, exitpriority=100)


class _Anchor:
    """A weak-referenceable object for ``register_after_fork`` (kept for the process life)."""


_ANCHOR = _Anchor()
os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)
mp_util.register_after_fork(_ANCHOR, _at_child_exit)
