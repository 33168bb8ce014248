"""What both middlewares record: the request's path, a same-app referrer, the duration."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

_MAX_PATH = 2048


def page_view_properties(path: str, referer: str | None, duration_ms: int) -> dict[str, Any]:
    """Properties of a ``page_view``: no query string, no host (they may carry personal data)."""
    props: dict[str, Any] = {"path": _path(path), "duration_ms": max(0, duration_ms)}
    if referer:
        ref = _path(urlsplit(referer).path or "")
        if ref:
            props["referrer"] = ref
    return props


def _path(raw: str) -> str:
    if not raw.startswith("/"):
        return ""
    return "".join(ch if not ch.isspace() else "%20" for ch in raw)[:_MAX_PATH]
