"""ASGI middleware (Starlette, FastAPI): user context per request, page_view after the response.

The page_view is tracked after the last body chunk was handed to the server (like Next.js
``after()``); ``track()`` costs microseconds and does no I/O, so the response is not delayed.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from producers import context
from producers.middleware.pageview import page_view_properties

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
UserResolver = Callable[[Scope], "str | Awaitable[str | None] | None"]


class TrackingMiddleware:
    """``app = TrackingMiddleware(app, tracker, resolve_user=lambda scope: ...)``.

    ``resolve_user`` gets the ASGI scope (sync or async) and returns a pseudonymous user id or
    None (then no user context is set and no page_view is recorded). ``track_paths`` filters.
    """

    def __init__(
        self,
        app: ASGIApp,
        tracker: Any,
        resolve_user: UserResolver,
        *,
        track_paths: Callable[[str], bool] = lambda _path: True,
        session_header: str = "x-session-id",
    ) -> None:
        self.app = app
        self.tracker = tracker
        self.resolve_user = resolve_user
        self.track_paths = track_paths
        self.session_header = session_header.lower().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        user_id = self.resolve_user(scope)
        if inspect.isawaitable(user_id):
            user_id = await user_id
        if user_id is None:
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        session = _header(scope, self.session_header)
        try:
            ctx = context.make_context(user_id, session_id=session)
        except Exception:  # an invalid id from the resolver must not break the request
            ctx = None
        if ctx is None:
            await self.app(scope, receive, send)
            return
        token = context._current.set(ctx)
        try:
            await self.app(scope, receive, self._after(scope, send, started))
        finally:
            context._current.reset(token)

    def _after(self, scope: Scope, send: Send, started: float) -> Send:
        async def send_then_track(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                path = scope.get("path", "/")
                if self.track_paths(path):
                    referer = _header(scope, b"referer")
                    ms = int((time.monotonic() - started) * 1000)
                    self.tracker.track("page_view", **page_view_properties(path, referer, ms))

        return send_then_track


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None
