"""The dashboard's ASGI app: the page, its JSON endpoints and ``/metrics``.

Endpoints are plain functions (Starlette runs them in its thread pool) over a small psycopg
pool; the page polls them every ``refresh_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from brainstream.dashboard import queries
from brainstream.dashboard.cache import TtlCache
from brainstream.dashboard.metrics import DashboardMetrics
from brainstream.probe import HealthMonitor
from schemas.access import Refusal, refusal
from schemas.http import Reply, health_reply, metrics_reply
from sinks.queries import Cursor, user_timeline
from streams.errors import UnknownWindow

STATIC = Path(__file__).parent / "static"
Endpoint = Callable[[Request], Response]


@dataclass(frozen=True)
class DashboardConfig:
    conninfo: str
    """A DSN whose search_path holds brainstream's tables."""
    monitor: HealthMonitor
    refresh_seconds: float = 5.0
    timeline_page: int = 25
    db_timeout: float = 5.0
    distinct_ttl: dict[str, float] = field(default_factory=dict)
    """Seconds a window's distinct-user counts are reused (per window name; 0 = always fresh)."""
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    token: SecretStr | None = None
    """Bearer token of the per-user endpoint (``/api/users/...``); ``None``: open (loopback)."""


def json_response(content: Any, status: int = 200) -> Response:
    body = orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
    return Response(body, status, media_type="application/json")


def _response(reply: Reply) -> Response:
    return Response(reply.body, reply.status, media_type=reply.content_type)


def _error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


def unauthorized(refused: Refusal) -> Response:
    """401 with the challenge RFC 6750 asks for."""
    response = _error(401, refused.message)
    response.headers["WWW-Authenticate"] = refused.challenge
    return response


def create_app(config: DashboardConfig) -> Starlette:
    pool = ConnectionPool(
        config.conninfo,
        min_size=1,
        max_size=4,
        open=False,
        timeout=config.db_timeout,
        kwargs={"autocommit": True, "connect_timeout": max(1, int(config.db_timeout))},
    )
    metrics = DashboardMetrics(config.monitor)
    distinct: TtlCache[queries.Distinct] = TtlCache()

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        pool.open(wait=False)
        try:
            yield
        finally:
            pool.close()
            config.monitor.close()

    def measured(route: str, endpoint: Endpoint) -> Endpoint:
        def serve(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = endpoint(request)
            except (PoolTimeout, psycopg.OperationalError) as exc:
                response = _error(503, f"database unavailable ({type(exc).__name__})")
            metrics.requests.labels(route, str(response.status_code)).inc()
            metrics.latency.labels(route).observe(time.perf_counter() - started)
            return response

        return serve

    def page(_request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    def settings(_request: Request) -> Response:
        return json_response(
            {
                "refresh_seconds": config.refresh_seconds,
                "windows": list(queries.WINDOWS),
                "timeline_page": config.timeline_page,
                "token_required": config.token is not None,
            }
        )

    def series(request: Request) -> Response:
        try:
            w = queries.window(request.query_params.get("window", "1h"))
        except UnknownWindow as exc:
            return _error(400, str(exc))
        with pool.connection() as conn:
            return json_response(queries.series(conn, w, config.clock()))

    def top(request: Request) -> Response:
        try:
            w = queries.window(request.query_params.get("window", "1h"))
        except UnknownWindow as exc:
            return _error(400, str(exc))
        now = config.clock()
        with pool.connection() as conn:
            events = queries.event_totals(conn, w, now)
            users = distinct.get(
                (w.name, w.bounds(now)[0]),
                config.distinct_ttl.get(w.name, 0.0),
                lambda: queries.distinct_users(conn, w, now),
            )
        return json_response(queries.top(w, now, events, users))

    def user(request: Request) -> Response:
        refused = refusal(request.headers.get("authorization"), config.token)
        if refused is not None:
            return unauthorized(refused)
        user_id = request.path_params["user_id"]
        token = request.query_params.get("after")
        try:
            after = Cursor.parse(token) if token else None
            limit = int(request.query_params.get("limit", config.timeline_page))
        except ValueError:
            return _error(400, "bad cursor or limit")
        limit = max(1, min(limit, 500))
        with pool.connection() as conn:
            counts = queries.user_counts(conn, user_id) if after is None else None
            events, nxt = user_timeline(conn, user_id, limit=limit, after=after)
        return json_response(
            {
                "user_id": user_id,
                "counts": counts,
                "events": events,
                "next": nxt.token() if nxt is not None else None,
            }
        )

    def health(_request: Request) -> Response:
        return json_response(config.monitor.current().as_dict())

    def alive(_request: Request) -> Response:
        return _response(health_reply({"ok": True}))

    def scrape(_request: Request) -> Response:
        return _response(metrics_reply(metrics.registry))

    routes = [
        Route("/", measured("page", page)),
        Route("/api/settings", measured("settings", settings)),
        Route("/api/series", measured("series", series)),
        Route("/api/top", measured("top", top)),
        Route("/api/users/{user_id:str}", measured("user", user)),
        Route("/api/health", measured("health", health)),
        Route("/health", alive),
        Route("/healthz", alive),
        Route("/metrics", scrape),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
