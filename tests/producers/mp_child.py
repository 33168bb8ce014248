"""A multiprocessing child tracks once and returns: ``python -m tests.producers.mp_child METHOD``.

The tracker is made at module level (as a service does), from ``MP_BOOTSTRAP``, ``MP_TOPIC``
and ``MP_SPOOL``: the ``forkserver`` server imports this module too, so its children inherit
the tracker through ``fork()`` like ``fork`` children do. The child leaves through
``os._exit`` without calling ``close()``; linger is long, so its event is still queued then.
Prints one JSON line per process: the child's event id, then the parent's stats.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from pathlib import Path

from producers import Tracker
from schemas.config import KafkaSettings

TRACKER = Tracker(
    KafkaSettings(bootstrap_servers=os.environ["MP_BOOTSTRAP"]),
    topic=os.environ["MP_TOPIC"],
    source="mp-test",
    spool_dir=Path(os.environ["MP_SPOOL"]),
    prometheus=False,
    linger_ms=2_000,
)


def child(user: str) -> None:
    event_id = TRACKER.track("page_view", user, path="/child")
    print(json.dumps({"who": "child", "id": event_id, "pid": os.getpid()}), flush=True)


if __name__ == "__main__":
    ctx = multiprocessing.get_context(sys.argv[1])
    proc = ctx.Process(target=child, args=(f"user-{sys.argv[1]}",))
    proc.start()
    proc.join(60)
    stats = TRACKER.close(10.0)
    print(json.dumps({"who": "parent", "exitcode": proc.exitcode, "stats": stats.as_dict()}))
