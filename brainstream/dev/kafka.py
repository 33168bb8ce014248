"""Kafka nodes (KRaft, broker and controller in one JVM each) run from Maven Central jars.

One node is a cluster of its own (a standalone controller quorum, replication factor 1); three
nodes form a cluster with a static three-voter quorum (any one node may die), replication
factor 3 and ``min.insync.replicas=2`` as broker defaults (the topics take them).

Cached once per machine: ``<cache dir>/kafka-<KAFKA_VERSION>/libs/*.jar``, resolved by Maven
from ``kafka-runtime.xml`` (Maven keeps its own downloads in ``~/.m2``); the ``.complete``
marker lists the jars and is written last, so a broken download is redone.
Per node, under ``kafka/`` (node 1) or ``kafka-<id>/``: ``server.properties``, ``data/``
(log.dirs, formatted once), ``logs/server.log`` (log4j), ``kafka.out`` (JVM stdout/stderr),
``kafka.pid`` and ``ready.json`` (how long its last start took).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from schemas.errors import BrainstreamError

KAFKA_VERSION = "4.3.1"
_POM = Path(__file__).with_name("kafka-runtime.xml")
_TOOLS_POM = Path(__file__).with_name("kafka-tools.xml")
_LOG4J = Path(__file__).with_name("log4j2.yaml")
_MARKER = ".complete"
_HEAP = {1: ("-Xms256m", "-Xmx512m")}
_CLUSTER_HEAP = ("-Xms128m", "-Xmx384m")
"""Per node of a multi-node cluster: three JVMs share the 2-core, few-GB machines of the team."""
_JVM_OPTIONS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-Djava.awt.headless=true",
)


class KafkaServiceError(BrainstreamError, RuntimeError):
    """The local broker could not be resolved, started or stopped."""


@dataclass(frozen=True)
class Security:
    """The secure profile of a node: SASL_SSL (SCRAM-SHA-512) for clients, mutual TLS between
    nodes, ACLs under KRaft's StandardAuthorizer (see :mod:`brainstream.dev.secure`)."""

    internal_port: int
    """Inter-broker listener (SSL, client certificate required)."""
    ca: Path
    keystore: Path
    """PEM: the broker key and certificate chain."""


@dataclass(frozen=True)
class KafkaNode:
    home: Path
    port: int
    controller_port: int
    node_id: int = 1
    voters: tuple[tuple[int, int], ...] = ()
    """(node id, controller port) of every controller of the cluster; empty: this node alone."""
    security: Security | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def admin_bootstrap(self) -> str:
        """Where the dev tooling reaches this node: the client listener, or the inter-broker
        one (mutual TLS as ``User:broker``) in the secure profile."""
        if self.security is None:
            return self.bootstrap
        return f"127.0.0.1:{self.security.internal_port}"

    @property
    def cluster_size(self) -> int:
        return max(1, len(self.voters))

    @property
    def ready_file(self) -> Path:
        return self.home / "ready.json"

    @property
    def properties(self) -> Path:
        return self.home / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "server.log"

    @property
    def out_file(self) -> Path:
        return self.home / "kafka.out"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"


def replication(cluster_size: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) for a cluster of ``cluster_size`` brokers:
    3 and 2 from three brokers on (one broker may be down and ``acks=all`` still succeeds),
    else every broker and 1."""
    if cluster_size >= 3:
        return 3, 2
    return cluster_size, 1


def server_properties(node: KafkaNode) -> str:
    rf, min_isr = (str(n) for n in replication(node.cluster_size))
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        **_quorum(node),
        **_listeners(node),
        "log.dirs": str(node.data_dir),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        # Topics created without a replication factor (brainstream's, by default) take these.
        "default.replication.factor": rf,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": rf,
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": "10",
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": min_isr,
        "group.initial.rebalance.delay.ms": "0",
        # Small segments and a 32 MB cleaner buffer (default 128 MB) fit the 512 MB heap and
        # the many short-lived topics of a test run.
        "log.segment.bytes": str(64 * 1024 * 1024),
        "log.retention.check.interval.ms": "60000",
        "log.cleaner.dedupe.buffer.size": str(32 * 1024 * 1024),
        "num.recovery.threads.per.data.dir": "2",
        # After a crash the restarted broker is refused until its old session expires
        # (default 9 s); a shorter session makes a killed broker come back in ~4 s.
        "broker.heartbeat.interval.ms": "1000",
        "broker.session.timeout.ms": "4000",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _quorum(node: KafkaNode) -> dict[str, str]:
    if len(node.voters) <= 1:
        return {"controller.quorum.bootstrap.servers": f"127.0.0.1:{node.controller_port}"}
    voters = ",".join(f"{nid}@127.0.0.1:{port}" for nid, port in node.voters)
    return {"controller.quorum.voters": voters}


def _listeners(node: KafkaNode) -> dict[str, str]:
    controller = f"CONTROLLER://127.0.0.1:{node.controller_port}"
    sec = node.security
    if sec is None:
        return {
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},{controller}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
        }
    internal = f"INTERNAL://127.0.0.1:{sec.internal_port}"
    return {
        "listeners": f"SASL_SSL://127.0.0.1:{node.port},{internal},{controller}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{node.port},{internal}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL",
        "inter.broker.listener.name": "INTERNAL",
        # TLS everywhere; between nodes each side shows the broker certificate (mutual TLS).
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(sec.keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(sec.ca),
        "listener.name.internal.ssl.client.auth": "required",
        "listener.name.controller.ssl.client.auth": "required",
        "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
        # Clients: SCRAM-SHA-512 only (credentials live in the cluster metadata).
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        # Deny by default; only the nodes themselves and the operator are super users.
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": "User:broker;User:admin",
    }


def resolve_jars(cache_dir: Path, log: Callable[[str], None]) -> Path:
    """The directory of the broker's jars, resolved with Maven on first use."""
    libs = cache_dir / f"kafka-{KAFKA_VERSION}" / "libs"
    if is_complete(libs):
        return libs
    mvn = _tool("mvn", "Maven (apt-get install maven)")
    log(f"resolving Kafka {KAFKA_VERSION} jars with Maven into {libs} (once)")
    libs.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=libs.parent, prefix=".resolve-") as tmp:
        staged = Path(tmp) / "libs"
        pom = shutil.copyfile(_POM, Path(tmp) / "pom.xml")  # keeps target/ out of the package
        goal = ["dependency:copy-dependencies", "-DincludeScope=runtime"]
        goal += [f"-DoutputDirectory={staged}", f"-Dkafka.version={KAFKA_VERSION}"]
        _run(
            [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(pom), *goal],
            "mvn could not resolve the Kafka jars",
            timeout=900,
        )
        jars = sorted(jar.name for jar in staged.glob("*.jar"))
        (staged / _MARKER).write_text("".join(f"{jar}\n" for jar in jars))
        if not is_complete(libs):  # another process may have finished first
            shutil.rmtree(libs, ignore_errors=True)
            staged.rename(libs)
    return libs


def resolve_tools(cache_dir: Path, log: Callable[[str], None] = lambda _msg: None) -> Path:
    """The directory of Kafka's tool jars (``org.apache.kafka:kafka-tools``: ConsumerGroupCommand,
    ConsoleProducer, ...), resolved with Maven on first use, like the broker's."""
    libs = cache_dir / f"kafka-tools-{KAFKA_VERSION}" / "libs"
    if is_complete(libs):
        return libs
    mvn = _tool("mvn", "Maven (apt-get install maven)")
    log(f"resolving Kafka {KAFKA_VERSION} tools with Maven into {libs} (once)")
    libs.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=libs.parent, prefix=".resolve-") as tmp:
        staged = Path(tmp) / "libs"
        pom = shutil.copyfile(_TOOLS_POM, Path(tmp) / "pom.xml")
        goal = ["dependency:copy-dependencies", "-DincludeScope=runtime"]
        goal += [f"-DoutputDirectory={staged}", f"-Dkafka.version={KAFKA_VERSION}"]
        _run(
            [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(pom), *goal],
            "mvn could not resolve the Kafka tools jars",
            timeout=900,
        )
        jars = sorted(jar.name for jar in staged.glob("*.jar"))
        (staged / _MARKER).write_text("".join(f"{jar}\n" for jar in jars))
        if not is_complete(libs):
            shutil.rmtree(libs, ignore_errors=True)
            staged.rename(libs)
    return libs


def run_tool(
    libs: Path, main_class: str, args: list[str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run one of Kafka's tools from ``resolve_tools``' jars (``main_class`` e.g.
    ``org.apache.kafka.tools.consumer.group.ConsumerGroupCommand``); returns its output.

    Raises:
        KafkaServiceError: the tool exited non-zero (its stderr in the message).
    """
    argv = [_java(), "-Xmx256m", "-cp", f"{libs}/*", main_class, *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise KafkaServiceError(f"{main_class} failed: {done.stderr.strip() or done.stdout}")
    return done


def is_complete(libs: Path) -> bool:
    marker = libs / _MARKER
    if not marker.is_file():
        return False
    jars = marker.read_text().split()
    return bool(jars) and all((libs / jar).is_file() for jar in jars)


def spawn(node: KafkaNode, libs: Path, cluster_id: str | None = None) -> int:
    """Start the node detached (its own session) and return its pid, without waiting.

    ``cluster_id``: the id every node of a cluster is formatted with (a new one when
    ``None``, for a node of its own)."""
    for directory in (node.home, node.log_dir):
        directory.mkdir(parents=True, exist_ok=True)
    node.properties.write_text(server_properties(node))
    java = [_java(), f"-Dlog4j2.configurationFile={_LOG4J}", f"-Dkafka.logs.dir={node.log_dir}"]
    java += [f"-XX:ErrorFile={node.home}/hs_err_pid%p.log", "-cp", f"{libs}/*"]
    if not (node.data_dir / "meta.properties").exists():
        cluster = ["-t", cluster_id or new_cluster_id(), "-c", str(node.properties)]
        standalone = ["--standalone"] if len(node.voters) <= 1 else []
        _run(
            [*java, "kafka.tools.StorageTool", "format", *standalone, *cluster],
            "formatting the Kafka storage failed",
        )
    heap = _HEAP.get(node.cluster_size, _CLUSTER_HEAP)
    argv = [java[0], *heap, *_JVM_OPTIONS, *java[1:], "kafka.Kafka", str(node.properties)]
    node.ready_file.unlink(missing_ok=True)
    with node.out_file.open("ab") as out:
        pid = os.posix_spawn(
            argv[0],
            argv,
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                (os.POSIX_SPAWN_DUP2, out.fileno(), 2),
                *((os.POSIX_SPAWN_CLOSE, fd) for fd in _inherited_fds()),
            ],
            setsid=True,
        )
    node.pid_file.write_text(f"{pid}\n")
    return pid


def _inherited_fds() -> list[int]:
    """Descriptors above stderr a child would inherit: the detached broker must not hold the
    caller's pipes, sockets or ``flock`` locks open for its whole life."""
    fds = []
    for name in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else []:
        fd = int(name)
        try:
            if fd > 2 and os.get_inheritable(fd):
                fds.append(fd)
        except OSError:  # the descriptor listdir itself used, closed by now
            continue
    return fds


def wait_ready(
    node: KafkaNode,
    pid: int,
    timeout: float = 90.0,
    conf: dict[str, Any] | None = None,
    *,
    since: float | None = None,
) -> float:
    """Wait until the node answers (with client configuration ``conf``); returns the seconds
    since ``since`` (a ``time.monotonic()`` reading, default now) and records them in
    ``ready.json``.

    Raises:
        KafkaServiceError: the process exited, or the node did not answer within ``timeout``.
    """
    started = time.monotonic() if since is None else since
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            raise KafkaServiceError(
                f"Kafka exited while starting; see {node.log_file} and {node.out_file}"
            )
        if answers(node.admin_bootstrap, conf):
            seconds = round(time.monotonic() - started, 2)
            node.ready_file.write_text(json.dumps({"pid": pid, "startup_seconds": seconds}))
            return seconds
        time.sleep(0.2)
    raise KafkaServiceError(
        f"Kafka did not answer on {node.bootstrap} within {timeout:.0f} s; see {node.log_file}"
    )


def answers(bootstrap: str, conf: dict[str, Any] | None = None) -> bool:
    """Whether the broker(s) at ``bootstrap`` answer a metadata request; ``conf``: the client
    settings it takes (security), without ``bootstrap.servers``."""
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    try:  # a cheap probe first: librdkafka logs every refused connection to stderr
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    try:
        AdminClient({**(conf or {}), "bootstrap.servers": bootstrap}).list_topics(timeout=5)
    except KafkaException:
        return False
    return True


def startup_seconds(node: KafkaNode, pid: int | None) -> float | None:
    """How long the running node took to answer after it was spawned (``None``: unknown)."""
    try:
        ready = json.loads(node.ready_file.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return float(ready["startup_seconds"]) if ready.get("pid") == pid else None


def controller_leader(node: KafkaNode) -> int | None:
    """The node id of the active controller as this node last knew it (KRaft's
    ``quorum-state`` file), ``None`` when unknown."""
    try:
        state = json.loads((node.data_dir / "__cluster_metadata-0" / "quorum-state").read_text())
    except (FileNotFoundError, ValueError):
        return None
    leader = state.get("leaderId", -1)
    return int(leader) if isinstance(leader, int) and leader >= 0 else None


def running_pid(node: KafkaNode) -> int | None:
    """The broker's pid when its pid file names a live JVM that runs this node's config."""
    try:
        pid = int(node.pid_file.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not process_alive(pid):
        return None
    with suppress(OSError):  # a recycled pid runs something else
        if str(node.properties).encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return None
    return pid


def stop(node: KafkaNode, timeout: float = 60.0) -> None:
    """SIGTERM (controlled shutdown), SIGKILL when that takes longer than ``timeout``.

    Raises:
        KafkaServiceError: the process survived SIGKILL.
    """
    pid = running_pid(node)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        if not _wait_exit(pid, timeout):
            os.kill(pid, signal.SIGKILL)
            if not _wait_exit(pid, 10):
                raise KafkaServiceError(f"Kafka (pid {pid}) survived SIGKILL")
    node.pid_file.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs; zombies count as gone (reaped here when they are our children)."""
    with suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: kill(pid, 0) is all there is to know
    return state != "Z"


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def new_cluster_id() -> str:
    """A random Kafka ``Uuid`` string, as ``StorageTool random-uuid`` makes (without a JVM)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and Path(java_home, "bin", "java").is_file():
        return str(Path(java_home, "bin", "java"))
    return _tool("java", "Java 17+ (apt-get install openjdk-17-jre-headless)")


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise KafkaServiceError(f"`{name}` not found on PATH: install {package}")
    return path


def _run(argv: list[str], failure: str, timeout: float = 120) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-4000:]
        raise KafkaServiceError(f"{failure} (exit {result.returncode}):\n{output}")
