"""`brainstream dev up --brokers 3` and `--secure` against real processes, each in a dev dir of
its own: replication on three KRaft nodes, and the secure profile's TLS, SCRAM, ACLs and
least-privilege Postgres roles."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AclOperation, AdminClient, ConfigResource
from pydantic import SecretStr

from brainstream import dev
from brainstream.dev import kafka, secure
from brainstream.topic_admin import ensure_topics
from producers import Tracker, TrackingError
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
    # the worker reads the accepted stream, never the raw events: it may not even describe them
    seen = AdminClient(conf("worker")).list_topics(topics.events, timeout=10).topics
    assert seen[topics.events].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
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
        "worker": ("SELECT count(*) FROM agg_user_days", "DELETE FROM analytics_events"),
        "eraser": ("SELECT count(*) FROM erased_users", "TRUNCATE agg_user_days"),
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

    # Each process refuses a wrong password with a clear error instead of waiting.
    _refused_processes(dev_dir, boot, topics, owner)
    # ...and an ACL or a Postgres grant it lacks, with one line naming what and whom.
    _refused_access(dev_dir, boot, topics, owner, admin)
    # The pipeline over SASL_SSL, each process as its own principal and Postgres role.
    _secure_pipeline(dev_dir, boot, topics, owner)
    for env in (dev_dir / "secure" / "env").iterdir():
        assert stat.S_IMODE(env.stat().st_mode) == 0o600
    # the printed recipe `set -a; . <file>` reads each value whole (a DSN has spaces)
    sourced = subprocess.run(
        ["bash", "-c", 'set -a; . "$1"; printf %s "$BRAINSTREAM_POSTGRES_DSN"', "-",
         str(secure.env_file(dev_dir, "eraser"))],
        capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]},
    )  # fmt: skip
    assert sourced.stdout == secure.postgres_dsn(dev_dir, owner, "eraser")
    _no_secret_in_any_log(dev_dir)


def _process_env(
    dev_dir: Path, boot: str, topics: TopicSettings, owner: str, kind: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRAINSTREAM_")}
    env.update(
        BRAINSTREAM_TOPIC_EVENTS=topics.events,
        BRAINSTREAM_TOPIC_DLQ=topics.dlq,
        BRAINSTREAM_TOPIC_ACCEPTED=topics.accepted,
        BRAINSTREAM_TOPIC_ERASURES=topics.erasures,
        BRAINSTREAM_TOPIC_EVENTS_PARTITIONS=str(topics.events_partitions),
        BRAINSTREAM_WORKER_DATA_DIR=str(dev_dir / "faust"),
        BRAINSTREAM_WORKER_WEB_PORT=str(_free_port()),
        BRAINSTREAM_EXPORT_OUTPUT_DIR=str(dev_dir / "exports"),
        **secure.client_env(dev_dir, boot, kind),
    )
    if kind in secure.PG_ROLES:
        env["BRAINSTREAM_POSTGRES_DSN"] = secure.postgres_dsn(dev_dir, owner, kind)
    return env


def _secure_pipeline(dev_dir: Path, boot: str, topics: TopicSettings, owner: str) -> None:
    """SDK -> sink + worker -> aggregates verify 0, then export run, each as its principal."""
    from streams.reference import verify

    events = 3_000
    logs = {kind: (dev_dir / f"{kind}.log").open("ab") for kind in ("sink", "worker")}
    procs = {
        kind: subprocess.Popen(
            [sys.executable, "-m", "brainstream.cli", kind],
            env=_process_env(dev_dir, boot, topics, owner, kind),
            stdout=logs[kind],
            stderr=subprocess.STDOUT,
        )
        for kind in logs
    }
    try:
        produced = subprocess.run(  # the SDK as the sdk principal, which creates no topic
            [sys.executable, "-m", "brainstream.cli", "produce", "--rate", "1000",
             "--duration", str(events / 1000), "--seed", "7"],
            env=_process_env(dev_dir, boot, topics, owner, "sdk"),
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert produced.returncode == 0, produced.stdout + produced.stderr
        summary = produced.stdout + produced.stderr
        assert re.search(rf"delivered\s+│\s+{events}\s", summary), summary
        deadline = time.monotonic() + 120
        while True:
            with psycopg.connect(owner, autocommit=True) as conn:
                (stored,) = conn.execute("SELECT count(*) FROM analytics_events").fetchone() or (0,)
                report = verify(conn)
            if stored == events and report.ok:
                break
            for kind, proc in procs.items():
                assert proc.poll() is None, (
                    f"the {kind} stopped: {(dev_dir / f'{kind}.log').read_text()[-3000:]}"
                )
            assert time.monotonic() < deadline, (stored, report.differences)
            time.sleep(1)
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for out in logs.values():
            out.close()
    exported = subprocess.run(
        [sys.executable, "-m", "brainstream.cli", "export", "run", "secure", "--no-progress",
         "--format", "jsonl"],
        env=_process_env(dev_dir, boot, topics, owner, "export"),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stdout + exported.stderr
    summary = exported.stdout + exported.stderr
    assert re.search(rf"\b{events}\s+events\s+exported", summary), summary


def _refused_processes(dev_dir: Path, boot: str, topics: TopicSettings, owner: str) -> None:
    commands = {
        "sink": ["sink"],
        "worker": ["worker"],
        "sdk": ["produce", "--rate", "10", "--duration", "1"],
        "eraser": ["erase-user", "user-refused"],
        "export": ["export", "run", "refused", "--no-progress"],
    }
    started, running = time.monotonic(), {}
    for kind, args in commands.items():
        env = _process_env(dev_dir, boot, topics, owner, kind)
        env["BRAINSTREAM_KAFKA_SASL_PASSWORD"] = "wrong-" + uuid.uuid4().hex
        running[kind] = subprocess.Popen(
            [sys.executable, "-m", "brainstream.cli", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    for kind, proc in running.items():
        out, err = proc.communicate(timeout=60)
        # one line naming the principal and the settings, exit 2 (an operator's error)
        assert proc.returncode == 2, f"{kind} exited {proc.returncode}:\n{(out + err)[-3000:]}"
        line = err.strip().splitlines()[-1]
        assert line.startswith(f"error: Kafka refused the credentials of principal '{kind}'")
        assert "BRAINSTREAM_KAFKA_SASL_PASSWORD" in line, line
        assert "wrong-" not in out + err  # the password is never echoed
    assert time.monotonic() - started < 30  # at once, not librdkafka's 30 s metadata timeout
    with psycopg.connect(owner) as conn:  # the eraser stopped before touching the database
        assert conn.execute("SELECT count(*) FROM erased_users").fetchone() == (0,)

    # The SDK never raises into the host: it reports the refusal and keeps the events.
    problems: list[TrackingError] = []
    sdk = secure.kafka_settings(dev_dir, boot, "sdk").model_copy(
        update={"sasl_password": SecretStr("wrong")}
    )
    with _captured_logs() as records:
        tracker = Tracker(
            sdk,
            topic=topics.events,
            source="pw",
            spool_dir=dev_dir / "spool",
            on_error=problems.append,
        )
        tracker.track("page_view", "user-1", path="/x")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _refusals(records):
            time.sleep(0.2)
        stats = tracker.close(5)
    assert _refusals(records), [r.getMessage() for r in records]
    assert stats.tracked == 1 and stats.dropped == 0 and stats.delivered == 0


def _refusal(
    dev_dir: Path,
    boot: str,
    topics: TopicSettings,
    owner: str,
    kind: str,
    args: list[str],
    **settings: str,
) -> str:
    """Run ``brainstream <args>`` as principal ``kind`` (``settings`` on top, e.g.
    ``POSTGRES_DSN``) and return its one error line: it must exit 2, at once, without a
    traceback and with nothing else on stderr but librdkafka's own log lines."""
    env = _process_env(dev_dir, boot, topics, owner, kind)
    env.update({f"BRAINSTREAM_{k}": v for k, v in settings.items()})
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "brainstream.cli", *args],
        env=env, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    said = done.stdout + done.stderr
    assert done.returncode == 2, f"{args} as {kind} exited {done.returncode}:\n{said[-3000:]}"
    assert "Traceback" not in said, said[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    others = [line for line in done.stderr.splitlines() if line and line != errors[0]]
    # librdkafka's own log lines ("%4|…") and the process's log lines, nothing else
    assert all(re.match(r"%\d\||\d{4}-\d\d-\d\d ", line) for line in others), others
    assert time.monotonic() - started < 60  # refused, not waiting out a timeout
    return errors[0]


def _refused_access(
    dev_dir: Path, boot: str, topics: TopicSettings, owner: str, admin: AdminClient
) -> None:
    """An authorizer's refusal (TopicAuthorizationFailed and kin) and a missing Postgres
    grant end each real process with one line naming what was refused, to whom, and the
    fix, instead of a hang, a warning at every poll or a traceback."""
    fix = "run as another principal (BRAINSTREAM_KAFKA_SASL_USERNAME)"
    # the worker principal producing to the events topic
    line = _refusal(dev_dir, boot, topics, owner, "worker", ["produce", "--rate", "50",
                    "--duration", "20"], SDK_SPOOL_DIR=str(dev_dir / "refused-spool"))  # fmt: skip
    assert line.startswith(
        f"error: Kafka refused principal 'worker' writing to topic '{topics.events}' ("
    ), line
    assert re.search(r"\((TOPIC|CLUSTER)_AUTHORIZATION_FAILED\)", line) and fix in line, line

    # the sdk principal running the worker: aiokafka only logs the refusal and waits
    worker_dsn = secure.postgres_dsn(dev_dir, owner, "worker")
    line = _refusal(dev_dir, boot, topics, owner, "sdk", ["worker"], POSTGRES_DSN=worker_dsn)
    assert line.startswith(
        f"error: Kafka refused principal 'sdk' reading topic '{topics.accepted}' "
        "(TOPIC_AUTHORIZATION_FAILED)"
    ), line
    # the sdk principal running the sink, which reads the events topic: as provisioned, the
    # first thing refused is the accepted stream the sink also writes
    sink_dsn = secure.postgres_dsn(dev_dir, owner, "sink")
    line = _refusal(dev_dir, boot, topics, owner, "sdk", ["sink"], POSTGRES_DSN=sink_dsn)
    assert line.startswith("error: Kafka refused principal 'sdk' describing topic"), line
    assert "(TOPIC_AUTHORIZATION_FAILED)" in line and "User:sdk" in line, line
    # granted all the sink needs but Read on the events topic: the fetch is what is refused
    group = "brainstream-sink-refused"
    extra = [
        b for b in secure.service_acls(topics, {"sink": group})["sink"]
        if not (b.name == topics.events and b.operation == AclOperation.READ)
    ]  # fmt: skip
    secure.grant(admin, [_as_principal(b, "sdk") for b in extra])
    line = _refusal(dev_dir, boot, topics, owner, "sdk", ["sink"], POSTGRES_DSN=sink_dsn,
                    SINK_GROUP_ID=group)  # fmt: skip
    assert line == (
        f"error: Kafka refused principal 'sdk' reading topic '{topics.events}' in consumer "
        f"group '{group}' (TOPIC_AUTHORIZATION_FAILED): grant User:sdk that ACL, or {fix}"
    ), line
    # the export as sdk (the events topic, then the erasures topic it may not see)
    line = _refusal(dev_dir, boot, topics, owner, "sdk",
                    ["export", "run", "refused", "--no-progress"],
                    EXPORT_SOURCE="log", POSTGRES_DSN=owner)  # fmt: skip
    assert line.startswith(
        f"error: Kafka refused principal 'sdk' describing topic '{topics.erasures}'"
    ), line

    # the sink's Postgres role lacking a privilege: one line naming the role and the grant
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("REVOKE INSERT ON analytics_events FROM brainstream_sink")
    try:
        line = _refusal(dev_dir, boot, topics, owner, "sink", ["sink"],
                        SINK_GROUP_ID=f"{group}-pg")  # fmt: skip
    finally:
        with psycopg.connect(owner, autocommit=True) as conn:
            conn.execute("GRANT INSERT ON analytics_events TO brainstream_sink")
    assert line == (
        "error: Postgres role 'bs_sink' lacks INSERT ON analytics_events, which the sink "
        "needs: GRANT INSERT ON analytics_events TO bs_sink (or to brainstream_sink, the group "
        "role the migrations grant it to), or check BRAINSTREAM_POSTGRES_DSN"
    ), line


def _as_principal(binding: Any, principal: str) -> Any:
    from confluent_kafka.admin import AclBinding

    return AclBinding(
        binding.restype, binding.name, binding.resource_pattern_type, f"User:{principal}",
        binding.host, binding.operation, binding.permission_type,
    )  # fmt: skip


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
            if error is not None and error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
                continue  # a principal without this group: its fetch answers for the topic
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


def _refusals(records: list[logging.LogRecord]) -> list[str]:
    return [
        r.getMessage()
        for r in records
        if "refused the credentials of principal 'sdk'" in r.getMessage()
        and "BRAINSTREAM_KAFKA_SASL_PASSWORD" in r.getMessage()
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _captured_logs() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler, logger = Keep(), logging.getLogger("brainstream.producers")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
