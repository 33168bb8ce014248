"""ASGI and WSGI middleware on the real broker: user context inside the request, a page_view
recorded after the response with the right user, and the response not held up by it."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from producers import Tracker, current
from producers.middleware import TrackingMiddleware, WsgiTrackingMiddleware
from schemas.config import KafkaSettings, TopicSettings
from tests.producers.topic_reader import read_topic

pytestmark = pytest.mark.integration


def make(kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path) -> Tracker:
    return Tracker(kafka, topic=topics.events, source="web", spool_dir=tmp_path, strict=True)


def test_asgi_requests_are_tracked_with_their_user(
    kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    tracker = make(kafka_settings, topics, tmp_path)

    async def task(request: Request) -> PlainTextResponse:
        ctx = current()
        if ctx is None:  # no user resolved: no context, and the middleware records nothing
            return PlainTextResponse("")
        tracker.track("task_created", task_id=request.path_params["task_id"])
        return PlainTextResponse(ctx.user_id)

    app = TrackingMiddleware(
        Starlette(routes=[Route("/tasks/{task_id}", task)]),
        tracker,
        resolve_user=lambda scope: dict(scope["headers"]).get(b"x-user", b"").decode() or None,
    )

    async def requests() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            calls = [
                client.get(
                    f"/tasks/t{i}?q=secret",
                    headers={"x-user": f"user-{i % 4}", "referer": "http://app/dashboard?x=1"},
                )
                for i in range(40)
            ]
            anonymous = client.get("/tasks/anon")
            return [*await asyncio.gather(*calls), await anonymous]

    responses = asyncio.run(requests())
    assert [r.text for r in responses[:40]] == [f"user-{i % 4}" for i in range(40)]
    assert responses[40].text == ""
    tracker.close(30)

    records = read_topic(kafka_settings, topics.events, 80)
    created = {
        r.prop("task_id"): r.event.user_id for r in records if r.event.type == "task_created"
    }
    views = [r for r in records if r.event.type == "page_view"]
    assert created == {f"t{i}": f"user-{i % 4}" for i in range(40)}
    assert sorted((v.prop("path"), v.event.user_id) for v in views) == sorted(
        (f"/tasks/t{i}", f"user-{i % 4}") for i in range(40)
    )  # no query string: it may carry personal data
    assert {v.prop("referrer") for v in views} == {"/dashboard"}


def test_wsgi_requests_are_tracked_with_their_user(
    kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    tracker = make(kafka_settings, topics, tmp_path)
    order: list[str] = []

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        ctx = current()
        assert ctx is not None
        tracker.track("search", query_length=4, result_count=2)
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterable[bytes]:
            ctx_inside = current()
            assert ctx_inside is not None  # the body is produced in the request's context
            order.append("body")
            yield ctx_inside.user_id.encode()

        return body()

    app = WsgiTrackingMiddleware(wsgi_app, tracker, lambda environ: environ.get("HTTP_X_USER"))
    for i in range(20):
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": f"/search/{i}",
            "SCRIPT_NAME": "",
            "HTTP_X_USER": f"user-{i % 3}",
            "wsgi.input": io.BytesIO(),
        }
        result = app(environ, lambda status, headers: None)
        assert b"".join(result) == f"user-{i % 3}".encode()
        assert current() is None  # nothing leaks into the server's thread
        result.close()  # type: ignore[attr-defined]
    tracker.close(30)

    records = read_topic(kafka_settings, topics.events, 40)
    views = sorted(
        (r.prop("path"), r.event.user_id) for r in records if r.event.type == "page_view"
    )
    assert views == sorted((f"/search/{i}", f"user-{i % 3}") for i in range(20))
    searches = [r.event.user_id for r in records if r.event.type == "search"]
    assert sorted(searches) == sorted(f"user-{i % 3}" for i in range(20))


class Recorder:
    """Stands in for the tracker (not for Kafka): records the order of things."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def track(self, event: str, /, user_id: str | None = None, **props: Any) -> str:
        ctx = current()
        self.log.append(f"track {event} {ctx.user_id if ctx else None} {props['path']}")
        return "id"


def test_asgi_page_view_is_recorded_after_the_response_is_sent() -> None:
    log: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})

    async def send(message: Any) -> None:
        log.append(f"sent {message['type']}")

    async def receive() -> Any:
        return {"type": "http.request"}

    middleware = TrackingMiddleware(app, Recorder(log), resolve_user=lambda scope: "u-1")
    scope = {"type": "http", "path": "/x", "headers": [(b"x-session-id", b"s-1")]}
    asyncio.run(middleware(scope, receive, send))
    assert log == [
        "sent http.response.start",
        "sent http.response.body",
        "sent http.response.body",
        "track page_view u-1 /x",
    ]


def test_a_bad_user_id_from_the_resolver_does_not_break_the_request() -> None:
    log: list[str] = []

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    app = WsgiTrackingMiddleware(wsgi_app, Recorder(log), lambda environ: "someone@example.com")
    body = app({"PATH_INFO": "/x"}, lambda status, headers: None)
    assert list(body) == [b"ok"] and log == []
