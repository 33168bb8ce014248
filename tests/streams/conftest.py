"""Fixtures shared by the worker's integration tests."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.config import TopicSettings
from tests.fixtures.services import PgSchema, Services
from tests.streams.helpers import WorkerEnv, stop


@pytest.fixture
def worker_env(
    services: Services, topics: TopicSettings, pg_schema: PgSchema, tmp_path: Path
) -> Iterator[WorkerEnv]:
    """Worker subprocesses on fresh topics and a fresh schema; every one still running at the
    end (stopped ones too: SIGCONT first) is stopped."""
    env = WorkerEnv(
        services.kafka, services.postgres_dsn, pg_schema.name, topics, f"g-{uuid.uuid4().hex[:8]}"
    )
    env.log_dir = tmp_path
    yield env
    for proc in env.procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            stop(proc)
