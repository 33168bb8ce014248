"""``/metrics`` and ``/health``, the same in every brainstream process.

:func:`metrics_reply` and :func:`health_reply` are the two endpoints: Prometheus text of a
registry, and a JSON health document answered with 200 when its ``ok`` is true and 503 when
not. The processes with a web application of their own route the two paths to these functions
(the dashboard's Starlette app, the worker's Faust web views); the processes without one (the
sink, ``brainstream produce``) run :func:`serve`, a small threaded server from the standard
library, so they need no web framework (the SDK's light install included).

Every server binds loopback (``127.0.0.1``) unless a host is configured; the two endpoints
carry counts, never a user, so they need no token (per-user endpoints: :mod:`schemas.access`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

LOOPBACK = "127.0.0.1"
"""The default bind host of every server."""

HealthCheck = Callable[[], dict[str, Any]]
"""Returns at least ``{"ok": bool}``; more keys are shown to the caller."""


class Reply(NamedTuple):
    """An HTTP answer: status code, ``Content-Type`` and body."""

    status: int
    content_type: str
    body: bytes


def metrics_reply(registry: CollectorRegistry) -> Reply:
    """``GET /metrics``: the registry in Prometheus' text format (200)."""
    return Reply(200, CONTENT_TYPE_LATEST, generate_latest(registry))


def health_reply(state: dict[str, Any]) -> Reply:
    """``GET /health``: ``state`` as JSON, 200 when ``state["ok"]`` is true, else 503."""
    status = 200 if state.get("ok") else 503
    return Reply(status, "application/json", json.dumps(state).encode())


def serve(
    registry: CollectorRegistry,
    health: HealthCheck,
    port: int,
    host: str = LOOPBACK,
    *,
    name: str = "metrics-http",
) -> ThreadingHTTPServer:
    """Serve ``/metrics`` and ``/health`` on ``host:port`` (port 0: any free port, see
    ``server.server_port``) from a daemon thread called ``name``; ``shutdown()`` and
    ``server_close()`` the returned server to stop.

    Raises:
        OSError: the address cannot be bound (in use, or not an address of this host).
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._reply(metrics_reply(registry))
            elif self.path == "/health":
                self._reply(health_reply(health()))
            else:
                self._reply(Reply(404, "text/plain", b"not found\n"))

        def _reply(self, reply: Reply) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return server
