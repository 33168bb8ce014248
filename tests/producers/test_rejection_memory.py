"""A rejected event costs nothing that outlives the call (issue 15).

Re-raising one shared, pre-built exception instance chains every raise's frames onto that
instance's traceback: 20,000 rejected ``track()`` calls held 20,000 frames. Each kind of
rejection below is made 100k times; the memory traced across the run stays bounded and the
traceback of each raised exception is as long as the first one's. The broker address is a
closed port (no broker needed: nothing is sent).
"""

from __future__ import annotations

import gc
import importlib
import pkgutil
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import Field

import schemas
from producers import Tracker
from schemas import Event, InvalidEvent, Properties
from schemas.config import KafkaSettings
from schemas.registry import EventRegistry

NOWHERE = KafkaSettings(bootstrap_servers="127.0.0.1:9")
CALLS = 100_000
BOUND = 1_000_000
"""Bytes the traced memory may grow by over 100k calls: 10 B a call (a leak is >100 B a call)."""


class BlobProperties(Properties):
    blob: str = Field(max_length=100_000)


class Blob(Event):
    type: Literal["blob"] = "blob"
    properties: BlobProperties


REGISTRY = EventRegistry(load_entry_points=False)
REGISTRY.register(Blob)
REGISTRY.register(schemas.REGISTRY.get("page_view"))
HUGE = "x" * (schemas.MAX_EVENT_BYTES + 10)
KINDS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "no_user": (("page_view",), {"path": "/x"}),
    "no_user_model_path": (("page_view",), {"path": "/x", "occurred_at": datetime.now(UTC)}),
    "ambiguous": (("page_view", "u1"), {"properties": {"path": "/x"}, "path": "/y"}),
    "oversize": (("blob", "u1"), {"blob": HUGE}),
    "oversize_model_path": (("blob", "u1"), {"blob": HUGE, "occurred_at": datetime.now(UTC)}),
    "invalid_property": (("page_view", "u1"), {"path": "relative"}),
    "unknown_type": (("no_such_type", "u1"), {}),
    "not_an_event": ((42, "u1"), {}),
    "invalid_user": (("page_view", "a@b.c"), {"path": "/x"}),
}


def _depth(exc: BaseException) -> int:
    """Entries in ``exc``'s traceback."""
    depth, tb = 0, exc.__traceback__
    while tb is not None:
        depth, tb = depth + 1, tb.tb_next
    return depth


def _bounded(call: Callable[[], object]) -> int:
    for _ in range(1_000):  # caches, counters, the rate-limited log's first lines
        call()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(CALLS):
            call()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def tracker(tmp_path_factory: pytest.TempPathFactory) -> Any:
    spool = tmp_path_factory.mktemp("spool")
    with Tracker(
        NOWHERE,
        topic="nowhere.events",
        source="unit",
        spool_dir=spool,
        prometheus=False,
        registry=REGISTRY,
    ) as tr:
        yield tr


@pytest.mark.parametrize("kind", list(KINDS))
def test_rejected_track_keeps_no_memory(tracker: Tracker, kind: str) -> None:
    args, kwargs = KINDS[kind]
    assert tracker.track(*args, **kwargs) is None
    grown = _bounded(lambda: tracker.track(*args, **kwargs))
    assert grown < BOUND, f"{kind}: {grown} B kept after {CALLS} rejected calls"


@pytest.mark.parametrize("kind", list(KINDS))
def test_strict_rejections_are_new_exceptions(tmp_path: Path, kind: str) -> None:
    """In strict mode the rejection reaches the caller: each is its own, with a fixed-size
    traceback (a shared instance grows one entry per raise)."""
    args, kwargs = KINDS[kind]
    seen: list[InvalidEvent] = []
    with Tracker(
        NOWHERE,
        topic="nowhere.events",
        source="unit",
        spool_dir=tmp_path,
        strict=True,
        registry=REGISTRY,
    ) as tr:
        for _ in range(50):
            with pytest.raises(InvalidEvent) as info:
                tr.track(*args, **kwargs)
            seen.append(info.value)
    assert len({id(e) for e in seen}) == len(seen), f"{kind}: one instance raised again"
    depths = {_depth(e) for e in seen}
    assert len(depths) == 1, f"{kind}: traceback grew: {sorted(depths)}"


DECODE_KINDS: dict[str, bytes | None] = {
    "empty": b"",
    "oversize": b"{" + b" " * schemas.MAX_EVENT_BYTES + b"}",
    "not_json": b"{nope",
    "unknown_type": b'{"type":"no_such_type","event_id":"x"}',
    "missing_recorded": (
        b'{"type":"page_view","user_id":"u1","source":"s","properties":{"path":"/x"}}'
    ),
}


@pytest.mark.parametrize("kind", list(DECODE_KINDS))
def test_decoder_rejections_keep_no_memory(kind: str) -> None:
    value = DECODE_KINDS[kind]
    first: list[int] = []

    def call() -> None:
        try:
            schemas.decode(value)
        except InvalidEvent as exc:
            depth = _depth(exc)
            if not first:
                first.append(depth)
            assert depth == first[0], f"{kind}: traceback grew"
        else:
            raise AssertionError(f"{kind}: decoded")

    grown = _bounded(call)
    assert grown < BOUND, f"{kind}: {grown} B kept after {CALLS} rejected decodes"


def test_no_module_holds_a_prebuilt_exception() -> None:
    """The kind, not the call sites: no module of any package keeps an exception instance
    (one that could be raised again), alone or in a module-level container."""
    shared = []
    for name in ("schemas", "producers", "sinks", "streams"):
        package = importlib.import_module(name)
        for info in pkgutil.walk_packages(package.__path__, f"{name}."):
            module = importlib.import_module(info.name)
            for attr, value in vars(module).items():
                values = value.values() if isinstance(value, dict) else [value]
                if isinstance(value, list | tuple | set | frozenset):
                    values = value
                shared += [f"{info.name}.{attr}" for v in values if isinstance(v, BaseException)]
    assert not shared, f"module-level exception instances (build one per raise): {shared}"
