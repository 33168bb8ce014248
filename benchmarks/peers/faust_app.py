"""Faust peer: per-type minute counts and per-user hour counts, the way the Faust docs count.

An app with two per-event agents over the events topic (JSON envelopes keyed by ``user_id``,
read as a ``faust.Record`` with ISO dates), each adding 1 to a tumbling windowed table in event
time (``relative_to_field(occurred_at)``): the per-user agent reads the topic as it is keyed,
the per-type agent re-keys it with ``stream.group_by(type)`` (a repartition topic), as a
table must be co-partitioned with its stream. Tables keep the default changelog topics and an
in-memory store. Nothing of brainstream is used.

    python faust_app.py BOOTSTRAP TOPIC EVENTS OUT_JSON DATADIR APP_ID PARTITIONS WEB_PORT

Stops once both agents have counted ``EVENTS`` events and writes to ``OUT_JSON``: events/s (from
the first event an agent saw to the last one counted: start-up, group join and table recovery
are not included) and, per table, the sum of every window's count (each must equal ``EVENTS``)
and the number of windows.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timedelta
from typing import Any

import faust


class Envelope(faust.Record, serializer="json", isodates=True):
    """The fields of a ``brainstream.events`` envelope that the counts need (others are kept)."""

    type: str
    user_id: str
    occurred_at: datetime


def main() -> None:
    bootstrap, topic_name, events, out_path, datadir, app_id, partitions, port = sys.argv[1:9]
    n = int(events)
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=datadir,
        topic_partitions=int(partitions),
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        web_port=int(port),
        web_bind="127.0.0.1",
    )
    topic = app.topic(topic_name, key_type=str, value_type=Envelope)
    # windows expire long after the oldest late event the benchmark writes (hours back)
    per_type = (
        app.Table("per_type_minute", default=int)
        .tumbling(60, expires=timedelta(days=2))
        .relative_to_field(Envelope.occurred_at)
    )
    per_user = (
        app.Table("per_user_hour", default=int)
        .tumbling(3600, expires=timedelta(days=2))
        .relative_to_field(Envelope.occurred_at)
    )
    state = {"started": 0.0, "type": 0, "user": 0}

    def counted(name: str) -> None:
        state[name] += 1
        if state["type"] >= n and state["user"] >= n:
            finish(time.perf_counter())

    def finish(finished: float) -> None:
        elapsed = finished - state["started"]
        result: dict[str, Any] = {"events": n, "events_per_s": n / elapsed, "seconds": elapsed}
        for name, table in (("type", per_type), ("user", per_user)):
            store = table.table.data
            result[f"{name}_total"] = sum(store.values())
            result[f"{name}_windows"] = len(store)
        with open(out_path, "w") as out:
            json.dump(result, out)
        sys.stdout.flush()
        os._exit(0)  # the benchmark needs no graceful shutdown, and Faust's takes seconds

    @app.agent(topic)
    async def count_per_user(stream: faust.StreamT[Envelope]) -> None:
        async for event in stream:
            state["started"] = state["started"] or time.perf_counter()
            per_user[event.user_id] += 1
            counted("user")

    @app.agent(topic)
    async def count_per_type(stream: faust.StreamT[Envelope]) -> None:
        async for event in stream.group_by(Envelope.type, name="type"):
            state["started"] = state["started"] or time.perf_counter()
            per_type[event.type] += 1
            counted("type")

    sys.argv = [sys.argv[0], "worker", "-l", "warn", "--web-port", port]
    app.main()


if __name__ == "__main__":
    main()
