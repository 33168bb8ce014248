"""WSGI middleware (Flask, Django): user context per request, page_view after the response.

The app and the iteration of its body run inside a copied ``contextvars`` context holding the
user, so nothing leaks between requests served by the same thread. The page_view is tracked
in ``close()``, which the server calls after it sent the body.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from producers import context
from producers.middleware.pageview import page_view_properties

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class WsgiTrackingMiddleware:
    """``app.wsgi_app = WsgiTrackingMiddleware(app.wsgi_app, tracker, resolve_user)``."""

    def __init__(
        self,
        app: WSGIApp,
        tracker: Any,
        resolve_user: Callable[[Environ], str | None],
        *,
        track_paths: Callable[[str], bool] = lambda _path: True,
        session_header: str = "HTTP_X_SESSION_ID",
    ) -> None:
        self.app = app
        self.tracker = tracker
        self.resolve_user = resolve_user
        self.track_paths = track_paths
        self.session_header = session_header

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        user_id = self.resolve_user(environ)
        if user_id is None:
            return self.app(environ, start_response)
        try:
            ctx = context.make_context(user_id, session_id=environ.get(self.session_header))
        except Exception:  # an invalid id from the resolver must not break the request
            return self.app(environ, start_response)
        started = time.monotonic()
        run = contextvars.copy_context()
        run.run(context.set_user, ctx)
        body = run.run(self.app, environ, start_response)
        return _Body(body, run, lambda: self._page_view(environ, started))

    def _page_view(self, environ: Environ, started: float) -> None:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "/")
        if self.track_paths(path):
            ms = int((time.monotonic() - started) * 1000)
            props = page_view_properties(path, environ.get("HTTP_REFERER"), ms)
            self.tracker.track("page_view", **props)


class _Body:
    """The app's body iterable, iterated and closed inside the request's context."""

    def __init__(
        self, body: Iterable[bytes], run: contextvars.Context, done: Callable[[], None]
    ) -> None:
        self._body = body
        self._iter: Iterator[bytes] | None = None
        self._run = run
        self._done = done

    def __iter__(self) -> Iterator[bytes]:
        self._iter = iter(self._body)
        return self

    def __next__(self) -> bytes:
        assert self._iter is not None
        return self._run.run(next, self._iter)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                self._run.run(close)
        finally:
            self._run.run(self._done)
