"""Who the current events belong to: a contextvar, so threads and asyncio tasks never mix.

``with tracker.user("u-42", session_id="s-1"):`` sets it; every ``track()`` inside (in this
thread, or in tasks created inside it) is stamped with that user. The session/request id
rides in a Kafka header (``bs.session_id`` / ``bs.request_id``): the envelope stays as the
contract defines it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError

from schemas import FieldError, InvalidEvent
from schemas.envelope import UserId

H_SESSION = "bs.session_id"
H_REQUEST = "bs.request_id"

_ID_ADAPTER: TypeAdapter[str] = TypeAdapter(UserId)


@dataclass(frozen=True, slots=True)
class UserContext:
    """A validated user id, its record key, and the extra headers of its session/request."""

    user_id: str
    key: bytes
    extra_headers: tuple[tuple[str, bytes], ...] = ()


_current: ContextVar[UserContext | None] = ContextVar("brainstream_user", default=None)


def check_id(value: object, field: str) -> str:
    """Validate an id with the contract's ``UserId`` rule (letters, digits, ``_.:-``).

    Raises:
        InvalidEvent: ``value`` breaks the rule (the error names ``field``).
    """
    try:
        return _ID_ADAPTER.validate_python(value, strict=True)
    except ValidationError as exc:
        rules = [str(e["type"]) for e in exc.errors(include_url=False, include_input=False)]
        message = "must be a pseudonymous id of 1-128 chars [A-Za-z0-9_.:-]"
        raise InvalidEvent([FieldError(field, rule, message) for rule in rules]) from None


def make_context(
    user_id: str, session_id: str | None = None, request_id: str | None = None
) -> UserContext:
    check_id(user_id, "user_id")
    extra: list[tuple[str, bytes]] = []
    if session_id is not None:
        extra.append((H_SESSION, check_id(session_id, "session_id").encode()))
    if request_id is not None:
        extra.append((H_REQUEST, check_id(request_id, "request_id").encode()))
    return UserContext(user_id, user_id.encode(), tuple(extra))


def current() -> UserContext | None:
    return _current.get()


@contextmanager
def user(
    user_id: str, *, session_id: str | None = None, request_id: str | None = None
) -> Iterator[UserContext]:
    """Stamp events tracked inside the block with ``user_id`` (raises on an invalid id)."""
    token = _current.set(make_context(user_id, session_id, request_id))
    try:
        yield _current.get()  # type: ignore[misc]
    finally:
        _current.reset(token)


def set_user(ctx: UserContext | None) -> None:
    """Set the user for the rest of the current context (for middleware run in a copied one)."""
    _current.set(ctx)
