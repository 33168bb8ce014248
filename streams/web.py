"""Pages on the Faust web server: ``/metrics``, ``/health`` and the aggregate views (JSON)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import faust
import psycopg
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import SecretStr

from eventlog.db import Connection
from schemas.access import authorized
from streams import queries
from streams.errors import UnknownWindow
from streams.metrics import WorkerMetrics
from streams.processor import BatchProcessor


def register_pages(
    app: faust.App,
    conninfo: str,
    metrics: WorkerMetrics,
    processor: BatchProcessor,
    token: SecretStr | None = None,
) -> None:
    """``/metrics`` and ``/health`` open; ``/aggregates/users/{id}`` only with ``token`` (as a
    bearer token) when one is given (see :mod:`schemas.access`)."""

    def query(fn: Callable[[Connection], dict[str, Any]]) -> Any:
        def run() -> dict[str, Any]:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                return fn(conn)

        return asyncio.to_thread(run)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            body = generate_latest(metrics.registry)
            return self.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            ok = processor.db_ok
            doc = {"db_ok": ok, "connected": processor.healthy(), "partitions": _assigned(app)}
            return self.json(doc, status=200 if ok else 503)

    @app.page("/aggregates/types")
    class Types(View):
        async def get(self, request: Request) -> Response:
            try:
                w = queries.window(request.query.get("window", "1h"))
            except UnknownWindow as exc:
                return self.json({"error": str(exc), "known": list(exc.known)}, status=400)
            return self.json(await query(lambda conn: queries.types_json(conn, w)))

    @app.page("/aggregates/users/{user_id}")
    class Users(View):
        async def get(self, request: Request, user_id: str) -> Response:
            if not authorized(request.headers.get("Authorization"), token):
                return self.json(
                    {"error": "a bearer token is required for per-user data"},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="brainstream"'},
                )
            return self.json(await query(lambda conn: queries.user_json(conn, user_id)))


def _assigned(app: faust.App) -> int:
    """Partitions of the accepted stream assigned to this worker now (0 before the group join)."""
    try:
        return len(app.consumer.assignment())
    except Exception:  # the consumer is not started yet (or stopping)
        return 0
