"""`brainstream dev up --brokers 3` and `--secure` against real processes, each in a dev dir of
its own: replication on three KRaft nodes, and the secure profile's TLS, SCRAM, ACLs and
least-privilege Postgres roles."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from brainstream import dev
from brainstream.dev import kafka, secure
from brainstream.topic_admin import ensure_topics
from schemas.config import TopicSettings
from tests.fixtures.services import dev_dir_in

pytestmark = pytest.mark.integration


def _quiet(_message: str) -> None:
    pass


@pytest.fixture
def dev_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with dev_dir_in(tmp_path_factory, "cluster") as path:
        yield path


def _topics() -> TopicSettings:
    prefix = f"c{uuid.uuid4().hex[:10]}"
    return TopicSettings(
        events=f"{prefix}.events",
        dlq=f"{prefix}.events.dlq",
        accepted=f"{prefix}.events.accepted",
        erasures=f"{prefix}.erasures",
        events_partitions=3,
    )


def _deliver(conf: dict[str, Any], topic: str, count: int) -> list[KafkaError | None]:
    outcomes: list[KafkaError | None] = []
    producer = Producer({**conf, "acks": "all", "message.timeout.ms": 20_000})
    for i in range(count):
        producer.produce(topic, str(i).encode(), on_delivery=lambda e, _m: outcomes.append(e))
    producer.flush(30)
    return outcomes


def test_three_nodes_replicate_and_survive_one_killed(dev_dir: Path) -> None:
    services = dev.up(dev_dir, log=_quiet, brokers=3)
    assert services.brokers == 3 and len(services.kafka_bootstrap.split(",")) == 3
    report = dev.status(dev_dir)["kafka"]
    assert isinstance(report, dict)
    nodes = report["nodes"]
    assert [n["node_id"] for n in nodes] == [1, 2, 3]
    assert all(n["running"] and n["startup_seconds"] > 0 for n in nodes), nodes
    assert report["replication"] == {"factor": 3, "min_insync": 2}
    with pytest.raises(dev.ShapeMismatch):
        dev.up(dev_dir, log=_quiet, brokers=1)

    conf = {"bootstrap.servers": services.kafka_bootstrap}
    topics = _topics()
    ensure_topics(services_kafka(services), topics)  # no replication factor: the cluster's
    admin = AdminClient(conf)
    partitions = admin.list_topics(topics.events, timeout=10).topics[topics.events].partitions
    assert {len(p.replicas) for p in partitions.values()} == {3}
    resource = ConfigResource("topic", topics.events)
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["min.insync.replicas"].value == "2"

    victim = dev.kafka_nodes(dev_dir)[1]
    pid = kafka.running_pid(victim)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # one of three down: acks=all still succeeds (ISR 2 >= 2)
    outcomes = _deliver({**conf, "enable.idempotence": True}, topics.events, 500)
    assert outcomes == [None] * 500
    assert dev.start_kafka(dev_dir, log=_quiet, node_id=2).keys() == {2}
    assert all(n["running"] for n in _nodes(dev_dir))


def services_kafka(services: dev.DevServices) -> Any:
    from schemas.config import KafkaSettings

    return KafkaSettings(bootstrap_servers=services.kafka_bootstrap)


def _nodes(dev_dir: Path) -> list[dict[str, Any]]:
    report = dev.status(dev_dir)["kafka"]
    assert isinstance(report, dict)
    nodes: list[dict[str, Any]] = report["nodes"]
    return nodes


def test_secure_profile_tls_scram_acls_and_roles(dev_dir: Path) -> None:
    services = dev.up(dev_dir, log=_quiet, secure_profile=True)
    boot = services.kafka_bootstrap
    topics = _topics()

    def conf(principal: str) -> dict[str, Any]:
        return secure.kafka_settings(dev_dir, boot, principal).librdkafka()

    ensure_topics(secure.kafka_settings(dev_dir, boot, secure.ADMIN), topics)
    admin = AdminClient(conf(secure.ADMIN))
    secure.grant(admin, (b for acl in secure.service_acls(topics).values() for b in acl))

    # The plaintext port is gone: only SASL_SSL answers on the client port.
    assert not kafka.answers(boot, {"security.protocol": "PLAINTEXT", "socket.timeout.ms": 3000})

    assert _deliver(conf("sdk"), topics.events, 20) == [None] * 20
    refused = _deliver(conf("worker"), topics.events, 1)
    assert [e.code() if e else None for e in refused] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    assert _read(conf("sdk"), topics.events) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert _read(conf("export"), topics.events) is None  # read-only access works
    assert _deliver(conf("export"), topics.events, 1)[0] is not None

    # A wrong password is an authentication error, reported at once, not a silent hang.
    errors: list[KafkaError] = []
    wrong = {**conf("sdk"), "sasl.password": "wrong", "error_cb": errors.append}
    probe = Producer(wrong)
    deadline = time.monotonic() + 20
    while not errors and time.monotonic() < deadline:
        probe.poll(0.5)
    assert errors and errors[0].code() == KafkaError._AUTHENTICATION, errors
    assert "SCRAM" in errors[0].str() or "uthentication" in errors[0].str()

    owner = services.postgres_dsn
    probes = {
        "sink": ("SELECT count(*) FROM analytics_events", "DELETE FROM analytics_events"),
        "worker": ("SELECT count(*) FROM agg_user_totals", "DELETE FROM analytics_events"),
        "eraser": ("SELECT count(*) FROM erased_users", "TRUNCATE agg_user_totals"),
        "dashboard": (
            "SELECT count(*) FROM agg_type_buckets",
            "INSERT INTO erased_users (user_id) VALUES ('x')",
        ),
    }
    from brainstream.migrate import migrate

    migrate(owner, "public")
    for kind, (allowed, forbidden) in probes.items():
        with psycopg.connect(secure.postgres_dsn(dev_dir, owner, kind), autocommit=True) as conn:
            assert conn.execute(allowed).fetchone() == (0,), kind
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(forbidden)
    bad = secure.postgres_dsn(dev_dir, owner, "sink").replace(
        secure.credentials(dev_dir).postgres["sink"], "wrong"
    )
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(bad, connect_timeout=5).close()

    for env in (dev_dir / "secure" / "env").iterdir():
        assert stat.S_IMODE(env.stat().st_mode) == 0o600
    _no_secret_in_any_log(dev_dir)


def _read(conf: dict[str, Any], topic: str) -> int | None:
    """The error code of reading ``topic`` partition 0 from the start (assigned, no group
    offsets), ``None`` when a record was read."""
    consumer = Consumer(
        {**conf, "group.id": "brainstream-export-probe", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            return None if error is None else int(error.code())
        raise AssertionError(f"nothing read from {topic} within 15 s")
    finally:
        consumer.close()


def _no_secret_in_any_log(dev_dir: Path) -> None:
    creds = json.loads((dev_dir / "secure" / "credentials.json").read_text())
    secrets_ = [v for group in creds.values() for v in group.values()]
    logs = [
        p
        for p in dev_dir.rglob("*")
        if p.is_file() and (p.suffix in (".log", ".out") or "logs" in p.parts)
    ]
    assert logs, "no log files found"
    for path in logs:
        text = path.read_bytes()
        for secret_value in secrets_:
            assert secret_value.encode() not in text, f"a secret is in {path}"
