"""Kafka connection and topic settings shared by every package.

They live beside the contracts so a service that embeds only ``producers`` reads exactly the same
``BRAINSTREAM_KAFKA_*`` variables as the sink and the workers: one variable, one meaning.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas import topics
from schemas.errors import BrainstreamError

_CREDENTIAL_SETTINGS = "BRAINSTREAM_KAFKA_SASL_USERNAME / BRAINSTREAM_KAFKA_SASL_PASSWORD"
_REFUSED = {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED}
_UNREACHABLE = {KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE, KafkaError._TRANSPORT}


class KafkaAuthenticationFailed(BrainstreamError):
    """The cluster refused this client's SASL credentials (wrong password, unknown principal,
    wrong mechanism). Retrying never cures it (librdkafka would retry forever, a consumer would
    wait without a word), so the client stops with this error, whose one line names the
    principal and the settings to fix. The password is never in it."""

    def __init__(self, username: str | None, reason: str) -> None:
        super().__init__(
            f"Kafka refused the credentials of principal {username!r} ({reason}): "
            f"check {_CREDENTIAL_SETTINGS}"
        )


AUTHORIZATION_FAILED = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    }
)
"""Codes of the authorizer's refusals: the credentials were accepted, an ACL is missing."""


class KafkaAccessRefused(BrainstreamError):
    """The cluster's authorizer refused this principal something its process needs (an ACL
    is missing, or the process runs as another principal than meant). No retry cures it, so
    the process stops with this error, whose one line says what was refused, to whom, and
    which ACL or setting to check: ``Kafka refused principal 'worker' writing to topic
    'brainstream.events' (TOPIC_AUTHORIZATION_FAILED): grant User:worker that ACL, or run as
    another principal (BRAINSTREAM_KAFKA_SASL_USERNAME)``."""

    def __init__(self, username: str | None, refused: str, code: str) -> None:
        who = f"principal {username!r}" if username else "this client's principal"
        fix = f"grant User:{username} that ACL, or" if username else "grant it that ACL, or"
        super().__init__(
            f"Kafka refused {who} {refused} ({code}): {fix} run as another principal "
            "(BRAINSTREAM_KAFKA_SASL_USERNAME)"
        )
        self.username = username
        self.refused = refused
        self.code = code


def principal(conf: Mapping[str, Any]) -> str | None:
    """The SASL principal of a librdkafka configuration (``sasl.username``), if any."""
    username = conf.get("sasl.username")
    return str(username) if username is not None else None


def access_refused(
    err: KafkaError | None, username: str | None, refused: str
) -> KafkaAccessRefused | None:
    """:class:`KafkaAccessRefused` for ``err`` when it is an authorizer's refusal, else
    ``None``; ``refused`` says what the client was doing (``"reading topic 'x'"``)."""
    if err is None or err.code() not in AUTHORIZATION_FAILED:
        return None
    return KafkaAccessRefused(username, refused, err.name())


def check_topic_access(
    kafka: KafkaSettings, names: list[str], doing: str, timeout: float = 15.0
) -> None:
    """Ask the cluster for ``names``' metadata as ``kafka``'s SASL principal and raise
    :class:`KafkaAccessRefused` for the first it may not describe (``doing``: ``"reading"``).
    For a client whose own library only logs such a refusal and waits (the worker's aiokafka);
    without SASL it returns at once.

    Raises:
        KafkaAccessRefused: the principal may not describe one of ``names``."""
    if not kafka.security_protocol.startswith("SASL"):
        return
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**kafka.librdkafka(), "log_level": 0})
    for name in names:
        meta = admin.list_topics(name, timeout=timeout).topics.get(name)
        refused = f"{doing} topic {name!r}"
        denied = access_refused(meta.error if meta else None, kafka.sasl_username, refused)
        if denied is not None:
            raise denied


@dataclass(frozen=True)
class RefuseOnAuthenticationFailure:
    """librdkafka ``error_cb`` of SASL clients: raises :class:`KafkaAuthenticationFailed` (out
    of the ``poll``/``consume``/``flush`` that served the callback) on an authentication error;
    every other error is left to the client's own handling (librdkafka logs it)."""

    username: str | None

    def __call__(self, err: KafkaError) -> None:
        if err.code() in _REFUSED:
            raise KafkaAuthenticationFailed(self.username, err.str())


def check_credentials(kafka: KafkaSettings, timeout: float = 15.0) -> None:
    """Connect once with ``kafka``'s SASL credentials and raise
    :class:`KafkaAuthenticationFailed` if the cluster refuses them.

    A process calls this before its first Kafka request: librdkafka answers a metadata
    request made with refused credentials only by timing out ("Failed to get metadata" after
    30 s), and reports the refusal only to an ``error_cb`` that some poll serves. Returns when
    the cluster answered, at once when it is unreachable (the caller's own request reports
    that), after ``timeout`` seconds otherwise; without SASL it returns at once.

    Raises:
        KafkaAuthenticationFailed: the credentials were refused."""
    if not kafka.security_protocol.startswith("SASL"):
        return
    from confluent_kafka.admin import AdminClient

    seen: list[KafkaError] = []
    conf = {**kafka.librdkafka(), "error_cb": seen.append, "log_level": 0}
    admin = AdminClient(conf)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        admin.poll(0.1)  # serves error_cb
        for err in seen:
            if err.code() in _REFUSED:
                raise KafkaAuthenticationFailed(kafka.sasl_username, err.str())
            if err.code() in _UNREACHABLE:
                return
        try:
            admin.list_topics(timeout=0.4)
            return
        except KafkaException:
            continue


class KafkaSettings(BaseSettings):
    """``BRAINSTREAM_KAFKA_*``: where the brokers are and how to authenticate."""

    model_config = SettingsConfigDict(
        env_prefix="BRAINSTREAM_KAFKA_", env_file=".env", extra="ignore"
    )

    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "brainstream"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: SecretStr | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    """Any other librdkafka property, as JSON: ``{"socket.keepalive.enable": true}``."""

    def librdkafka(self) -> dict[str, Any]:
        """The connection part of a librdkafka configuration (secrets revealed here only)."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "security.protocol": self.security_protocol,
        }
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": _reveal(self.sasl_password),
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": _reveal(self.ssl_key_password),
        }
        conf.update({k: v for k, v in optional.items() if v is not None})
        if self.security_protocol.startswith("SASL"):  # a client may set its own error_cb
            conf["error_cb"] = RefuseOnAuthenticationFailure(self.sasl_username)
        conf.update(self.extra)
        return conf


class TopicSettings(BaseSettings):
    """``BRAINSTREAM_TOPIC_*``: names and shape of the topics."""

    model_config = SettingsConfigDict(
        env_prefix="BRAINSTREAM_TOPIC_", env_file=".env", extra="ignore"
    )

    events: str = topics.EVENTS
    dlq: str = topics.DLQ
    accepted: str = ""
    """What the raw sink stored (:mod:`schemas.accepted`), as many partitions as ``events``.
    Unset: ``<events>.accepted``, i.e. :data:`schemas.topics.ACCEPTED` for the default events
    topic, so a deployment (or a test) that renames ``events`` gets a matching one."""
    erasures: str = topics.ERASURES
    events_partitions: int = Field(default=12, ge=1, le=10_000)
    replication_factor: int | None = Field(default=None, ge=1, le=10)
    """Unset: the cluster's ``default.replication.factor`` (and its ``min.insync.replicas``):
    ``brainstream dev up`` makes them 1/1 on one broker, 3/2 on three."""
    events_retention_days: int = Field(default=90, ge=1)
    """How long the log keeps events (the source of truth every projection is rebuilt from);
    ``-1``-style infinity is not offered."""
    events_timestamp_type: Literal["LogAppendTime", "CreateTime"] = "LogAppendTime"
    """The events topic's ``message.timestamp.type``: broker time by default, so the consumers'
    future-skew rule compares ``occurred_at`` with a clock the producer host does not control,
    and a host whose clock is ahead is not refused (``INVALID_TIMESTAMP``) but clamped."""
    dlq_retention_days: int = Field(default=30, ge=1, le=365)
    """How long the dead-letter topic keeps a record: bounded, so an erased user's dead letters
    (which ``dlq inspect`` and ``dlq replay`` skip) age out of the log too."""
    segment_ms: int = Field(default=6 * 3600 * 1000, ge=60_000, le=86_400_000)
    """Segments roll at least daily, so retention deletes data within a day of its age bound."""

    @model_validator(mode="after")
    def _accepted_follows_events(self) -> TopicSettings:
        if not self.accepted:
            self.accepted = f"{self.events}{topics.ACCEPTED.removeprefix(topics.EVENTS)}"
        return self

    @property
    def events_retention_ms(self) -> int:
        return self.events_retention_days * 86_400_000

    @property
    def dlq_retention_ms(self) -> int:
        return self.dlq_retention_days * 86_400_000


def _reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None
