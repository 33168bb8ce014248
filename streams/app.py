"""The worker: a faust-streaming application that folds ``brainstream.events`` into Postgres.

No Faust tables (their changelogs are outside Faust's transactions, faust-streaming #177, and
windows expire by wall clock, #385): Postgres holds the truth behind offset fences. Faust runs
the process and serves the web pages; the topic itself is read by a :class:`BatchConsumer`
(confluent-kafka, in a thread) because Faust's per-message consumer path costs ~70 us per event
(faust#563), five times the decode-fold-upsert work. Batches are applied in order, one while
the next is read, and their Kafka offsets are committed only after their fenced transactions
committed. Faust's own Kafka consumer and producer are not started.
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
from pathlib import Path
from typing import Any

import faust
import psycopg
from faust.app.base import BootStrategy
from mode import BaseSignalT
from pydantic import SecretStr

from schemas.config import KafkaSettings, TopicSettings
from streams.config import WorkerConfig
from streams.consumer import BatchConsumer
from streams.errors import UnsupportedKafkaSecurity
from streams.metrics import WorkerMetrics
from streams.processor import BatchProcessor
from streams.records import FutureSkew
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
    """A Faust app whose :class:`BatchConsumer` applies batches via a :class:`BatchProcessor`.

    ``api_token``: bearer token of the per-user page (``/aggregates/users/{id}``), passed in by
    the composition root; ``None`` leaves it open (the web server then binds loopback)."""
    metrics = metrics if metrics is not None else WorkerMetrics()
    datadir = Path(config.data_dir or Path(tempfile.gettempdir()) / "brainstream-worker")
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(config.group_id, **_faust_settings(config, kafka, datadir))
    # Faust serves the web pages and runs the process; Kafka is read by the BatchConsumer.
    app.boot_strategy = BootStrategy(app, enable_kafka=False)
    processor = BatchProcessor(
        conninfo,
        config.projection,
        topics.events,
        skew=FutureSkew(config.future_skew_seconds, config.future_policy),
        metrics=metrics,
        retry_initial_s=config.retry_initial_s,
        retry_max_s=config.retry_max_s,
        connect=lambda dsn: psycopg.connect(dsn, application_name=config.db_application_name),
        lanes=config.apply_lanes,
    )
    batches = BatchConsumer(
        _consumer_conf(config, kafka),
        topics.events,
        processor.prepare,
        processor.apply,
        size=config.batch_size,
        within=config.batch_within_s,
    )

    async def consume() -> None:
        try:
            await batches.run()
        except Exception as exc:
            _fatal(exc)

    async def finish(sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any) -> None:
        await batches.stop()

    app.task(consume)
    app.on_before_shutdown.connect(finish)

    register_pages(app, conninfo, metrics, processor, api_token)
    return app


def _fatal(exc: BaseException | None) -> None:
    """A bug, not a database fault (those are retried): die so a restart redelivers from the
    last committed Kafka offset and the fences skip what was applied. Continuing would let
    later batches move the fence past the events of the failed one."""
    log.critical("aggregate agent failed; exiting", exc_info=exc)
    logging.shutdown()
    os._exit(70)


def _consumer_conf(config: WorkerConfig, kafka: KafkaSettings) -> dict[str, Any]:
    return {
        **kafka.librdkafka(),
        "group.id": config.group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": config.auto_offset_reset,
        "session.timeout.ms": round(config.session_timeout_s * 1000),
        "heartbeat.interval.ms": round(config.heartbeat_interval_s * 1000),
    }


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
