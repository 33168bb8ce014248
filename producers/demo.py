"""Realistic demo traffic: users who log in, browse, work on tasks, search, and log out.

Pure: a seeded ``random.Random`` drives it, so the mix is reproducible and testable. Types
registered by other packages get properties from their own samples in :data:`EXTRA`, or are
skipped (and named by :meth:`DemoTraffic.skipped`) when nobody taught the demo about them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

Props = dict[str, Any]
Maker = Callable[[random.Random, str], Props]

PAGES = ("/dashboard", "/tasks", "/tasks/{id}", "/projects/{id}", "/settings", "/search")
FIELDS = ("title", "status", "priority", "assignee", "due_date", "labels")


def _page(rng: random.Random, _user: str) -> Props:
    path = rng.choice(PAGES).format(id=rng.randint(1, 500))
    return {"path": path, "referrer": rng.choice(PAGES[:2]), "duration_ms": rng.randint(50, 60_000)}


def _task(rng: random.Random) -> str:
    return f"task-{rng.randint(1, 5000)}"


MAKERS: dict[str, tuple[int, Maker]] = {
    "page_view": (40, _page),
    "task_created": (8, lambda r, _u: {"task_id": _task(r), "priority": r.choice(("low", "high"))}),
    "task_updated": (
        12,
        lambda r, _u: {
            "task_id": _task(r),
            "changed_fields": r.sample(FIELDS, r.randint(1, 3)),
            "status": r.choice(("todo", "in_progress", "blocked", "done")),
        },
    ),
    "task_deleted": (2, lambda r, _u: {"task_id": _task(r)}),
    "file_upload": (
        3,
        lambda r, _u: {
            "file_id": f"file-{r.randint(1, 10**6)}",
            "mime_type": r.choice(("image/png", "application/pdf", "text/csv")),
            "size_bytes": r.randint(1_000, 50_000_000),
        },
    ),
    "search": (
        10,
        lambda r, _u: {
            "query_length": r.randint(1, 60),
            "result_count": r.randint(0, 500),
            "filters": r.sample(("status", "owner", "project"), r.randint(0, 2)),
            "latency_ms": r.randint(2, 900),
        },
    ),
    "login": (4, lambda r, _u: {"method": r.choice(("password", "oauth", "sso", "passkey"))}),
    "logout": (
        3,
        lambda r, _u: {
            "reason": r.choice(("user", "timeout")),
            "session_seconds": r.randint(30, 30_000),
        },
    ),
    "profile_update": (1, lambda r, _u: {"changed_fields": r.sample(FIELDS[:4], 1)}),
    "github_api_call": (
        17,
        lambda r, _u: {
            "endpoint": r.choice(("/repos/{owner}/{repo}", "/repos/{owner}/{repo}/pulls")),
            "method": r.choice(("GET", "GET", "POST")),
            "status": r.choice((200, 200, 200, 304, 404, 403)),
            "resource": "core",
            "rate_limit_remaining": r.randint(0, 5000),
            "latency_ms": r.randint(20, 2_000),
        },
    ),
}


class DemoTraffic:
    """``next()`` -> ``(type_name, user_id, properties)``, weighted like a real app."""

    def __init__(self, types: list[str], users: int, rng: random.Random) -> None:
        known = [t for t in types if t in MAKERS]
        self.skipped = sorted(set(types) - set(known))
        self._types = known
        self._weights = [MAKERS[t][0] for t in known]
        self._users = [f"user-{i:05d}" for i in range(max(1, users))]
        self._rng = rng

    def next(self) -> tuple[str, str, Props]:
        rng = self._rng
        type_name = rng.choices(self._types, self._weights)[0]
        user = rng.choice(self._users)
        return type_name, user, MAKERS[type_name][1](rng, user)
