"""The export as one call, with its Kafka and Postgres connections (CLI, HTTP, tests)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer

from eventlog.reader import LogReader, reader_conf
from schemas.config import TopicSettings, principal
from sinks.export import erased as erased_users
from sinks.export.config import ExportConfig, ExportRequest
from sinks.export.manifest import Manifest
from sinks.export.progress import Progress
from sinks.export.run import run_export

GROUP_ID = "brainstream-export"
"""Never joined nor committed (partitions are assigned); named for the broker's client lists."""


def load_erased(
    kafka_conf: dict[str, Any], topics: TopicSettings, conninfo: str | None, config: ExportConfig
) -> frozenset[str]:
    """Erased users from Postgres (when ``conninfo`` is given) and the erasures topic."""
    erased = erased_users.from_postgres(conninfo) if conninfo is not None else set()
    consumer = Consumer(reader_conf(kafka_conf, GROUP_ID))
    try:
        erased |= erased_users.from_topic(
            LogReader(consumer, topics.erasures, config, principal=principal(kafka_conf))
        )
    finally:
        consumer.close()
    return frozenset(erased)


def export(
    request: ExportRequest,
    config: ExportConfig,
    kafka_conf: dict[str, Any],
    topics: TopicSettings,
    conninfo: str | None,
    *,
    progress: Progress | None = None,
) -> Manifest:
    """Export ``request`` from ``topics.events``; with ``config.source == "accepted"`` (the
    default) only what the raw sink stored, read from ``topics.accepted``."""
    erased = load_erased(kafka_conf, topics, conninfo, config)
    consumer = Consumer(reader_conf(kafka_conf, GROUP_ID))
    side = Consumer(reader_conf(kafka_conf, GROUP_ID)) if config.source == "accepted" else None
    try:
        reader = LogReader(consumer, topics.events, config, principal=principal(kafka_conf))
        accepted = (
            LogReader(side, topics.accepted, config, principal=principal(kafka_conf))
            if side is not None
            else None
        )
        return run_export(request, config, reader, erased, accepted=accepted, progress=progress)
    finally:
        consumer.close()
        if side is not None:
            side.close()
