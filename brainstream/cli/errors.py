"""Errors an operator can fix, as one line naming the setting (``brainstream --debug``: the
traceback instead). Anything else is a bug and keeps its traceback."""

from __future__ import annotations

import psycopg
from confluent_kafka import KafkaError, KafkaException
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from schemas import BrainstreamError

_KAFKA_AUTH = {
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError._AUTHENTICATION,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
}
_KAFKA_TLS = {KafkaError._SSL}


def one_line(exc: BaseException) -> str | None:
    """The line to print for ``exc``, or ``None`` when it deserves a traceback."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return _kafka(exc.args[0])
    if isinstance(exc, psycopg.OperationalError):
        return _postgres(exc)
    if isinstance(exc, ValidationError):
        prefix = _env_prefix(exc.title)
        if prefix is not None:
            return "invalid setting: " + "; ".join(
                f"{prefix}{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
                for e in exc.errors()
            )
    if isinstance(exc, BrainstreamError):
        return _first_line(exc)
    return None


def _env_prefix(model: str) -> str | None:
    """The ``env_prefix`` of the settings class named ``model``, if it is one."""
    todo: list[type[BaseSettings]] = [BaseSettings]
    while todo:
        cls = todo.pop()
        if cls.__name__ == model and cls is not BaseSettings:
            return str(cls.model_config.get("env_prefix", ""))
        todo.extend(cls.__subclasses__())
    return None


def _kafka(err: KafkaError) -> str:
    code = err.code()
    if code in _KAFKA_AUTH:
        setting = "BRAINSTREAM_KAFKA_SASL_USERNAME / _SASL_PASSWORD / _SASL_MECHANISM"
        return f"Kafka refused the credentials ({err.name()}): check {setting}"
    if code in _KAFKA_TLS:
        setting = "BRAINSTREAM_KAFKA_SSL_CA_LOCATION / _SSL_CERTIFICATE_LOCATION / _SSL_KEY_*"
        return f"Kafka TLS failed ({err.str()}): check {setting}"
    return (
        f"Kafka unreachable or failing ({err.name()}: {err.str()}): "
        "check BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS"
    )


def _postgres(exc: Exception) -> str:
    text = _first_line(exc)
    if "password authentication failed" in text or ("role" in text and "does not exist" in text):
        return f"Postgres refused the credentials ({text}): check BRAINSTREAM_POSTGRES_DSN"
    return f"Postgres unreachable ({text}): check BRAINSTREAM_POSTGRES_DSN"


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
