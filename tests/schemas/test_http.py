"""``/metrics`` and ``/health`` (schemas/http.py): the same answers from every process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter

from schemas.http import LOOPBACK, health_reply, metrics_reply, serve


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("brainstream_test_things", "things", registry=registry).inc(3)
    return registry


@contextmanager
def _serving(state: dict[str, Any], **kwargs: Any) -> Iterator[ThreadingHTTPServer]:
    server = serve(_registry(), lambda: state, 0, **kwargs)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_the_server_binds_loopback_unless_told_otherwise() -> None:
    with _serving({"ok": True}) as server:
        assert server.server_address[0] == LOOPBACK == "127.0.0.1"


def test_metrics_and_health_answer_as_the_shared_replies() -> None:
    state: dict[str, Any] = {"ok": True, "detail": 1}
    with _serving(state) as server:
        base = f"http://127.0.0.1:{server.server_port}"
        metrics = httpx.get(f"{base}/metrics")
        assert metrics.status_code == 200
        assert "brainstream_test_things_total 3.0" in metrics.text
        assert metrics.headers["content-type"] == metrics_reply(_registry()).content_type
        assert httpx.get(f"{base}/health").json() == state
        state["ok"] = False
        assert httpx.get(f"{base}/health").status_code == 503
        assert httpx.get(f"{base}/other").status_code == 404


def test_health_is_503_unless_ok_is_true() -> None:
    assert health_reply({"ok": True}).status == 200
    assert health_reply({"ok": False}).status == 503
    assert health_reply({}).status == 503
    assert health_reply({"ok": True, "n": 2}).body == b'{"ok": true, "n": 2}'
