"""``brainstream --log-format json worker``: every line the worker writes is a JSON object,
Faust's and mode's own included, at ``--log-level`` when given, else at
``BRAINSTREAM_WORKER_LOG_LEVEL``."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from schemas.config import TopicSettings
from tests.fixtures.services import PgSchema, Services
from tests.streams.helpers import (
    WorkerEnv,
    accepted_batches,
    copy_raw,
    make_events,
    place,
    produce_accepted,
    stop,
    wait_caught_up,
)

pytestmark = pytest.mark.integration


def feed(env: WorkerEnv, conninfo: str, seed: int) -> None:
    placed = place(make_events(300, 30, seed=seed), env.topics.events_partitions, env.source_next)
    copy_raw(conninfo, placed)
    produce_accepted(
        env.kafka, env.topics.accepted, accepted_batches(placed, env.topics.events, 100)
    )


def json_lines(log: Path) -> list[dict[str, Any]]:
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert lines, "the worker wrote nothing"
    parsed = []
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
        assert isinstance(obj, dict) and {"ts", "level", "logger", "message"} <= obj.keys(), line
        parsed.append(obj)
    return parsed


def test_worker_logs_are_json_at_the_given_level(
    services: Services, topics: TopicSettings, pg_schema: PgSchema, tmp_path: Path
) -> None:
    env = WorkerEnv(
        services.kafka, services.postgres_dsn, pg_schema.name, topics, f"g-{uuid.uuid4().hex[:8]}"
    )
    env.log_dir = tmp_path
    # --log-level info beats the environment's BRAINSTREAM_WORKER_LOG_LEVEL=warning
    verbose = tmp_path / "verbose.log"
    proc = env.start(verbose, "--log-format", "json", "--log-level", "info")
    try:
        feed(env, pg_schema.conninfo, seed=1)
        wait_caught_up(pg_schema.conninfo, topics.events, dict(env.source_next))
    finally:
        stop(proc)
    lines = json_lines(verbose)
    assert any(line["level"] == "INFO" for line in lines)
    assert any(line["logger"].split(".")[0] in ("faust", "mode") for line in lines), lines

    # without --log-level, BRAINSTREAM_WORKER_LOG_LEVEL decides
    quiet = tmp_path / "quiet.log"
    proc = env.start(quiet, "--log-format", "json", BRAINSTREAM_WORKER_LOG_LEVEL="debug")
    try:
        feed(env, pg_schema.conninfo, seed=2)
        # only this worker can fold the second feed: it is running when it is stopped
        wait_caught_up(pg_schema.conninfo, topics.events, dict(env.source_next))
    finally:
        stop(proc)
    assert any(line["level"] == "DEBUG" for line in json_lines(quiet))
