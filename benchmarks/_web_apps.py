"""The two web apps ``web_overhead.py`` puts under load (not a benchmark of its own).

- ``asgi_app``: Starlette, served by uvicorn, behind ``producers.middleware.TrackingMiddleware``;
- ``wsgi_app``: Flask, served by gunicorn, behind ``producers.middleware.WsgiTrackingMiddleware``.

``GET /tasks`` does ``BENCH_WEB_WORK_ITERS`` iterations of pure-Python work (calibrated by the
benchmark to about 1 ms) and, with tracking on, tracks one ``task_created`` event in the user
context the middleware set (its own page_view is filtered out, so each request tracks exactly
one event). With tracking off there is no tracker, no middleware and no ``track()``: the same
app otherwise. ``GET /health`` does nothing.

Configured by the environment: ``BENCH_WEB_TRACKING`` (``on``/``off``), ``BENCH_WEB_WORK_ITERS``,
``BENCH_WEB_STATS`` (where the served count and the tracker's final counters are written at
exit, after ``Tracker.close()``), ``BENCH_WEB_TOPIC``, ``BENCH_WEB_SPOOL`` (the spool dir) and
``BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS``.
"""

from __future__ import annotations

import atexit
import dataclasses
import itertools
import json
import os
from pathlib import Path
from typing import Any

TRACKING = os.environ.get("BENCH_WEB_TRACKING") == "on"
WORK_ITERS = int(os.environ.get("BENCH_WEB_WORK_ITERS", "20000"))
CLOSE_TIMEOUT_S = 5.0

_served = itertools.count()
_users = itertools.count()
tracker: Any = None
_written: list[bool] = []


def work(iterations: int = WORK_ITERS) -> int:
    """CPU work of a handler (the benchmark calibrates ``iterations`` to about 1 ms)."""
    total = 0
    for i in range(iterations):
        total += i * i
    return total


def resolve_user(_request: Any) -> str:
    """A pseudonymous user per request, spread over 1000 users (and so over partitions)."""
    return f"u{next(_users) % 1000}"


def _handle() -> None:
    work()
    n = next(_served)
    if tracker is not None:
        tracker.track("task_created", task_id=f"task-{n}", priority="high")


def _write_stats() -> None:
    """Close the tracker and write the counters, once: from the ASGI app's lifespan shutdown
    (uvicorn re-raises SIGTERM after it, so no exit hook runs) or at exit (gunicorn's worker)."""
    if _written:
        return
    _written.append(True)
    out: dict[str, Any] = {"served": next(_served), "tracking": TRACKING}
    if tracker is not None:
        stats = tracker.close(CLOSE_TIMEOUT_S)
        out["stats"] = dataclasses.asdict(stats)
    path = os.environ.get("BENCH_WEB_STATS")
    if path:
        Path(path).write_text(json.dumps(out))


if TRACKING:
    from producers import Tracker
    from producers.settings import SdkSettings
    from schemas.config import KafkaSettings

    tracker = Tracker(
        KafkaSettings(bootstrap_servers=os.environ["BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS"]),
        topic=os.environ["BENCH_WEB_TOPIC"],
        config=SdkSettings().tracker_config(),
        source="bench-web",
        spool_dir=Path(os.environ["BENCH_WEB_SPOOL"]),
        prometheus=False,
    )
# registered after the tracker's own exit hook, so it runs first (atexit is last-in first-out)
atexit.register(_write_stats)


def _no_page_view(_path: str) -> bool:
    return False


def _asgi() -> Any:
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def tasks(_request: Request) -> PlainTextResponse:
        _handle()
        return PlainTextResponse("ok")

    async def health(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        _write_stats()

    routes = [Route("/tasks", tasks), Route("/health", health)]
    app: Any = Starlette(routes=routes, lifespan=lifespan)
    if tracker is not None:
        from producers.middleware import TrackingMiddleware

        app = TrackingMiddleware(app, tracker, resolve_user, track_paths=_no_page_view)
    return app


def _wsgi() -> Any:
    from flask import Flask

    app = Flask("bench_web")

    @app.get("/tasks")
    def tasks() -> str:
        _handle()
        return "ok"

    @app.get("/health")
    def health() -> str:
        return "ok"

    if tracker is not None:
        from producers.middleware import WsgiTrackingMiddleware

        app.wsgi_app = WsgiTrackingMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, tracker, resolve_user, track_paths=_no_page_view
        )
    return app


def __getattr__(name: str) -> Any:
    """Build only the app the server asks for (uvicorn needs no Flask, gunicorn no Starlette)."""
    if name == "asgi_app":
        return _asgi()
    if name == "wsgi_app":
        return _wsgi()
    raise AttributeError(name)
