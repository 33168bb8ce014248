"""Errors an operator can fix, as one line naming the setting (``brainstream --debug``: the
traceback instead). Anything else is a bug and keeps its traceback."""

from __future__ import annotations

import sys

import psycopg
from confluent_kafka import KafkaError, KafkaException
from psycopg.conninfo import conninfo_to_dict
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from schemas import BrainstreamError
from schemas.config import AUTHORIZATION_FAILED, KafkaAccessRefused, KafkaSettings

_KAFKA_AUTH = {KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._AUTHENTICATION}
_KAFKA_TLS = {KafkaError._SSL}
_GROUP_ROLES = {
    "sink": "brainstream_sink",
    "worker": "brainstream_worker",
    "erase-user": "brainstream_eraser",
    "export": "brainstream_reader",
    "dashboard": "brainstream_reader",
}
"""The migrations' group role holding what each command's process needs in Postgres."""


def one_line(exc: BaseException) -> str | None:
    """The line to print for ``exc``, or ``None`` when it deserves a traceback."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return _kafka(exc.args[0])
    if isinstance(exc, psycopg.OperationalError):
        return _postgres(exc)
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return _privilege(exc)
    if isinstance(exc, ValidationError):
        prefix = _env_prefix(exc.title)
        if prefix is not None:
            return "invalid setting: " + "; ".join(
                f"{prefix}{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
                for e in exc.errors()
            )
    if isinstance(exc, KafkaAccessRefused) and exc.username is None and _principal():
        return str(KafkaAccessRefused(_principal(), exc.refused, exc.code))  # who, from the env
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
    if code in AUTHORIZATION_FAILED:  # the credentials were accepted; an ACL is missing
        return str(KafkaAccessRefused(_principal(), f"a request ({err.str()})", err.name()))
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


def _privilege(exc: psycopg.errors.InsufficientPrivilege) -> str:
    """``permission denied for table t`` as one line naming the login role and the grant."""
    role = _postgres_role(exc)
    denied = exc.diag.message_primary or _first_line(exc)
    on = denied.rsplit(" for ", 1)[-1] if " for " in denied else "it"
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), "")
    group = _GROUP_ROLES.get(command)
    grant = (
        f"GRANT {group} TO {role} (the migrations grant {group} what `brainstream {command}` "
        f"needs on {on})"
        if group
        else f"grant {role} the privilege on {on}"
    )
    return f"Postgres refused role {role!r}: {denied}: {grant}, or check BRAINSTREAM_POSTGRES_DSN"


def _postgres_role(exc: psycopg.Error) -> str:
    """The login role of the connection that raised ``exc`` (else the DSN's ``user``)."""
    if exc.pgconn is not None and exc.pgconn.user:
        return exc.pgconn.user.decode()
    try:
        from brainstream.settings import Settings

        user = conninfo_to_dict(Settings().postgres.conninfo).get("user")
    except Exception:  # the line names the setting either way
        user = None
    return str(user or "?")


def _principal() -> str | None:
    """The SASL principal the process runs as (``BRAINSTREAM_KAFKA_SASL_USERNAME``)."""
    try:
        return KafkaSettings().sasl_username
    except ValidationError:
        return None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
