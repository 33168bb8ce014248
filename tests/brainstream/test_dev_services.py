"""`brainstream.dev` against real processes, in a dev dir of their own (never the shared one)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from brainstream import dev
from tests.fixtures.services import dev_dir_in

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dev_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with dev_dir_in(tmp_path_factory, "dev") as path:
        yield path


@pytest.fixture
def services(dev_dir: Path) -> dev.DevServices:
    return dev.up(dev_dir, log=_quiet)


def _quiet(_message: str) -> None:
    pass


def _pids(dev_dir: Path) -> list[int]:
    report = dev.status(dev_dir)
    return [_pid(_section(report, name)) for name in ("kafka", "postgres")]


def _pid(section: dict[str, object]) -> int:
    pid = section["pid"]
    assert isinstance(pid, int)
    return pid


def _section(report: dict[str, object], name: str) -> dict[str, object]:
    section = report[name]
    assert isinstance(section, dict)
    return section


def _gone(pid: int) -> bool:
    """No process with this pid, or only its zombie entry.

    A stopped service whose starter has exited was re-parented to PID 1, and on machines whose
    PID 1 does not reap orphans its exit status lingers as a zombie: it runs nothing.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return True
    return fields[0] == "Z"


def test_up_twice_is_harmless_and_keeps_the_ports(dev_dir: Path) -> None:
    first = dev.up(dev_dir, log=_quiet)
    pids = _pids(dev_dir)

    again = dev.up(dev_dir, log=_quiet)

    assert again == first
    assert first.kafka_bootstrap.startswith("127.0.0.1:")
    assert first.postgres_dsn.startswith("postgresql://brainstream:brainstream@127.0.0.1:")
    assert _pids(dev_dir) == pids


def test_status_reports_both_services_running(services: dev.DevServices) -> None:
    report = dev.status(services.dev_dir)

    kafka, postgres = _section(report, "kafka"), _section(report, "postgres")
    assert kafka["running"] is True
    assert postgres["running"] is True
    assert kafka["address"] == services.kafka_bootstrap
    assert Path(str(kafka["log"])).is_file()
    assert Path(str(postgres["log"])).is_file()


def test_a_message_goes_through_the_broker(services: dev.DevServices) -> None:
    topic = f"dev-smoke-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": services.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(
        timeout=30
    )
    producer = Producer({"bootstrap.servers": services.kafka_bootstrap})
    producer.produce(topic, key=b"user-1", value=b"hello")
    assert producer.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": services.kafka_bootstrap,
            "group.id": f"dev-smoke-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic])
        message = None
        for _ in range(60):
            message = consumer.poll(1.0)
            if message is not None:
                break
    finally:
        consumer.close()

    assert message is not None
    assert message.error() is None
    assert (message.key(), message.value()) == (b"user-1", b"hello")


def test_postgres_answers_as_the_brainstream_role(services: dev.DevServices) -> None:
    with psycopg.connect(services.postgres_dsn) as conn:
        row = conn.execute("SELECT 1, current_user, current_database()").fetchone()

    assert row == (1, "brainstream", "brainstream")


def test_stop_and_start_kafka_keep_the_port(services: dev.DevServices) -> None:
    old_pid = _pids(services.dev_dir)[0]

    dev.stop_kafka(services.dev_dir)
    assert _gone(old_pid)
    assert _section(dev.status(services.dev_dir), "kafka")["running"] is False
    dev.start_kafka(services.dev_dir, log=_quiet)

    assert dev.up(services.dev_dir, log=_quiet) == services
    assert _section(dev.status(services.dev_dir), "kafka")["running"] is True


def test_the_broker_inherits_none_of_the_callers_descriptors(
    services: dev.DevServices, tmp_path: Path
) -> None:
    # e.g. the fd of `flock LOCK make test`: a detached broker holding it would keep the lock
    # (or a CI step's pipe) open for its whole life.
    held = tmp_path / "held"
    fd = os.open(held, os.O_CREAT | os.O_RDWR)
    os.set_inheritable(fd, True)
    try:
        dev.stop_kafka(services.dev_dir)
        dev.start_kafka(services.dev_dir, log=_quiet)
        pid = _pids(services.dev_dir)[0]
        targets = {os.readlink(link) for link in Path(f"/proc/{pid}/fd").iterdir()}
    finally:
        os.close(fd)
    assert str(held) not in targets
    assert dev.up(services.dev_dir, log=_quiet) == services


def test_stop_and_start_postgres_keep_port_and_data(services: dev.DevServices) -> None:
    with psycopg.connect(services.postgres_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS dev_survivor (id int)")

    dev.stop_postgres(services.dev_dir, log=_quiet)
    assert _section(dev.status(services.dev_dir), "postgres")["running"] is False
    dev.start_postgres(services.dev_dir, log=_quiet)

    with psycopg.connect(services.postgres_dsn) as conn:
        assert conn.execute("SELECT to_regclass('dev_survivor') IS NOT NULL").fetchone() == (True,)


def test_down_leaves_no_process_behind(services: dev.DevServices) -> None:
    pids = _pids(services.dev_dir)

    dev.down(services.dev_dir, log=_quiet)
    dev.down(services.dev_dir, log=_quiet)  # harmless when nothing runs

    assert all(_gone(pid) for pid in pids)
    report = dev.status(services.dev_dir)
    assert not _section(report, "kafka")["running"]
    assert not _section(report, "postgres")["running"]
    assert dev.up(services.dev_dir, log=_quiet) == services  # restarts on the same ports
