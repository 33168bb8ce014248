"""What every benchmark needs: the services, a throw-away schema, and the result file.

Services come from ``BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS`` / ``BRAINSTREAM_POSTGRES_DSN`` when
set, otherwise from ``brainstream.dev.up()`` (the default dev dir, left running).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402
from psycopg.conninfo import make_conninfo  # noqa: E402

from brainstream.migrate import migrate  # noqa: E402
from schemas.config import KafkaSettings  # noqa: E402

RESULTS_DIR = ROOT / "benchmarks" / "results"


def services() -> tuple[KafkaSettings, str]:
    """Kafka settings and the Postgres DSN to measure against."""
    bootstrap = os.environ.get("BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS")
    dsn = os.environ.get("BRAINSTREAM_POSTGRES_DSN")
    if bootstrap and dsn:
        return KafkaSettings(bootstrap_servers=bootstrap), dsn
    from brainstream import dev

    up = dev.up(log=lambda _m: None)
    return KafkaSettings(bootstrap_servers=bootstrap or up.kafka_bootstrap), dsn or up.postgres_dsn


def fresh_schema(dsn: str, prefix: str = "bench") -> tuple[str, str]:
    """A migrated schema of its own: ``(name, conninfo with that search_path)``."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    migrate(dsn, name)
    return name, make_conninfo(dsn, options=f"-c search_path={name}")


def drop_schema(dsn: str, name: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def write_result(result: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` (needs name, ratio, target, meets, figures);
    a benchmark may call it after each phase, so the file is replaced atomically."""
    missing = {"name", "ratio", "target", "meets", "figures"} - set(result)
    if missing:
        raise ValueError(f"benchmark result lacks {sorted(missing)}")
    path = RESULTS_DIR / f"{result['name']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(result, indent=2) + "\n")
    partial.replace(path)  # atomic: a run killed while writing leaves the previous file whole
    return path


def records_on_topic(bootstrap: str, topic: str) -> int:
    """Records in ``topic`` (high minus low watermark over its partitions; a plaintext
    broker)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}"})
    try:
        meta = consumer.list_topics(topic, timeout=30).topics[topic]
        total = 0
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            total += high - low
        return total
    finally:
        consumer.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants, the reaped ones included
    (``cutime``/``cstime``: a Postgres backend's time is its postmaster's once it exited);
    0 when the process is gone. Linux ``/proc`` only."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += cpu_seconds(int(child))
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return total


def machine_cpu_seconds() -> float:
    """CPU seconds every core of this machine has been busy since boot (``/proc/stat``: all
    but idle and iowait). Linux only."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(v) for v in fields]
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]  # user..steal, without idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def listener_pid(port: int) -> int | None:
    """The pid of the process listening on TCP ``port`` of this machine (``None``: not found or
    not visible to this user). Linux ``/proc`` only."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                    inodes.add(f"socket:[{cols[9]}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(proc.name)
    return None
