"""Real Kafka and Postgres for development, started on this machine without Docker.

``up()`` starts Kafka (KRaft, from Maven Central jars on the local JVM: one node by default,
``brokers=3`` for a replicated cluster) and a PostgreSQL cluster (from the machine's binaries),
detached so they outlive the caller; ``down()`` stops both. ``secure=True`` makes the secure
profile (:mod:`brainstream.dev.secure`: TLS, SCRAM-SHA-512, ACLs, least-privilege Postgres
roles). The shape (brokers, secure) is chosen when a dev dir is first started and kept.
Topics and tables are the caller's business.

What is kept where:

- cache dir (``default_cache_dir()``: ``$BRAINSTREAM_CACHE_DIR``, else
  ``$XDG_CACHE_HOME/brainstream``, else ``~/.cache/brainstream``), shared by every dev dir:
  ``kafka-<version>/libs/``, the broker's jars, resolved once by Maven (whose own download
  cache is ``~/.m2``). Delete it to force a fresh resolution.
- dev dir (``default_dev_dir()``: ``$BRAINSTREAM_DEV_DIR``, else ``./.brainstream``):
  ``state.json`` (ports, chosen once so restarts keep them), ``kafka/`` (node 1: config, data,
  logs, pid), ``kafka-2/`` and ``kafka-3/`` (the other nodes of a 3-broker cluster),
  ``postgres/`` (cluster and log) and ``secure/`` (certificates and credentials, ``0700``).
  ``down()`` then deleting it resets all data.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from brainstream.dev import kafka, postgres, secure
from brainstream.dev.kafka import KafkaServiceError
from brainstream.dev.postgres import PostgresServiceError
from schemas.errors import BrainstreamError

__all__ = [
    "DevServices",
    "KafkaServiceError",
    "PostgresServiceError",
    "ShapeMismatch",
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


class ShapeMismatch(BrainstreamError, RuntimeError):
    """``up`` asked for another cluster shape than the dev dir was created with."""


@dataclass(frozen=True)
class DevServices:
    kafka_bootstrap: str
    postgres_dsn: str
    """The owner's DSN (the secure profile's service roles are in ``secure``)."""
    dev_dir: Path
    brokers: int = 1
    secure: bool = False


@dataclass(frozen=True)
class _State:
    kafka_port: int
    kafka_controller_port: int
    postgres_port: int
    kafka_libs: str | None = None
    kafka_extra: list[list[int]] = field(default_factory=list)
    """[port, controller port] of nodes 2, 3, … of a multi-node cluster."""
    kafka_internal_ports: list[int] = field(default_factory=list)
    """Inter-broker (mutual TLS) listener port of each node, secure profile only."""
    kafka_cluster_id: str | None = None
    secure: bool = False

    @property
    def brokers(self) -> int:
        return 1 + len(self.kafka_extra)

    def kafka_nodes(self, dev_dir: Path) -> list[kafka.KafkaNode]:
        ports = [[self.kafka_port, self.kafka_controller_port], *self.kafka_extra]
        voters = tuple((i + 1, c) for i, (_, c) in enumerate(ports)) if len(ports) > 1 else ()
        nodes = []
        for i, (port, controller) in enumerate(ports):
            home = dev_dir / ("kafka" if i == 0 else f"kafka-{i + 1}")
            security = None
            if self.secure:
                certs = secure.certificates(dev_dir)
                security = kafka.Security(
                    self.kafka_internal_ports[i], certs.ca, certs.broker_keystore
                )
            nodes.append(kafka.KafkaNode(home, port, controller, i + 1, voters, security))
        return nodes

    def kafka_node(self, dev_dir: Path) -> kafka.KafkaNode:
        return self.kafka_nodes(dev_dir)[0]

    def bootstrap(self, dev_dir: Path) -> str:
        return ",".join(node.bootstrap for node in self.kafka_nodes(dev_dir))

    def admin_conf(self, dev_dir: Path) -> dict[str, Any]:
        """Client settings of the nodes' own principal (none on a plaintext cluster)."""
        return secure.node_client_conf(dev_dir) if self.secure else {}

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
    dev_dir: Path | None = None,
    cache_dir: Path | None = None,
    *,
    log: Log = print,
    brokers: int | None = None,
    secure_profile: bool | None = None,
) -> DevServices:
    """Start whatever is not running yet and wait until every node and Postgres answer.

    ``brokers`` (1 or 3) and ``secure_profile`` shape a new dev dir; ``None`` keeps the shape
    it has (one plaintext node for a new one). Raises :class:`ShapeMismatch` when an existing
    dev dir was made with another shape (``down``, delete it, then ``up`` again)."""
    if brokers not in (None, 1, 3):
        raise ValueError(f"brokers must be 1 or 3, not {brokers}")
    with _session(dev_dir, brokers, secure_profile) as (root, state):
        if state.secure:
            secure.certificates(root, create=True)
        nodes = state.kafka_nodes(root)
        spawned: dict[int, tuple[int, float]] = {}
        for i, node in enumerate(nodes):
            if kafka.running_pid(node) is None:
                state = _with_libs(root, state, cache_dir, log)
                spawned[i] = (_spawn_node(root, state, node, log), time.monotonic())
        _start_postgres(root, state, log)
        conf = state.admin_conf(root)
        for i, node in enumerate(nodes):  # Kafka warmed up while Postgres started
            if i in spawned:
                pid, since = spawned[i]
                seconds = kafka.wait_ready(node, pid, conf=conf, since=since)
                log(f"Kafka node {node.node_id} answers on {node.bootstrap} after {seconds:.1f} s")
            elif not kafka.answers(node.admin_bootstrap, conf):
                raise KafkaServiceError(f"Kafka runs but does not answer; see {node.log_file}")
        if state.secure:
            postgres.require_passwords(state.postgres_node(root))
            internal = ",".join(node.admin_bootstrap for node in nodes)
            secure.provision(
                root, internal, state.bootstrap(root), state.postgres_node(root).dsn, log
            )
        return DevServices(
            state.bootstrap(root), state.postgres_node(root).dsn, root, state.brokers, state.secure
        )


def down(dev_dir: Path | None = None, *, log: Log = print) -> None:
    """Stop both services; harmless when nothing runs."""
    if _load_state(_root(dev_dir)) is None:
        return
    with _session(dev_dir) as (root, state):
        log(f"stopping Kafka and Postgres of {root}")
        for node in state.kafka_nodes(root):
            kafka.stop(node)
        postgres.stop(state.postgres_node(root), log)


def status(dev_dir: Path | None = None) -> dict[str, object]:
    root = _root(dev_dir)
    state = _load_state(root)
    if state is None:
        return {"dev_dir": str(root), "kafka": {"running": False}, "postgres": {"running": False}}
    knode, pnode = state.kafka_node(root), state.postgres_node(root)
    kafka_pid, postgres_pid = kafka.running_pid(knode), postgres.pid(pnode)
    conf = state.admin_conf(root)
    nodes = [_node_status(node, conf) for node in state.kafka_nodes(root)]
    return {
        "dev_dir": str(root),
        "kafka": {
            "running": all(n["running"] for n in nodes),
            "pid": kafka_pid,
            "address": state.bootstrap(root),
            "log": str(knode.log_file),
            "brokers": state.brokers,
            "secure": state.secure,
            "replication": dict(
                zip(("factor", "min_insync"), kafka.replication(state.brokers), strict=True)
            ),
            "nodes": nodes,
        },
        "postgres": {
            "running": postgres_pid is not None and postgres.answers(pnode),
            "pid": postgres_pid,
            "address": f"127.0.0.1:{pnode.port}",
            "dsn": pnode.dsn,
            "log": str(pnode.log_file),
        },
    }


def _node_status(node: kafka.KafkaNode, conf: dict[str, Any]) -> dict[str, Any]:
    pid = kafka.running_pid(node)
    return {
        "node_id": node.node_id,
        "running": pid is not None and kafka.answers(node.admin_bootstrap, conf),
        "pid": pid,
        "address": node.bootstrap,
        "startup_seconds": kafka.startup_seconds(node, pid),
        "controller_leader": kafka.controller_leader(node),
        "log": str(node.log_file),
    }


def kafka_nodes(dev_dir: Path | None = None) -> list[kafka.KafkaNode]:
    """The Kafka nodes of a started dev dir (for fault tests: pids, ports, logs)."""
    root = _root(dev_dir)
    state = _load_state(root)
    return [] if state is None else state.kafka_nodes(root)


def stop_kafka(dev_dir: Path | None = None, node_id: int | None = None) -> None:
    """Stop every node, or node ``node_id`` only (controlled shutdown, see ``kafka.stop``)."""
    if _load_state(_root(dev_dir)) is None:
        return
    with _session(dev_dir) as (root, state):
        for node in state.kafka_nodes(root):
            if node_id in (None, node.node_id):
                kafka.stop(node)


def start_kafka(
    dev_dir: Path | None = None, *, log: Log = print, node_id: int | None = None
) -> dict[int, float]:
    """Start every stopped node (or node ``node_id``) again on the same ports and data and wait
    until each answers; returns the start-up seconds of each node started."""
    with _session(dev_dir) as (root, state):
        started = {}
        for node in state.kafka_nodes(root):
            if node_id in (None, node.node_id) and kafka.running_pid(node) is None:
                state = _with_libs(root, state, None, log)
                since = time.monotonic()
                pid = _spawn_node(root, state, node, log)
                conf = state.admin_conf(root)
                started[node.node_id] = kafka.wait_ready(node, pid, conf=conf, since=since)
        return started


def stop_postgres(dev_dir: Path | None = None, *, log: Log = print) -> None:
    if _load_state(_root(dev_dir)) is None:
        return
    with _session(dev_dir) as (root, state):
        postgres.stop(state.postgres_node(root), log)


def start_postgres(dev_dir: Path | None = None, *, log: Log = print) -> None:
    with _session(dev_dir) as (root, state):
        _start_postgres(root, state, log)


def _with_libs(root: Path, state: _State, cache_dir: Path | None, log: Log) -> _State:
    """The state with a complete jar directory (resolved with Maven when missing)."""
    libs = Path(state.kafka_libs) if state.kafka_libs and cache_dir is None else None
    if libs is None or not kafka.is_complete(libs):
        libs = kafka.resolve_jars(cache_dir or default_cache_dir(), log)
        state = replace(state, kafka_libs=str(libs))
        _save_state(root, state)
    return state


def _spawn_node(root: Path, state: _State, node: kafka.KafkaNode, log: Log) -> int:
    assert state.kafka_libs is not None
    log(f"starting Kafka node {node.node_id} on {node.bootstrap} (log: {node.log_file})")
    return kafka.spawn(node, Path(state.kafka_libs), state.kafka_cluster_id)


def _start_postgres(root: Path, state: _State, log: Log) -> None:
    node = state.postgres_node(root)
    if postgres.pid(node) is None:
        postgres.start(node, log)
    elif not postgres.answers(node):
        raise PostgresServiceError(f"Postgres runs but does not answer; see {node.log_file}")


@contextmanager
def _session(
    dev_dir: Path | None, brokers: int | None = None, secure_profile: bool | None = None
) -> Iterator[tuple[Path, _State]]:
    """The dev dir and its state, under an exclusive lock (one caller starts or stops at once).
    A new dev dir gets the shape asked for; an existing one must have it."""
    root = _root(dev_dir)
    root.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        lock = stack.enter_context((root / ".lock").open("w"))
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = _load_state(root)
        if state is None:
            state = _new_state(brokers or 1, bool(secure_profile))
            _save_state(root, state)
        elif (brokers is not None and brokers != state.brokers) or (
            secure_profile is not None and secure_profile != state.secure
        ):
            raise ShapeMismatch(
                f"{root} holds a {state.brokers}-broker{' secure' if state.secure else ''} "
                f"cluster; run `brainstream dev down --dev-dir {root}` and delete it, or use "
                "another --dev-dir"
            )
        yield root, state


def _new_state(brokers: int, secure_profile: bool) -> _State:
    extra_ports = 2 * (brokers - 1) + (brokers if secure_profile else 0)
    ports = _free_ports(3 + extra_ports)
    kafka_port, controller_port, postgres_port, *rest = ports
    extra = [[rest[2 * i], rest[2 * i + 1]] for i in range(brokers - 1)]
    internal = rest[2 * (brokers - 1) :]
    cluster_id = kafka.new_cluster_id() if brokers > 1 else None
    return _State(
        kafka_port,
        controller_port,
        postgres_port,
        kafka_extra=extra,
        kafka_internal_ports=internal,
        kafka_cluster_id=cluster_id,
        secure=secure_profile,
    )


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
