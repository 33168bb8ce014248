"""Real Kafka and Postgres for development, started on this machine without Docker.

``up()`` starts a single-node Kafka (KRaft, from Maven Central jars on the local JVM) and a
PostgreSQL cluster (from the machine's binaries), detached so they outlive the caller;
``down()`` stops both. Topics and tables are the caller's business.

What is kept where:

- cache dir (``default_cache_dir()``: ``$BRAINSTREAM_CACHE_DIR``, else
  ``$XDG_CACHE_HOME/brainstream``, else ``~/.cache/brainstream``), shared by every dev dir:
  ``kafka-<version>/libs/``, the broker's jars, resolved once by Maven (whose own download
  cache is ``~/.m2``). Delete it to force a fresh resolution.
- dev dir (``default_dev_dir()``: ``$BRAINSTREAM_DEV_DIR``, else ``./.brainstream``):
  ``state.json`` (ports, chosen once so restarts keep them), ``kafka/`` (config, data, logs,
  pid) and ``postgres/`` (cluster and log). ``down()`` then deleting it resets all data.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from brainstream.dev import kafka, postgres
from brainstream.dev.kafka import KafkaServiceError
from brainstream.dev.postgres import PostgresServiceError

__all__ = [
    "DevServices",
    "KafkaServiceError",
    "PostgresServiceError",
    "default_cache_dir",
    "default_dev_dir",
    "down",
    "start_kafka",
    "start_postgres",
    "status",
    "stop_kafka",
    "stop_postgres",
    "up",
]

Log = Callable[[str], None]


@dataclass(frozen=True)
class DevServices:
    kafka_bootstrap: str
    postgres_dsn: str
    dev_dir: Path


@dataclass(frozen=True)
class _State:
    kafka_port: int
    kafka_controller_port: int
    postgres_port: int
    kafka_libs: str | None = None

    def kafka_node(self, dev_dir: Path) -> kafka.KafkaNode:
        return kafka.KafkaNode(dev_dir / "kafka", self.kafka_port, self.kafka_controller_port)

    def postgres_node(self, dev_dir: Path) -> postgres.PostgresNode:
        return postgres.PostgresNode(dev_dir / "postgres", self.postgres_port)


def default_dev_dir() -> Path:
    return Path(os.environ.get("BRAINSTREAM_DEV_DIR") or Path.cwd() / ".brainstream")


def default_cache_dir() -> Path:
    if explicit := os.environ.get("BRAINSTREAM_CACHE_DIR"):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "brainstream"


def up(
    dev_dir: Path | None = None, cache_dir: Path | None = None, *, log: Log = print
) -> DevServices:
    """Start whatever is not running yet and wait until both services answer."""
    with _session(dev_dir) as (root, state):
        node = state.kafka_node(root)
        spawned = None if kafka.running_pid(node) else _spawn_kafka(root, state, cache_dir, log)
        _start_postgres(root, state, log)
        if spawned is not None:  # Kafka warmed up while Postgres started
            kafka.wait_ready(node, spawned)
        elif not kafka.answers(node.bootstrap):
            raise KafkaServiceError(f"Kafka runs but does not answer; see {node.log_file}")
        return DevServices(node.bootstrap, state.postgres_node(root).dsn, root)


def down(dev_dir: Path | None = None, *, log: Log = print) -> None:
    """Stop both services; harmless when nothing runs."""
    if _load_state(_root(dev_dir)) is None:
        return
    with _session(dev_dir) as (root, state):
        log(f"stopping Kafka and Postgres of {root}")
        kafka.stop(state.kafka_node(root))
        postgres.stop(state.postgres_node(root), log)


def status(dev_dir: Path | None = None) -> dict[str, object]:
    root = _root(dev_dir)
    state = _load_state(root)
    if state is None:
        return {"dev_dir": str(root), "kafka": {"running": False}, "postgres": {"running": False}}
    knode, pnode = state.kafka_node(root), state.postgres_node(root)
    kafka_pid, postgres_pid = kafka.running_pid(knode), postgres.pid(pnode)
    return {
        "dev_dir": str(root),
        "kafka": {
            "running": kafka_pid is not None and kafka.answers(knode.bootstrap),
            "pid": kafka_pid,
            "address": knode.bootstrap,
            "log": str(knode.log_file),
        },
        "postgres": {
            "running": postgres_pid is not None and postgres.answers(pnode),
            "pid": postgres_pid,
            "address": f"127.0.0.1:{pnode.port}",
            "dsn": pnode.dsn,
            "log": str(pnode.log_file),
        },
    }


def stop_kafka(dev_dir: Path | None = None) -> None:
    if _load_state(_root(dev_dir)) is None:
        return
    with _session(dev_dir) as (root, state):
        kafka.stop(state.kafka_node(root))


def start_kafka(dev_dir: Path | None = None, *, log: Log = print) -> None:
    """Start the broker again on the same ports and data, and wait until it answers."""
    with _session(dev_dir) as (root, state):
        node = state.kafka_node(root)
        if kafka.running_pid(node) is None:
            kafka.wait_ready(node, _spawn_kafka(root, state, None, log))


def stop_postgres(dev_dir: Path | None = None, *, log: Log = print) -> None:
    if _load_state(_root(dev_dir)) is None:
        return
    with _session(dev_dir) as (root, state):
        postgres.stop(state.postgres_node(root), log)


def start_postgres(dev_dir: Path | None = None, *, log: Log = print) -> None:
    with _session(dev_dir) as (root, state):
        _start_postgres(root, state, log)


def _spawn_kafka(root: Path, state: _State, cache_dir: Path | None, log: Log) -> int:
    libs = Path(state.kafka_libs) if state.kafka_libs and cache_dir is None else None
    if libs is None or not kafka.is_complete(libs):
        libs = kafka.resolve_jars(cache_dir or default_cache_dir(), log)
        _save_state(root, replace(state, kafka_libs=str(libs)))
    node = state.kafka_node(root)
    log(f"starting Kafka on {node.bootstrap} (log: {node.log_file})")
    return kafka.spawn(node, libs)


def _start_postgres(root: Path, state: _State, log: Log) -> None:
    node = state.postgres_node(root)
    if postgres.pid(node) is None:
        postgres.start(node, log)
    elif not postgres.answers(node):
        raise PostgresServiceError(f"Postgres runs but does not answer; see {node.log_file}")


@contextmanager
def _session(dev_dir: Path | None) -> Iterator[tuple[Path, _State]]:
    """The dev dir and its state, under an exclusive lock (one caller starts or stops at once)."""
    root = _root(dev_dir)
    root.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        lock = stack.enter_context((root / ".lock").open("w"))
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = _load_state(root)
        if state is None:
            kafka_port, controller_port, postgres_port = _free_ports(3)
            state = _State(kafka_port, controller_port, postgres_port)
            _save_state(root, state)
        yield root, state


def _root(dev_dir: Path | None) -> Path:
    return (dev_dir or default_dev_dir()).resolve()


def _load_state(root: Path) -> _State | None:
    try:
        return _State(**json.loads((root / "state.json").read_text()))
    except FileNotFoundError:
        return None


def _save_state(root: Path, state: _State) -> None:
    staged = root / "state.json.tmp"
    staged.write_text(json.dumps(asdict(state), indent=2) + "\n")
    staged.replace(root / "state.json")


def _free_ports(count: int) -> list[int]:
    """Free ports below Linux's ephemeral range (32768-60999): while a service is down for a
    fault test, no client's outgoing socket can then take its port."""
    with ExitStack() as stack:  # hold every probe until all are found, so the ports differ
        ports: list[int] = []
        for port in random.sample(range(20000, 32768), 500):
            probe = stack.enter_context(socket.socket())
            with suppress(OSError):
                probe.bind(("127.0.0.1", port))
                ports.append(port)
                if len(ports) == count:
                    return ports
    raise OSError(f"no {count} free ports on 127.0.0.1 between 20000 and 32767")
