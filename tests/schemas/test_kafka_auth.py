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


def test_an_authorizers_refusal_is_one_line_naming_what_and_whom(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from confluent_kafka import KafkaException

    from schemas.config import KafkaAccessRefused, access_refused

    topic = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "Broker: Topic authorization failed")
    denied = access_refused(topic, "worker", "writing to topic 'brainstream.events'")
    assert isinstance(denied, KafkaAccessRefused)
    assert one_line(denied) == (
        "Kafka refused principal 'worker' writing to topic 'brainstream.events' "
        "(TOPIC_AUTHORIZATION_FAILED): grant User:worker that ACL, or run as another principal "
        "(BRAINSTREAM_KAFKA_SASL_USERNAME)"
    )
    assert access_refused(KafkaError(KafkaError._TRANSPORT), "worker", "x") is None
    assert access_refused(None, "worker", "x") is None
    # raised bare by a client: the principal comes from the process's settings, and it is
    # not reported as refused credentials (they were accepted)
    monkeypatch.setenv("BRAINSTREAM_KAFKA_SASL_USERNAME", "sdk")
    group = KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED, "Broker: Group authorization failed")
    line = one_line(KafkaException(group))
    assert line is not None and line.startswith("Kafka refused principal 'sdk' a request")
    assert "credentials" not in line and "(GROUP_AUTHORIZATION_FAILED)" in line
    anonymous = access_refused(topic, None, "reading topic 't'")
    assert one_line(anonymous) == str(KafkaAccessRefused("sdk", "reading topic 't'", topic.name()))
