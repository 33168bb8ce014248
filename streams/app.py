"""The faust-streaming application: one agent folds ``brainstream.events`` into Postgres.

No Faust tables (their changelogs are outside Faust's transactions, faust-streaming #177, and
windows expire by wall clock, #385): Postgres holds the truth behind offset fences. The agent
runs with concurrency 1 (faust-streaming #606), batches with ``take_events`` (which acks a batch
only when the loop body that applied it returns) and keeps Faust's leader topic off.
"""

from __future__ import annotations

import ssl
from typing import Any

import faust

from schemas.config import KafkaSettings, TopicSettings
from streams.config import WorkerConfig
from streams.errors import UnsupportedKafkaSecurity
from streams.metrics import WorkerMetrics
from streams.processor import BatchProcessor, RawRecord
from streams.records import FutureSkew
from streams.web import register_pages


def create_app(
    config: WorkerConfig,
    kafka: KafkaSettings,
    topics: TopicSettings,
    conninfo: str,
    metrics: WorkerMetrics | None = None,
) -> faust.App:
    """A Faust app whose agent applies batches through a :class:`BatchProcessor`."""
    metrics = metrics if metrics is not None else WorkerMetrics()
    app = faust.App(config.group_id, **_faust_settings(config, kafka))
    processor = BatchProcessor(
        conninfo,
        config.projection,
        topics.events,
        skew=FutureSkew(config.future_skew_seconds, config.future_policy),
        metrics=metrics,
        retry_initial_s=config.retry_initial_s,
        retry_max_s=config.retry_max_s,
    )
    topic = app.topic(topics.events, key_serializer="raw", value_serializer="raw")

    async def aggregate(stream: Any) -> None:
        async for events in stream.take_events(config.batch_size, within=config.batch_within_s):
            await processor.process([_raw(e) for e in events])

    app.agent(topic, name="brainstream.aggregates", concurrency=1)(aggregate)

    register_pages(app, conninfo, metrics, processor)
    return app


def _raw(event: Any) -> RawRecord:
    msg = event.message
    stamp = msg.timestamp
    return RawRecord(msg.partition, msg.offset, msg.value, round(stamp * 1000) if stamp else None)


def _faust_settings(config: WorkerConfig, kafka: KafkaSettings) -> dict[str, Any]:
    hosts = ";".join(f"kafka://{h.strip()}" for h in kafka.bootstrap_servers.split(","))
    return {
        "broker": hosts,
        "broker_client_id": kafka.client_id,
        "broker_credentials": _credentials(kafka),
        "store": "memory://",
        "topic_replication_factor": 1,
        "topic_disable_leader": True,
        "topic_allow_declare": False,
        "broker_session_timeout": config.session_timeout_s,
        "broker_heartbeat_interval": config.heartbeat_interval_s,
        "broker_commit_interval": config.commit_interval_s,
        "consumer_auto_offset_reset": config.auto_offset_reset,
        "stream_wait_empty": True,
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
