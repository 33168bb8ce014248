"""The SDK's configuration: a plain model, so a service can build it however it likes.

:class:`producers.settings.SdkSettings` reads it from ``BRAINSTREAM_SDK_*`` (what
``Tracker.from_env()`` uses); Kafka connection and topic names come from :mod:`schemas.config`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from eventlog.clients import producer_conf
from schemas.settings import Rename, Renamed


def default_spool_dir() -> Path:
    """``$XDG_CACHE_HOME/brainstream/spool``, else ``~/.cache/brainstream/spool``.

    A user without a home (the container's ``nobody``: ``/nonexistent``) must set
    ``BRAINSTREAM_SDK_SPOOL_DIR``; the image does (``/var/lib/brainstream/spool``)."""
    cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache) if cache else Path(os.path.expanduser("~")) / ".cache"
    return base / "brainstream" / "spool"


def destination_spool_dir(bootstrap_servers: str, topic: str) -> Path:
    """The default spool of one destination: ``default_spool_dir() / "<topic>-<12 hex>"``.

    The hex digits are the SHA-256 of the bootstrap list, lower-cased and sorted, so two
    spellings of one list share a directory. Orphaned segments are adopted by the next
    process using the same directory and re-sent to *its* topic: keying the default by
    destination keeps two services of one OS user that publish to different clusters or
    topics (staging and production on one host) from re-sending each other's events.
    """
    servers = sorted(s.strip().lower() for s in bootstrap_servers.split(",") if s.strip())
    digest = hashlib.sha256(",".join(servers).encode()).hexdigest()[:12]
    return default_spool_dir() / f"{topic}-{digest}"


class TrackerConfig(Renamed):
    """How a :class:`~producers.tracker.Tracker` behaves. Every field has a safe default;
    durations in seconds, ``_ms`` for the librdkafka properties of that name."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    renamed: ClassVar[dict[str, Rename]] = {
        "close_timeout": "close_timeout_seconds",
        "resend_interval": "resend_interval_seconds",
        "log_interval": "log_interval_seconds",
    }

    source: str = "app"
    """Service name stamped on every event (lower-case, ``[a-z0-9_.-]``)."""
    strict: bool = False
    """Raise validation errors into the caller (tests, development) instead of reporting them."""
    spool_dir: Path | None = None
    """Where undelivered events wait. ``None``: the destination's own directory under
    :func:`default_spool_dir` (:func:`destination_spool_dir`). A directory given here is used
    as is: every process sharing it must publish to the same topic of the same cluster, since
    each re-sends the others' orphaned events to its own."""
    spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=64 * 1024)
    """Cap of this process's spool; beyond it the oldest segment is dropped (and counted)."""
    delivery_timeout_ms: int = Field(default=30_000, ge=1_000)
    """librdkafka ``message.timeout.ms``: past it an undelivered event goes to the spool."""
    linger_ms: int = Field(default=200, ge=0, le=5_000)
    """librdkafka ``linger.ms``: how long a partition's events wait to share one produce
    request. Every request costs the host process (librdkafka's threads, a delivery-report
    wake-up of the poller, whose callbacks take the GIL) and the broker, whatever it carries:
    at ~800 events/s over 3 partitions, 20 ms meant ~0.16 requests per event, ~26 us of the
    app core's CPU per event in the SDK's threads and ~0.3 ms of broker CPU per event; 200 ms
    cut those to ~0.02 requests, ~6 us and the broker's idle level
    (``benchmarks/web_overhead.py``, docs/producers.md). The price: an event reaches the
    topic up to ``linger_ms`` later, and a SIGKILL loses up to that much more traffic."""
    batch_size: int = Field(default=1_000_000, ge=1_000)
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "lz4"
    queue_max_messages: int = Field(default=200_000, ge=100)
    """librdkafka's in-memory queue; when full, ``track()`` spools instead of blocking."""
    close_timeout_seconds: float = Field(default=5.0, ge=0)
    """Bound of the flush run at interpreter exit."""
    max_attempts: int = Field(default=5, ge=1, le=1_000)
    """Failed deliveries (the broker answered with an error that may pass) before a record is
    dropped as ``retries_exhausted``. Permanent errors drop at once; an unreachable broker
    counts no attempt (its events wait in the spool, bounded by ``spool_max_bytes``)."""
    resend_interval_seconds: float = Field(default=1.0, gt=0)
    """How often the poller looks at the spool (and probes the broker while it is down)."""
    log_interval_seconds: float = Field(default=10.0, gt=0)
    """At most one log line per kind of problem per interval (with a count of the rest)."""
    send: bool = True
    """``False``: a disabled tracker (tests, local runs): events are validated as usual and kept
    in memory (``tracker.recorded()``), nothing is sent, no spool is written."""
    sample_rates: dict[str, float] = Field(default_factory=dict)
    """Per event type, the fraction of ``track()`` calls kept (``{"page_view": 0.1}``; types
    not listed: all). Sampled-out calls return ``None`` and count in ``stats().filtered``."""
    prometheus: bool = True
    """Expose ``brainstream_sdk_*_total`` through prometheus-client when it is installed."""
    librdkafka: dict[str, Any] = Field(default_factory=dict)
    """Extra producer properties, applied last."""
    schema_versions: dict[str, int] = Field(default_factory=dict)
    """Type name -> the ``schema_version`` this service produces, for a service that must keep
    producing an older version (``{"page_view": 1}``); a type not named here is produced at its
    latest registered version. An event model passed to ``track`` is stamped with its own."""

    def producer_conf(self, connection: dict[str, Any]) -> dict[str, Any]:
        """The SDK's librdkafka producer configuration (``librdkafka`` applied last)."""
        extra = {
            "batch.size": self.batch_size,
            "message.timeout.ms": self.delivery_timeout_ms,
            "queue.buffering.max.messages": self.queue_max_messages,
            "queue.buffering.max.kbytes": 1_048_576,
            "log_level": 3,
            **self.librdkafka,
        }
        return producer_conf(
            connection, linger_ms=self.linger_ms, compression=self.compression, extra=extra
        )
