"""Peers of the aggregate worker, run on the same pre-filled ``brainstream.events``-format topic.

- ``faust``: an idiomatic Faust app (``faust_app.py``): per-event agents adding to tumbling
  windowed tables, per-type minute counts (through ``group_by``) and per-user hour counts;
- ``quix``: Quix Streams (``quix_app.py``) with ``tumbling_window().count()`` for the same,
  in its own venv under ``workdir`` because it pins confluent-kafka below brainstream's
  (created on first use from ``quix-requirements.txt`` with pip from PyPI).

Each runs in a subprocess, reads the topic from the earliest offset in a consumer group of its
own, and stops once it has counted ``events`` events; its rate runs from the first event it
read to the last one counted (start-up and group join excluded, as for the worker). Its counts
are checked: the per-type and the per-user windows must each sum to ``events`` (and Quix must
have refused no record as late), or :class:`PeerMiscounted` is raised. The internal topics the
peers create (repartition, changelog) are deleted afterwards.

    python benchmarks/peers --bootstrap HOST:PORT --topic NAME --events N [--workdir DIR]
        [--peers faust,quix]

Figures measured on the random-spread topic before these peers were written (issue 12):
Quix Streams 3.28 about 4.9k events/s per type and 6.6k per user, a Faust agent that does
nothing 4-6k events/s.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from confluent_kafka.admin import AdminClient

HERE = Path(__file__).resolve().parent
QUIX_REQUIREMENTS = HERE / "quix-requirements.txt"
DEFAULT_WORKDIR = HERE.parents[1] / ".brainstream" / "bench" / "peers"
PEERS = ("faust", "quix")
TIMEOUT_S = 3600.0


class PeerMiscounted(RuntimeError):
    """A peer's windows do not add up to the events it read: its rate would not be comparable."""


def run_peers(
    bootstrap: str,
    topic: str,
    events: int,
    workdir: Path | str = DEFAULT_WORKDIR,
    *,
    peers: Sequence[str] = PEERS,
    timeout_s: float = TIMEOUT_S,
) -> dict[str, float]:
    """Run each peer over the first ``events`` events of ``topic``; events/s and checked counts.

    Returns ``{"<peer>_events_per_s": ..., "<peer>_seconds": ..., "<peer>_<type|user>_windows":
    ...}`` for each peer in ``peers``. ``workdir`` holds the Quix venv (kept between runs) and
    each run's state (deleted). Raises :class:`PeerMiscounted` when a peer's counts are wrong,
    ``subprocess.CalledProcessError`` / ``TimeoutExpired`` when it fails or takes longer than
    ``timeout_s`` seconds, and ``ValueError`` for an unknown peer.
    """
    unknown = set(peers) - set(PEERS)
    if unknown:
        raise ValueError(f"unknown peers {sorted(unknown)}; known: {', '.join(PEERS)}")
    work = Path(workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    partitions = _partitions(bootstrap, topic)
    figures: dict[str, float] = {}
    for peer in peers:
        run_id = f"bench-peer-{peer}-{uuid.uuid4().hex[:8]}"
        run_dir = work / run_id
        run_dir.mkdir()
        out = run_dir / "result.json"
        try:
            if peer == "faust":
                cmd = [sys.executable, str(HERE / "faust_app.py"), bootstrap, topic, str(events)]
                cmd += [str(out), str(run_dir / "faust"), run_id, str(partitions)]
                cmd += [str(_free_port())]
            else:
                cmd = [str(quix_python(work)), str(HERE / "quix_app.py"), bootstrap, topic]
                cmd += [str(events), str(out), str(run_dir / "state"), run_id]
            _run(cmd, run_dir / "log.txt", timeout_s)
            result = json.loads(out.read_text())
        finally:
            _delete_internal_topics(bootstrap, run_id)
            shutil.rmtree(run_dir, ignore_errors=True)
        _check(peer, result, events)
        figures[f"{peer}_events_per_s"] = float(result["events_per_s"])
        figures[f"{peer}_seconds"] = float(result["seconds"])
        for name in ("type", "user"):
            figures[f"{peer}_{name}_windows"] = float(result[f"{name}_windows"])
    return figures


def quix_python(workdir: Path) -> Path:
    """The Python of the Quix Streams venv under ``workdir``, created on first use."""
    venv = workdir / "quix-venv"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    wanted = QUIX_REQUIREMENTS.read_text()
    if not (python.exists() and stamp.exists() and stamp.read_text() == wanted):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(QUIX_REQUIREMENTS)], check=True
        )
        stamp.write_text(wanted)
    return python


def _check(peer: str, result: dict[str, float], events: int) -> None:
    wrong = [
        f"{name} windows sum to {result[f'{name}_total']}"
        for name in ("type", "user")
        if result[f"{name}_total"] != events
    ]
    wrong += [
        f"{result[k]} records refused as late" for k in ("type_late", "user_late") if result.get(k)
    ]
    if wrong:
        raise PeerMiscounted(f"{peer} read {events} events but: {'; '.join(wrong)}")


def _run(cmd: list[str], log: Path, timeout_s: float) -> None:
    with log.open("w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s)
    if proc.returncode:
        tail = log.read_text()[-3000:]
        raise subprocess.CalledProcessError(proc.returncode, cmd[:2], output=tail)


def _partitions(bootstrap: str, topic: str) -> int:
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=30)
    found = meta.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise ValueError(f"topic {topic!r} not found on {bootstrap}")
    return len(found.partitions)


def _delete_internal_topics(bootstrap: str, run_id: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [t for t in admin.list_topics(timeout=30).topics if run_id in t]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
