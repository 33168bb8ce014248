"""A single-node Kafka (KRaft, broker and controller in one JVM) run from Maven Central jars.

Cached once per machine: ``<cache dir>/kafka-<KAFKA_VERSION>/libs/*.jar``, resolved by Maven
from ``kafka-runtime.xml`` (Maven keeps its own downloads in ``~/.m2``); the ``.complete``
marker lists the jars and is written last, so a broken download is redone.
Per dev dir, under ``kafka/``: ``server.properties``, ``data/`` (log.dirs, formatted once),
``logs/server.log`` (log4j), ``kafka.out`` (JVM stdout/stderr), ``kafka.pid``.
"""

from __future__ import annotations

import base64
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

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

KAFKA_VERSION = "4.3.1"
_POM = Path(__file__).with_name("kafka-runtime.xml")
_LOG4J = Path(__file__).with_name("log4j2.yaml")
_MARKER = ".complete"
_JVM_OPTIONS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-Djava.awt.headless=true",
)


class KafkaServiceError(RuntimeError):
    """The local broker could not be resolved, started or stopped."""


@dataclass(frozen=True)
class KafkaNode:
    home: Path
    port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

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


def server_properties(node: KafkaNode) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{node.controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(node.data_dir),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "10",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
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


def is_complete(libs: Path) -> bool:
    marker = libs / _MARKER
    if not marker.is_file():
        return False
    jars = marker.read_text().split()
    return bool(jars) and all((libs / jar).is_file() for jar in jars)


def spawn(node: KafkaNode, libs: Path) -> int:
    """Start the broker detached (its own session) and return its pid, without waiting."""
    for directory in (node.home, node.log_dir):
        directory.mkdir(parents=True, exist_ok=True)
    node.properties.write_text(server_properties(node))
    java = [_java(), f"-Dlog4j2.configurationFile={_LOG4J}", f"-Dkafka.logs.dir={node.log_dir}"]
    java += [f"-XX:ErrorFile={node.home}/hs_err_pid%p.log", "-cp", f"{libs}/*"]
    if not (node.data_dir / "meta.properties").exists():
        cluster = ["-t", _cluster_id(), "-c", str(node.properties)]
        _run(
            [*java, "kafka.tools.StorageTool", "format", "--standalone", *cluster],
            "formatting the Kafka storage failed",
        )
    argv = [java[0], *_JVM_OPTIONS, *java[1:], "kafka.Kafka", str(node.properties)]
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


def wait_ready(node: KafkaNode, pid: int, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            raise KafkaServiceError(
                f"Kafka exited while starting; see {node.log_file} and {node.out_file}"
            )
        if answers(node.bootstrap):
            return
        time.sleep(0.2)
    raise KafkaServiceError(
        f"Kafka did not answer on {node.bootstrap} within {timeout:.0f} s; see {node.log_file}"
    )


def answers(bootstrap: str) -> bool:
    host, port = bootstrap.rsplit(":", 1)
    try:  # a cheap probe first: librdkafka logs every refused connection to stderr
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    try:
        AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5)
    except KafkaException:
        return False
    return True


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
    """SIGTERM (controlled shutdown), SIGKILL when that takes longer than ``timeout``."""
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


def _cluster_id() -> str:
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
