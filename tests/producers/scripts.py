"""Host processes for the exit and fork tests: ``python -m tests.producers.scripts CMD ...``.

Each prints one JSON line with what it tracked and the tracker's final stats. The line is
printed by an atexit hook registered *before* ``producers`` is imported, so it runs after
the SDK's own exit flush (atexit runs last-in, first-out).
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

REPORT: dict[str, Any] = {}


def _print_report() -> None:
    tracker = REPORT.pop("tracker", None)
    if tracker is not None:
        REPORT["stats"] = tracker.stats().as_dict()
    print(json.dumps(REPORT), flush=True)


atexit.register(_print_report)

from producers import Tracker  # noqa: E402
from schemas.config import KafkaSettings  # noqa: E402


def make(bootstrap: str, topic: str, spool: str, **options: Any) -> Tracker:
    return Tracker(
        KafkaSettings(bootstrap_servers=bootstrap),
        topic=topic,
        source="exit-test",
        spool_dir=Path(spool),
        prometheus=False,
        **options,
    )


def exit_with_queue(bootstrap: str, topic: str, spool: str, n: str) -> None:
    """Track and return at once: the atexit flush has to deliver (or spool) everything."""
    tracker = make(bootstrap, topic, spool, linger_ms=2000, close_timeout_seconds=10.0)
    REPORT["tracker"] = tracker
    REPORT["ids"] = [
        tracker.track("task_created", f"user-{i % 7}", task_id=f"t-{i}") for i in range(int(n))
    ]
    REPORT["queued_at_exit"] = len(tracker._producer)


def spool_then_sigkill(bootstrap: str, topic: str, spool: str, n: str) -> None:
    """Broker unreachable: wait until everything timed out into the spool, then SIGKILL."""
    tracker = make(bootstrap, topic, spool, delivery_timeout_ms=1000)
    ids = [tracker.track("logout", f"user-{i % 5}") for i in range(int(n))]
    deadline = time.monotonic() + 30
    while tracker.stats().in_spool < len(ids) and time.monotonic() < deadline:
        time.sleep(0.1)
    print(json.dumps({"ids": ids, "stats": tracker.stats().as_dict()}), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def drain(bootstrap: str, topic: str, spool: str, wait: str) -> None:
    """Track nothing; adopt what earlier processes spooled and wait until it is delivered."""
    tracker = make(bootstrap, topic, spool, resend_interval_seconds=0.2)
    REPORT["tracker"] = tracker
    deadline = time.monotonic() + float(wait)
    while time.monotonic() < deadline:
        stats = tracker.stats()
        if stats.recovered and not stats.in_spool and not stats.in_flight:
            break
        time.sleep(0.2)
    tracker.close(10.0)


def fork(bootstrap: str, topic: str, spool: str, n: str) -> None:
    """Parent tracks, forks; the child and the parent both track; every id is printed."""
    count = int(n)
    tracker = make(bootstrap, topic, spool, linger_ms=500)
    before = [tracker.track("page_view", "user-parent", path="/before") for _ in range(count)]
    pid = os.fork()
    if pid == 0:
        ids = [tracker.track("page_view", "user-child", path="/child") for _ in range(count)]
        stats = tracker.close(10.0)
        print(json.dumps({"who": "child", "ids": ids, "stats": stats.as_dict()}), flush=True)
        os._exit(0)
    after = [tracker.track("page_view", "user-parent", path="/after") for _ in range(count)]
    os.waitpid(pid, 0)
    REPORT.update(who="parent", ids=before + after, stats=tracker.close(10.0).as_dict())


if __name__ == "__main__":
    commands = {"exit": exit_with_queue, "drain": drain, "fork": fork, "kill": spool_then_sigkill}
    commands[sys.argv[1]](*sys.argv[2:])
