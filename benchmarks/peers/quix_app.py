"""Quix Streams peer: per-type minute counts and per-user hour counts in tumbling windows.

Runs in its own venv (Quix Streams pins an older confluent-kafka than brainstream; see
``quix-requirements.txt``), so it imports nothing from the project. Written the way the Quix
Streams docs write a windowed count: a JSON topic whose timestamp is the event's
``occurred_at``, ``group_by("type")`` (a repartition topic) for the per-type branch, the
message key (``user_id``) for the per-user branch, ``tumbling_window(...).count().current()``
in RocksDB state with changelog topics, at-least-once.

    python quix_app.py BOOTSTRAP TOPIC EVENTS OUT_JSON STATE_DIR GROUP [--aggregates type,user]
        [--grace-s 86400]

Stops once every branch has counted ``EVENTS`` events and writes to ``OUT_JSON``: events/s
(from the first event read to the last one counted, so start-up and the group join are not
included), the sum of the last count of every (key, window) per branch (each must equal
``EVENTS``), the number of windows, and the records the windows refused as late.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from quixstreams import Application

WINDOWS = {"type": timedelta(minutes=1), "user": timedelta(hours=1)}


def occurred_at_ms(value: Any, _headers: Any, timestamp: int, _type: Any) -> int:
    """The event's own time, so that windows are in event time (late events land in old ones)."""
    try:
        return int(datetime.fromisoformat(value["occurred_at"]).timestamp() * 1000)
    except (KeyError, TypeError, ValueError):
        return timestamp


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("bootstrap", "topic", "events", "out", "state_dir", "group"):
        parser.add_argument(name)
    parser.add_argument("--aggregates", default="type,user")
    parser.add_argument("--grace-s", type=float, default=86_400.0)
    args = parser.parse_args()
    n = int(args.events)
    aggregates = [a for a in args.aggregates.split(",") if a]
    unknown = set(aggregates) - set(WINDOWS)
    if unknown or not aggregates:
        parser.error(f"--aggregates takes type and/or user, not {args.aggregates!r}")

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    topic = app.topic(
        args.topic,
        key_deserializer="str",
        value_deserializer="json",
        timestamp_extractor=occurred_at_ms,
    )
    state: dict[str, Any] = {"started": 0.0, "finished": 0.0}
    counted = dict.fromkeys(aggregates, 0)
    late = dict.fromkeys(aggregates, 0)
    latest: dict[str, dict[tuple[Any, int], int]] = {a: {} for a in aggregates}

    def first_read(_value: Any) -> None:
        if not state["started"]:
            state["started"] = time.perf_counter()

    def counter(name: str) -> Any:
        windows = latest[name]

        def record(window: dict[str, Any], key: Any, *_: Any) -> None:
            windows[(key, window["start"])] = window["value"]
            counted[name] += 1
            if all(c >= n for c in counted.values()) and not state["finished"]:
                state["finished"] = time.perf_counter()
                app.stop()

        return record

    def on_late(name: str) -> Any:
        def refused(*_: Any, **__: Any) -> bool:
            late[name] += 1
            counted[name] += 1  # read, but not counted in any window: the totals will show it
            return False

        return refused

    sdf = app.dataframe(topic)
    sdf = sdf.update(first_read)
    grace = timedelta(seconds=args.grace_s)
    # the per-user branch first: group_by() ends its own stage in a repartition topic
    for name in sorted(aggregates, key=lambda a: a != "user"):
        branch = sdf.group_by("type") if name == "type" else sdf
        branch = (
            branch.tumbling_window(WINDOWS[name], grace_ms=grace, on_late=on_late(name))
            .count()
            .current()
        )
        branch.update(counter(name), metadata=True)
    app.run()

    elapsed = state["finished"] - state["started"]
    result: dict[str, Any] = {
        "events": n,
        "events_per_s": n / elapsed if state["finished"] else 0.0,
        "seconds": elapsed,
        "grace_s": args.grace_s,
    }
    for name in aggregates:
        result[f"{name}_total"] = sum(latest[name].values())
        result[f"{name}_windows"] = len(latest[name])
        result[f"{name}_late"] = late[name]
    with open(args.out, "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    logging.getLogger("quixstreams").setLevel(logging.WARNING)
    main()
