"""The user context follows threads and asyncio tasks, never leaks between them."""

from __future__ import annotations

import asyncio
import threading

import pytest

from producers import context
from schemas import InvalidEvent


def current_user() -> str | None:
    ctx = context.current()
    return ctx.user_id if ctx else None


def test_threads_do_not_share_the_user() -> None:
    seen: dict[str, str | None] = {}
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        with context.user(f"user-{i}"):
            barrier.wait()
            seen[f"user-{i}"] = current_user()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(k == v for k, v in seen.items()) and len(seen) == 8
    assert current_user() is None


def test_tasks_do_not_share_the_user() -> None:
    async def work(i: int) -> tuple[str, str | None]:
        with context.user(f"user-{i}"):
            await asyncio.sleep(0.001 * (i % 3))
            return f"user-{i}", current_user()

    async def main() -> list[tuple[str, str | None]]:
        return await asyncio.gather(*(work(i) for i in range(20)))

    assert all(a == b for a, b in asyncio.run(main()))


def test_session_and_request_ids_become_headers() -> None:
    with context.user("u-1", session_id="s-1", request_id="r-1") as ctx:
        assert ctx.key == b"u-1"
        assert dict(ctx.extra_headers) == {"bs.session_id": b"s-1", "bs.request_id": b"r-1"}


@pytest.mark.parametrize("bad", ["", "a@b.com", "John Smith", "x" * 129, 42])
def test_personal_or_malformed_ids_are_refused(bad: object) -> None:
    with pytest.raises(InvalidEvent) as info, context.user(bad):  # type: ignore[arg-type]
        pass
    assert info.value.fields[0] == "user_id"
