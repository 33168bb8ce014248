"""Nothing listens beyond loopback by default: every server of a running pipeline (sink
metrics, worker web, dashboard, export API, the SDK's metrics, Kafka and Postgres) is started
with its default host, and the listening TCP sockets each process holds are read from /proc."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from brainstream import dev
from schemas.access import is_loopback
from schemas.config import TopicSettings
from tests.brainstream.dashboard.pipeline import free_port, unique
from tests.fixtures.services import TEST_DEV_DIR, PgSchema, Services

pytestmark = pytest.mark.integration

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's st column


def _address(hex_address: str) -> tuple[str, int]:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    # /proc/net/tcp{,6} print each 32-bit word of the address in host (little-endian) order
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words)), int(port, 16)


def listening(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket ``pid`` holds open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == _LISTEN and cols[9] in inodes:
                found.append(_address(cols[1]))
    return found


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "brainstream.cli", *args], env=env, stdout=out, stderr=out
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_no_server_listens_beyond_loopback_by_default(
    services: Services, topics: TopicSettings, pg_schema: PgSchema, tmp_path: Path
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.endswith("_HOST")},
        "BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS": services.kafka.bootstrap_servers,
        "BRAINSTREAM_POSTGRES_DSN": services.postgres_dsn,
        "BRAINSTREAM_POSTGRES_SCHEMA": pg_schema.name,
        "BRAINSTREAM_TOPIC_EVENTS": topics.events,
        "BRAINSTREAM_TOPIC_DLQ": topics.dlq,
        "BRAINSTREAM_TOPIC_ERASURES": topics.erasures,
        "BRAINSTREAM_TOPIC_EVENTS_PARTITIONS": str(topics.events_partitions),
        "BRAINSTREAM_SINK_GROUP_ID": unique("sink"),
        "BRAINSTREAM_WORKER_GROUP_ID": unique("worker"),
        "BRAINSTREAM_WORKER_DATA_DIR": str(tmp_path / "worker"),
        "BRAINSTREAM_EXPORT_OUTPUT_DIR": str(tmp_path / "exports"),
    }
    env.pop("BRAINSTREAM_API_TOKEN", None)
    ports = {name: free_port() for name in ("sink", "worker", "dashboard", "export", "sdk")}
    env["BRAINSTREAM_WORKER_WEB_PORT"] = str(ports["worker"])
    commands = {
        "sink": ["sink", "--metrics-port", str(ports["sink"])],
        "worker": ["worker"],
        "dashboard": ["dashboard", "--port", str(ports["dashboard"])],
        "export": ["export", "serve", "--port", str(ports["export"])],
        "sdk": [
            "produce",
            "--rate",
            "50",
            "--duration",
            "120",
            "--metrics-port",
            str(ports["sdk"]),
        ],
    }
    with ExitStack() as stack:
        procs = {
            name: stack.enter_context(_process(args, env, tmp_path / f"{name}.log"))
            for name, args in commands.items()
        }
        deadline = time.monotonic() + 90
        while not all(_answers(port) for port in ports.values()):
            for name, proc in procs.items():
                log = (tmp_path / f"{name}.log").read_text(errors="replace")[-2000:]
                assert proc.poll() is None, f"{name} exited:\n{log}"
            assert time.monotonic() < deadline, f"not every server answers: {ports}"
            time.sleep(0.5)
        sockets = {name: listening(proc.pid) for name, proc in procs.items()}

    state = dev.status(TEST_DEV_DIR)
    for service in ("kafka", "postgres"):
        info = state[service]
        assert isinstance(info, dict)
        if services.dev is not None:  # the project started them: they are part of the demo
            assert isinstance(info["pid"], int)
            sockets[service] = listening(info["pid"])
    for name, port in ports.items():
        assert port in {p for _, p in sockets[name]}, (name, sockets[name])
    beyond = {
        name: [(a, p) for a, p in found if not is_loopback(a)] for name, found in sockets.items()
    }
    assert beyond == {name: [] for name in sockets}, beyond
    assert all(sockets.values()), sockets
