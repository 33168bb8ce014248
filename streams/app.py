"""The worker: a faust-streaming application whose agent folds ``brainstream.events.accepted``.

Each record of the accepted stream is one sink batch (thousands of events, :mod:`schemas.accepted`),
so Faust's per-record cost (hundreds of microseconds of CPU) is paid once per batch. The agent takes
records (``noack_take``) and offers each take to a :class:`TakePipeline`, which applies up to
``take_max`` records at a time with a :class:`BatchProcessor` (each source partition behind its
fence in one Postgres transaction, partitions in parallel lanes, each partition in order) while
the next takes are gathered and merged. A record is acked, and so its offset may be committed,
only after the apply that held it returned: the commits are progress markers, the fences are the
truth.

No Faust tables (their changelogs are outside Faust's transactions, faust-streaming #177, and
windows expire by wall clock, #385): Postgres holds the aggregates. Faust's web server serves
``/metrics``, ``/health`` and the aggregate views.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import faust
import psycopg
from faust.types import EventT
from pydantic import SecretStr

from schemas.config import KafkaSettings, TopicSettings
from streams.config import WorkerConfig
from streams.errors import ApplyAbandoned, UnsupportedKafkaSecurity
from streams.metrics import WorkerMetrics
from streams.processor import BatchProcessor, RawRecord, TakePipeline
from streams.web import register_pages

log = logging.getLogger(__name__)


def create_app(
    config: WorkerConfig,
    kafka: KafkaSettings,
    topics: TopicSettings,
    conninfo: str,
    metrics: WorkerMetrics | None = None,
    api_token: SecretStr | None = None,
) -> faust.App:
    """A Faust app with one agent over ``topics.accepted`` applying takes via a processor.

    ``api_token``: bearer token of the per-user page (``/aggregates/users/{id}``), passed in by
    the composition root; ``None`` leaves it open (the web server then binds loopback)."""
    metrics = metrics if metrics is not None else WorkerMetrics()
    datadir = Path(config.data_dir or Path(tempfile.gettempdir()) / "brainstream-worker")
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(config.group_id, **_faust_settings(config, kafka, datadir))
    processor = BatchProcessor(
        conninfo,
        config.projection,
        metrics=metrics,
        retry_initial_seconds=config.retry_initial_seconds,
        retry_max_seconds=config.retry_max_seconds,
        connect=lambda dsn: psycopg.connect(dsn, application_name=config.db_application_name),
        lanes=config.apply_lanes,
    )
    accepted = app.topic(
        topics.accepted,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def apply(raws: Sequence[RawRecord]) -> None:
        try:
            await processor.apply(raws)
        except ApplyAbandoned:
            raise
        except Exception as exc:
            _fatal(exc)

    pipelines: list[TakePipeline[EventT[bytes]]] = []

    @app.on_before_shutdown.connect
    async def finish_in_flight(_app: Any, /, *_args: Any, signal: Any, **_: Any) -> None:
        # Faust has stopped fetching. The apply in flight finishes its transaction, or gives up
        # at once if the database is down; queued takes stay unacked (read again on restart).
        # Faust does not wait for unacked records (stream_wait_empty off): with the database
        # down it would wait for ever.
        processor.stop_retrying()
        for pipeline in pipelines:
            pipeline.close()
            try:
                await pipeline.drain()
            except ApplyAbandoned as exc:
                log.warning("%s", exc)
        with contextlib.suppress(Exception):
            await app.consumer.commit()

    @app.agent(accepted, name="aggregates")
    async def aggregates(stream: faust.StreamT[bytes]) -> None:
        # noack_take leaves acking to the pipeline: a record is acked (and Faust may commit its
        # offset) only after the apply that held it returned.
        assert isinstance(stream, faust.Stream)
        pipeline: TakePipeline[EventT[bytes]] = TakePipeline(
            apply, stream.ack, _raw, max_queued=config.take_max
        )
        pipelines.append(pipeline)
        takes = stream.noack_take(config.take_max, within=config.take_within_seconds)
        async for events in takes:
            await pipeline.offer(cast(Sequence[EventT[bytes]], events))

    register_pages(app, conninfo, metrics, processor, api_token)
    return app


def _raw(event: EventT[bytes]) -> RawRecord:
    message = event.message
    stamp = round(message.timestamp * 1000) if message.timestamp else None
    return RawRecord(message.partition, message.offset, message.value, stamp)


def _fatal(exc: BaseException | None) -> None:
    """A bug, not a database fault (those are retried): die so a restart redelivers from the
    last committed Kafka offset and the fences skip what was applied. Continuing would let
    later batches move the fence past the events of the failed one."""
    log.critical("aggregate agent failed; exiting", exc_info=exc)
    logging.shutdown()
    os._exit(70)


def _faust_settings(config: WorkerConfig, kafka: KafkaSettings, datadir: Path) -> dict[str, Any]:
    hosts = ";".join(f"kafka://{h.strip()}" for h in kafka.bootstrap_servers.split(","))
    return {
        "broker": hosts,
        "broker_client_id": kafka.client_id,
        "broker_credentials": _credentials(kafka),
        "store": "memory://",
        "datadir": str(datadir / config.group_id),
        "topic_replication_factor": 1,
        "topic_disable_leader": True,
        "topic_allow_declare": False,
        "consumer_auto_offset_reset": config.auto_offset_reset,
        "broker_session_timeout": config.session_timeout_seconds,
        "broker_heartbeat_interval": config.heartbeat_interval_seconds,
        "broker_commit_interval": config.commit_interval_seconds,
        "broker_max_poll_records": config.take_max,
        "consumer_max_fetch_size": config.max_fetch_bytes,
        "stream_buffer_maxsize": max(config.take_max * 2, 64),
        "stream_wait_empty": False,
        "web_enabled": config.web_enabled,
        "web_host": config.web_host,
        "web_port": config.web_port,
        "web_bind": config.web_host,
    }


def _credentials(kafka: KafkaSettings) -> Any:
    protocol = kafka.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=kafka.ssl_ca_location)
        if kafka.ssl_certificate_location:
            password = kafka.ssl_key_password
            context.load_cert_chain(
                kafka.ssl_certificate_location,
                kafka.ssl_key_location,
                password.get_secret_value() if password else None,
            )
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    mechanism = kafka.sasl_mechanism or "PLAIN"
    if mechanism == "OAUTHBEARER":
        raise UnsupportedKafkaSecurity("sasl_mechanism", mechanism)
    secret = kafka.sasl_password
    return faust.SASLCredentials(
        username=kafka.sasl_username,
        password=secret.get_secret_value() if secret else None,
        mechanism=mechanism,
        ssl_context=context,
    )
