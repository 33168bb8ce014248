"""SASL clients stop on an authentication failure instead of retrying it forever."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError
from pydantic import SecretStr

from brainstream.cli.errors import one_line
from schemas.config import KafkaAuthenticationFailed, KafkaSettings, check_credentials


def test_sasl_clients_raise_on_authentication_failure() -> None:
    conf = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="sink",
        sasl_password=SecretStr("hunter2"),
    ).librdkafka()
    refused = KafkaError(
        KafkaError._AUTHENTICATION,
        "SASL authentication error: Authentication failed during authentication due to "
        "invalid credentials with SASL mechanism SCRAM-SHA-512",
    )
    with pytest.raises(KafkaAuthenticationFailed, match="principal 'sink'") as caught:
        conf["error_cb"](refused)
    message = str(caught.value)
    assert "invalid credentials" in message and "hunter2" not in message
    assert "BRAINSTREAM_KAFKA_SASL_PASSWORD" in message and "\n" not in message
    assert one_line(caught.value) == message  # the CLI prints it as its one line
    conf["error_cb"](KafkaError(KafkaError._TRANSPORT, "broker down"))  # left to the client


def test_plaintext_clients_keep_librdkafkas_default() -> None:
    assert "error_cb" not in KafkaSettings().librdkafka()
    assert "error_cb" not in KafkaSettings(security_protocol="SSL").librdkafka()


def test_credentials_are_checked_only_with_sasl() -> None:
    started = time.monotonic()  # nothing listens there: a SASL check would try to connect
    check_credentials(KafkaSettings(bootstrap_servers="127.0.0.1:1"), timeout=30)
    assert time.monotonic() - started < 1


def test_an_unreachable_cluster_is_left_to_the_callers_request() -> None:
    started = time.monotonic()  # connection refused: no refusal to report, no wait
    check_credentials(
        KafkaSettings(
            bootstrap_servers="127.0.0.1:1",
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="sink",
            sasl_password=SecretStr("hunter2"),
        ),
        timeout=60,
    )
    assert time.monotonic() - started < 30
