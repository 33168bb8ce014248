"""Process exit and fork on the real broker: every event accounted for, none sent twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from schemas.config import KafkaSettings, TopicSettings
from tests.producers.topic_reader import counts_by_id, read_topic

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def run(*args: str, timeout: float = 90, rc: int = 0) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.producers.scripts", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == rc, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def balanced(stats: dict[str, Any]) -> None:
    assert stats["unexplained"] == 0, stats


def test_normal_exit_delivers_what_is_still_queued(
    kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    (report,) = run("exit", kafka_settings.bootstrap_servers, topics.events, str(tmp_path), "5000")
    assert report["queued_at_exit"] > 0  # linger kept them in memory when main returned
    assert report["stats"]["delivered"] == report["stats"]["tracked"] == 5000
    balanced(report["stats"])
    counts = counts_by_id(read_topic(kafka_settings, topics.events, 5000))
    assert set(counts) == set(report["ids"]) and set(counts.values()) == {1}


def test_unreachable_broker_at_exit_spools_for_the_next_process(
    kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    (gone,) = run("exit", "127.0.0.1:9", topics.events, str(tmp_path), "3000")
    stats = gone["stats"]
    assert stats["delivered"] == 0 and stats["in_spool"] + stats["dropped"] == 3000
    assert stats["dropped"] == 0
    balanced(stats)
    assert list(tmp_path.glob("*.seg"))

    (drainer,) = run("drain", kafka_settings.bootstrap_servers, topics.events, str(tmp_path), "60")
    assert drainer["stats"]["recovered"] == 3000 == drainer["stats"]["delivered"]
    balanced(drainer["stats"])
    counts = counts_by_id(read_topic(kafka_settings, topics.events, 3000))
    assert set(counts) == set(gone["ids"]) and set(counts.values()) == {1}
    assert not list(tmp_path.glob("*.seg"))


def test_parent_and_child_each_send_their_own_events_once(
    kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    reports = run("fork", kafka_settings.bootstrap_servers, topics.events, str(tmp_path), "500")
    by_who = {r["who"]: r for r in reports}
    assert by_who["child"]["stats"]["tracked"] == 500  # the child's counters are its own
    assert by_who["parent"]["stats"]["tracked"] == 1000
    for report in reports:
        balanced(report["stats"])
    expected = set(by_who["child"]["ids"]) | set(by_who["parent"]["ids"])
    records = read_topic(kafka_settings, topics.events, 1500)
    counts = counts_by_id(records)
    assert set(counts) == expected and set(counts.values()) == {1}
    users = {str(r.event.event_id): r.event.user_id for r in records}
    assert {users[i] for i in by_who["child"]["ids"]} == {"user-child"}


def test_what_reached_the_spool_survives_sigkill(
    kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    (killed,) = run("kill", "127.0.0.1:9", topics.events, str(tmp_path), "1000", rc=-9)
    assert killed["stats"]["in_spool"] == 1000
    (drainer,) = run("drain", kafka_settings.bootstrap_servers, topics.events, str(tmp_path), "60")
    assert drainer["stats"]["recovered"] == 1000 == drainer["stats"]["delivered"]
    counts = counts_by_id(read_topic(kafka_settings, topics.events, 1000))
    assert set(counts) == set(killed["ids"]) and set(counts.values()) == {1}


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_a_multiprocessing_child_that_returns_delivers_its_event(
    kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path, method: str
) -> None:
    """Issue 17 item 5: the child exits through ``os._exit`` (no atexit) with its event still
    queued (linger 2 s); the multiprocessing finalizer flushes it."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BRAINSTREAM_")},
        "MP_BOOTSTRAP": kafka_settings.bootstrap_servers,
        "MP_TOPIC": topics.events,
        "MP_SPOOL": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.producers.mp_child", method],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    child = next(line for line in lines if line["who"] == "child")
    parent = next(line for line in lines if line["who"] == "parent")
    assert parent["exitcode"] == 0 and child["id"] is not None
    published = read_topic(kafka_settings, topics.events, expect=1, timeout=30)
    assert counts_by_id(published) == {child["id"]: 1}
    assert published[0].event.user_id == f"user-{method}"
