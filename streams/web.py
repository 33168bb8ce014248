"""Pages on the Faust web server: ``/metrics``, ``/health`` (:mod:`schemas.http`) and the
aggregate views (JSON)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import faust
import psycopg
from faust.web import Request, Response, View
from pydantic import SecretStr

from eventlog.db import Connection
from schemas.access import refusal
from schemas.http import Reply, health_reply, metrics_reply
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
            return _response(self, metrics_reply(metrics.registry))

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            ok = processor.db_ok
            doc = {
                "ok": ok,
                "db_ok": ok,
                "connected": processor.healthy(),
                "partitions": _assigned(app),
            }
            return _response(self, health_reply(doc))

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
            refused = refusal(request.headers.get("Authorization"), token)
            if refused is not None:
                return self.json(
                    {"error": refused.message},
                    status=401,
                    headers={"WWW-Authenticate": refused.challenge},
                )
            return self.json(await query(lambda conn: queries.user_json(conn, user_id)))


def _response(view: View, reply: Reply) -> Response:
    # In a header: aiohttp refuses a content_type argument with a charset (Prometheus' has one).
    return view.bytes(reply.body, status=reply.status, headers={"Content-Type": reply.content_type})


def _assigned(app: faust.App) -> int:
    """Partitions of the accepted stream assigned to this worker now (0 before the group join)."""
    try:
        return len(app.consumer.assignment())
    except Exception:  # the consumer is not started yet (or stopping)
        return 0
