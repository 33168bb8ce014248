"""Export jobs run in background threads, for the HTTP endpoint (same code path as the CLI)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sinks.export.config import ExportRequest
from sinks.export.errors import ExportError
from sinks.export.manifest import Manifest
from sinks.export.progress import CountingProgress, Progress

Runner = Callable[[ExportRequest, Progress], Manifest]
Clock = Callable[[], datetime]


class JobState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobConflict(ExportError):
    """An export of the same dataset name is already running."""

    def __init__(self, name: str, job_id: str) -> None:
        super().__init__(f"export {name!r} is already running as job {job_id}")
        self.name = name
        self.job_id = job_id


@dataclass
class Job:
    id: str
    request: ExportRequest
    started_at: datetime
    state: JobState = JobState.RUNNING
    progress: CountingProgress = field(default_factory=CountingProgress)
    manifest: Manifest | None = None
    error: str | None = None
    finished_at: datetime | None = None

    def status(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.request.name,
            "status": self.state.value,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "progress": {"done": self.progress.done, "total": self.progress.total},
            "error": self.error,
            "manifest": self.manifest.model_dump(mode="json") if self.manifest else None,
        }


class Jobs:
    def __init__(self, runner: Runner, *, clock: Clock = lambda: datetime.now(UTC)) -> None:
        self._runner = runner
        self._clock = clock
        self._jobs: dict[str, Job] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def start(self, request: ExportRequest) -> Job:
        """Run ``request`` in a thread of its own and return its job at once.

        Raises:
            JobConflict: an export of the same dataset name is running.
        """
        with self._lock:
            for job in self._jobs.values():
                if job.request.name == request.name and job.state is JobState.RUNNING:
                    raise JobConflict(request.name, job.id)
            job = Job(id=uuid.uuid4().hex, request=request, started_at=self._clock())
            self._jobs[job.id] = job
            thread = threading.Thread(target=self._run, args=(job,), name=f"export-{job.id[:8]}")
            self._threads[job.id] = thread
        thread.start()
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        return sorted(self._jobs.values(), key=lambda j: j.started_at)

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        self._threads[job_id].join(timeout)
        return self._jobs[job_id]

    def _run(self, job: Job) -> None:
        try:
            job.manifest = self._runner(job.request, job.progress)
            job.state = JobState.SUCCEEDED
        except Exception as exc:  # reported through the status, never lost
            job.error = f"{type(exc).__name__}: {exc}"
            job.state = JobState.FAILED
        finally:
            job.finished_at = self._clock()
