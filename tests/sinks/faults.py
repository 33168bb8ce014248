"""Helpers of the fault-injection tests: the sink as a subprocess, and group progress."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from schemas.config import KafkaSettings, TopicSettings
from tests.fixtures.services import REPO, pipeline_env

_DUPLICATES = re.compile(r"batch \d+: records=\d+ inserted=(\d+) duplicates=(\d+)")


def sink_env(
    kafka: KafkaSettings, topics: TopicSettings, dsn: str, schema: str, group: str, **sink: object
) -> dict[str, str]:
    own = {f"SINK_{k.upper()}": v for k, v in sink.items()}
    return pipeline_env(
        kafka,
        topics,
        dsn,
        schema,
        **{
            "SINK_GROUP_ID": group,
            "SINK_INSTANCE_ID": f"{group}-0",
            "SINK_SESSION_TIMEOUT_MS": "6000",
            **own,
        },
    )


def start_sink(
    env: dict[str, str], log: Path, crash_after_batch: int | None = None
) -> subprocess.Popen[bytes]:
    """``crash_after_batch``: SIGKILL right after that batch's database commit (a test hook,
    :mod:`tests.sinks.crashing_sink`)."""
    entry = ["brainstream.cli"]
    if crash_after_batch is not None:
        entry = ["tests.sinks.crashing_sink", str(crash_after_batch)]
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", *entry, "sink"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@contextmanager
def sink_process(
    env: dict[str, str], log: Path, crash_after_batch: int | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """The sink as a subprocess, killed on the way out whatever happened."""
    proc = start_sink(env, log, crash_after_batch)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def stop_sink(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(60)


def logged_counts(log: Path) -> tuple[int, int]:
    """(inserted, duplicates) summed over every batch line the sink logged."""
    inserted = duplicates = 0
    for match in _DUPLICATES.finditer(log.read_text(errors="replace")):
        inserted += int(match.group(1))
        duplicates += int(match.group(2))
    return inserted, duplicates


def lag(kafka: KafkaSettings, group: str, topic: str) -> int:
    """Records of ``topic`` not yet committed by ``group``."""
    consumer = Consumer({**kafka.librdkafka(), "group.id": group, "enable.auto.commit": False})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=10)
        total = 0
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), 10)
            total += high - (tp.offset if tp.offset >= 0 else low)
        return total
    finally:
        consumer.close()


def wait_caught_up(kafka: KafkaSettings, group: str, topic: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while lag(kafka, group, topic) > 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"group {group} still lags on {topic}")
        time.sleep(0.5)
