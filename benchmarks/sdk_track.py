"""Per-call cost of ``Tracker.track()`` against the bare ``produce()`` floor and the SDKs users
pick instead (Segment's ``track()`` from the maintained ``segment-analytics-python`` 2.x, and
PostHog's ``capture()``, both with sending disabled), plus sustained throughput delivered to the
broker by one process.

    python benchmarks/sdk_track.py [--quick]

The cases run interleaved, in rounds, so they share the machine's conditions (round 0 is a
warm-up). Every call is timed on its own (``perf_counter_ns`` around it, the same overhead in
every case). The floor is ``produce()`` of the pre-encoded record with its contract headers
(also reported without headers). ``track()`` is measured the way a service calls it: a
page_view with keyword properties inside ``with tracker.user(...)``: full validation, user
injection, encoding, ``produce()``; the tracker's poller thread serves delivery reports.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from _harness import services, write_result
from confluent_kafka import Producer

import schemas
from brainstream.topic_admin import delete_topics, ensure_topics
from producers import Tracker, TrackerConfig
from schemas.config import KafkaSettings, TopicSettings

PROPS = {"path": "/tasks/42", "referrer": "/dashboard", "duration_ms": 1200}


def kafka_settings() -> KafkaSettings:
    return services()[0]


def timed(fn: Callable[[], Any], n: int) -> list[int]:
    clock = time.perf_counter_ns
    samples = [0] * n
    for i in range(n):
        start = clock()
        fn()
        samples[i] = clock() - start
    return samples


def summary(samples: list[int]) -> dict[str, float]:
    samples = sorted(samples)
    n = len(samples)
    return {
        "median_us": samples[n // 2] / 1000,
        "p99_us": samples[int(n * 0.99)] / 1000,
        "mean_us": round(statistics.fmean(samples) / 1000, 3),
        "calls": n,
    }


class Poller:
    """Serves delivery reports of a bare producer on a thread, as the tracker's poller does."""

    def __init__(self, producer: Producer) -> None:
        self._producer = producer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def per_call_costs(kafka: KafkaSettings, topic: str, n: int, rounds: int) -> dict[str, Any]:
    """All cases interleaved in ``rounds`` rounds, so they share the machine's conditions."""
    import posthog
    from segment.analytics import Client as SegmentClient

    producer = Producer(TrackerConfig().producer_conf(kafka.librdkafka()))
    poller = Poller(producer)
    key, value, headers = schemas.to_record(
        schemas.PageView(user_id="user-1", source="bench", properties=PROPS)
    )
    spool = Path(tempfile.mkdtemp(prefix="bench-spool-"))
    tracker = Tracker(kafka, topic=topic, source="bench", spool_dir=spool, prometheus=False)
    segment = SegmentClient("bench-write-key", send=False, max_queue_size=10 * n)
    hog = posthog.Posthog("phc_bench", send=False, max_queue_size=10 * n)
    track = tracker.track

    cases: dict[str, Callable[[], Any]] = {
        "floor_produce": lambda: producer.produce(topic, value, key, headers=headers),  # type: ignore[arg-type]
        "floor_produce_no_headers": lambda: producer.produce(topic, value, key),
        "track": lambda: track(
            "page_view", path="/tasks/42", referrer="/dashboard", duration_ms=1200
        ),
        "segment_track": lambda: segment.track("user-1", "page_view", PROPS),
        "posthog_capture": lambda: hog.capture("page_view", distinct_id="user-1", properties=PROPS),
    }
    samples: dict[str, list[int]] = {name: [] for name in cases}
    per_round = n // rounds
    with tracker.user("user-1"):
        for round_ in range(rounds + 1):
            for name, fn in cases.items():
                taken = timed(fn, per_round)
                if round_:  # round 0 is the warm-up
                    samples[name] += taken
            producer.flush(30)
            tracker.flush(30)
    stats = tracker.close(30)
    poller.stop()
    segment.shutdown()
    hog.shutdown()
    out: dict[str, Any] = {name: summary(taken) for name, taken in samples.items()}
    out["track"]["invalid"] = stats.invalid
    out["track"]["delivered"] = stats.delivered
    return out


def bench_throughput(kafka: KafkaSettings, topic: str, n: int) -> dict[str, Any]:
    spool = Path(tempfile.mkdtemp(prefix="bench-spool-"))
    with Tracker(kafka, topic=topic, source="bench", spool_dir=spool, prometheus=False) as tr:
        start = time.perf_counter()
        with tr.user("user-1"):
            for i in range(n):
                tr.track("page_view", path="/tasks/42", duration_ms=i % 5000)
        left = tr.flush(120)
        elapsed = time.perf_counter() - start
        stats = tr.stats()
    return {
        "events": n,
        "delivered": stats.delivered,
        "spooled": stats.spooled,
        "left_in_queue": left,
        "seconds": round(elapsed, 3),
        "events_per_s": round(stats.delivered / elapsed),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    logging.getLogger("posthog").setLevel(logging.CRITICAL)
    logging.getLogger("segment").setLevel(logging.CRITICAL)
    n, rounds, volume = (40_000, 4, 100_000) if args.quick else (200_000, 10, 500_000)
    kafka = kafka_settings()
    names = TopicSettings(events=f"bench.sdk.{uuid.uuid4().hex[:8]}", events_partitions=3)
    ensure_topics(kafka, names)
    figures: dict[str, Any] = {
        "segment_version": version("segment-analytics-python"),
        "posthog_version": version("posthog"),
    }
    try:
        figures |= per_call_costs(kafka, names.events, n, rounds)
        figures["throughput"] = bench_throughput(kafka, names.events, volume)
    finally:
        delete_topics(kafka, [names.events, names.dlq, names.erasures])
    track = figures["track"]["median_us"]
    floor = figures["floor_produce"]["median_us"]
    segment = figures["segment_track"]["median_us"]
    vs_segment, vs_floor = track / segment, track / floor
    figures["ratio_vs_segment"] = round(vs_segment, 3)
    figures["ratio_vs_floor_with_headers"] = round(vs_floor, 3)
    bare = figures["floor_produce_no_headers"]["median_us"]
    figures["ratio_vs_floor_no_headers"] = round(track / bare, 3)
    meets = vs_segment <= 0.4 and vs_floor <= 3.0
    result = {
        "name": "sdk_track",
        "ratio": round(vs_segment, 3),
        "target": "track() median <= 0.4x Segment track() and <= 3x produce() of pre-encoded bytes",
        "meets": meets,
        "quick": args.quick,
        "figures": figures,
    }
    write_result(result)
    print(
        f"sdk_track: track() median {track:.2f} us (p99 {figures['track']['p99_us']:.1f}) = "
        f"{vs_segment:.2f}x Segment ({segment:.2f} us), {vs_floor:.2f}x produce() floor "
        f"({floor:.2f} us); posthog {figures['posthog_capture']['median_us']:.1f} us; "
        f"{figures['throughput']['events_per_s']} events/s delivered; "
        f"{'meets' if meets else 'MISSES'} target"
    )


if __name__ == "__main__":
    main()
