"""The librdkafka configuration of every client of the log: one builder for consumers, one for
producers. A process passes what is its own (group, static membership, timeouts, batching) as
arguments; what every client of brainstream needs is decided here once.

``connection`` is the connection part (``schemas.config.KafkaSettings.librdkafka()``:
bootstrap servers, client id, security). Property names and defaults are librdkafka's
(``CONFIGURATION.md`` of librdkafka 2.x).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

OffsetReset = Literal["earliest", "latest", "error"]


def consumer_conf(
    connection: Mapping[str, Any],
    group_id: str,
    *,
    instance_id: str | None = None,
    offset_reset: OffsetReset | None = "earliest",
    store_offsets: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A consumer that commits only what the caller tells it to, and reads only committed data.

    Args:
        connection: bootstrap servers, client id and security properties.
        group_id: ``group.id`` (for an ``assign()``-only reader, a group never joined).
        instance_id: ``group.instance.id`` (static membership), or none.
        offset_reset: ``auto.offset.reset`` (``error``: deleted records fail the read instead
            of being skipped; ``None`` keeps librdkafka's default).
        store_offsets: ``enable.auto.offset.store``: ``commit()`` without offsets commits what
            was consumed.
        extra: the process's own properties (timeouts, fetch sizes), applied last.

    Returns:
        The librdkafka configuration (a new dict).
    """
    conf: dict[str, Any] = {"group.instance.id": instance_id} if instance_id else {}
    conf.update(connection)
    conf.update(
        {
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": store_offsets,
            "isolation.level": "read_committed",
        }
    )
    if offset_reset is not None:
        conf["auto.offset.reset"] = offset_reset
    conf.update(extra or {})
    return conf


def producer_conf(
    connection: Mapping[str, Any],
    *,
    linger_ms: int = 5,
    compression: str = "none",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An idempotent producer whose records are acknowledged by every in-sync replica.

    ``enable.idempotence`` (which implies ``acks=all``) keeps a retried send from duplicating
    or reordering records within a partition; ``connection`` may set other defaults but not
    weaken these two.

    Args:
        connection: bootstrap servers, client id and security properties.
        linger_ms: ``linger.ms`` (librdkafka's default is 5).
        compression: ``compression.type`` (``none``, ``gzip``, ``snappy``, ``lz4``, ``zstd``).
        extra: the process's own properties (batching, timeouts, queue bounds), applied last.

    Returns:
        The librdkafka configuration (a new dict).
    """
    conf: dict[str, Any] = {"linger.ms": linger_ms, "compression.type": compression}
    conf.update(connection)
    conf.update({"enable.idempotence": True, "acks": "all"})
    conf.update(extra or {})
    return conf
