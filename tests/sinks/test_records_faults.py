"""One record can never stop the sink's decoding: the inputs of issue 17 (a datetime whose UTC
normalisation overflows, an integer beyond 64 bits, NaN, type-confused values) and any fault of
the decoder or of building a row become a rejection of that record with its stage and rule,
and its neighbours become rows."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas
import schemas.acceptance
from schemas import encode
from sinks.config import SinkConfig
from sinks.records import Rejection, Row, split, to_row
from tests.fixtures.custom import meter_registered
from tests.fixtures.samples import sample_event
from tests.sinks.conftest import message

CONFIG = SinkConfig()
TS = int(time.time() * 1000) + 3_600_000  # the samples are stamped now: none is ahead


@pytest.fixture(autouse=True)
def meter() -> Iterator[None]:
    with meter_registered():
        yield


def _valid(type_name: str = "page_view", **props: Any) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(encode(sample_event(type_name, user_id="u1")))
    doc["properties"].update(props)
    return doc


def _meter(count: Any = 1, value: Any = 0.5) -> bytes:
    doc = _valid("page_view")
    doc.update(type="meter", properties={"count": count, "value": value})
    return json.dumps(doc).encode()  # json, not orjson: it writes 2**64, NaN and Infinity


POISON: dict[str, tuple[bytes, str, str, str]] = {
    "year-1+01:00": (
        orjson.dumps({**_valid(), "occurred_at": "0001-01-01T00:00:00+01:00"}),
        "validate",
        "occurred_at",
        "out_of_range",
    ),
    "count-2**64": (_meter(count=2**64), "validate", "properties.count", "out_of_range"),
    "value-NaN": (_meter(value=math.nan), "validate", "properties.value", "finite_number"),
    "value-inf": (_meter(value=math.inf), "validate", "properties.value", "finite_number"),
    "occurred_at-0": (
        orjson.dumps({**_valid(), "occurred_at": 0}),
        "validate",
        "occurred_at",
        "datetime_type",
    ),
    "occurred_at-epoch-seconds": (
        orjson.dumps({**_valid(), "occurred_at": 1767225600}),
        "validate",
        "occurred_at",
        "datetime_type",
    ),
    "duration_ms-true": (
        orjson.dumps(_valid(duration_ms=True)),
        "validate",
        "properties.duration_ms",
        "int_type",
    ),
    "duration_ms-string": (
        orjson.dumps(_valid(duration_ms="1200")),
        "validate",
        "properties.duration_ms",
        "int_type",
    ),
    "nul-in-a-string": (
        orjson.dumps(_valid("login", provider="a\u0000b")),
        "validate",
        "properties.provider",
        "nul_character",
    ),
}


@pytest.mark.parametrize("name", list(POISON))
def test_a_poison_record_between_two_neighbours_is_rejected_and_they_are_kept(name: str) -> None:
    value, stage, field, rule = POISON[name]
    before, after = _valid(), _valid()
    records = [
        message(orjson.dumps(before), offset=0, timestamp_ms=TS),
        message(value, offset=1, timestamp_ms=TS),
        message(orjson.dumps(after), offset=2, timestamp_ms=TS),
    ]
    rows, rejected = split(records, CONFIG)
    assert [r.kafka_offset for r in rows] == [0, 2]
    assert [r.origin.offset() for r in rejected] == [1]
    assert rejected[0].stage == stage
    assert [(e.field, e.rule) for e in rejected[0].errors] == [(field, rule)]


def _poison_marker(monkeypatch: pytest.MonkeyPatch, target: str, exc: Exception) -> None:
    """Make the fast path defer records whose path is ``/poison`` and ``target`` fail on them."""
    real_dumps = orjson.dumps

    def dumps(obj: Any, *args: Any, **kwargs: Any) -> bytes:
        if isinstance(obj, dict) and obj.get("path") == "/poison":
            raise TypeError("fast path refuses")
        return real_dumps(obj, *args, **kwargs)

    monkeypatch.setattr(orjson, "dumps", dumps)
    owner: Any = schemas.acceptance if target == "decode" else schemas.acceptance.Accept
    real = getattr(owner, target)

    def failing(*args: Any, **kwargs: Any) -> Any:
        blob = args[0]
        text = blob if isinstance(blob, bytes) else str(blob.event.properties)
        if b"/poison" in text if isinstance(text, bytes) else "/poison" in text:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, target, failing)


@pytest.mark.parametrize(
    ("target", "stage", "exc"),
    [
        ("decode", "decode", RecursionError("deep")),
        ("decode", "decode", OverflowError("date value out of range")),
        ("properties_json", "encode", TypeError("Integer exceeds 64-bit range")),
        ("properties_json", "encode", UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad")),
    ],
)
def test_any_fault_on_one_record_is_its_rejection_at_its_stage(
    monkeypatch: pytest.MonkeyPatch, target: str, stage: str, exc: Exception
) -> None:
    _poison_marker(monkeypatch, target, exc)
    records = [
        message(orjson.dumps(_valid(path=p)), offset=i, timestamp_ms=TS)
        for i, p in enumerate(["/a", "/poison", "/b"])
    ]
    rows, rejected = split(records, CONFIG)
    assert [r.kafka_offset for r in rows] == [0, 2]
    assert len(rejected) == 1
    letter = rejected[0]
    assert (letter.origin.offset(), letter.stage, letter.error_class) == (
        1,
        stage,
        type(exc).__name__,
    )
    assert [e.rule for e in letter.errors] == ["internal_error"]
    assert all(str(exc) not in e.message for e in letter.errors)  # the text may quote input


# --- property: any value in any field ends as a row or a named rejection ---------------------

offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda m: f"{'+' if m >= 0 else '-'}{abs(m) // 60:02d}:{abs(m) % 60:02d}"
)
wire_datetimes = st.one_of(
    st.builds(lambda d, o: d.isoformat() + o, st.datetimes(), offsets),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.datetimes().map(lambda d: d.isoformat()),  # naive
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
)
anything = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.booleans(),
    st.none(),
    st.text(max_size=20),
    st.lists(st.text(max_size=3), max_size=3),
    wire_datetimes,
)
fields = st.sampled_from(
    [
        ("occurred_at",),
        ("schema_version",),
        ("user_id",),
        ("source",),
        ("event_id",),
        ("properties", "path"),
        ("properties", "duration_ms"),
        ("properties", "referrer"),
        ("properties", "count"),
        ("properties", "value"),
        ("properties", "extra"),
    ]
)


def _record(field: tuple[str, ...], value: Any) -> bytes:
    meter = field[-1] in ("count", "value")
    doc = json.loads(_meter()) if meter else _valid()
    target = doc
    for key in field[:-1]:
        target = target[key]
    target[field[-1]] = value
    return json.dumps(doc).encode()


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(fields, st.one_of(anything, wire_datetimes)), min_size=1, max_size=6))
def test_any_value_in_any_field_ends_as_a_row_or_a_named_rejection(
    changes: list[tuple[tuple[str, ...], Any]],
) -> None:
    records = [message(orjson.dumps(_valid()), offset=0, timestamp_ms=TS)]
    records += [
        message(_record(field, value), offset=i + 1, timestamp_ms=TS)
        for i, (field, value) in enumerate(changes)
    ]
    rows, rejected = split(records, CONFIG)  # never raises
    assert len(rows) + len(rejected) == len(records)
    assert rows[0].kafka_offset == 0
    for row in rows:
        assert isinstance(row, Row)
        assert schemas.envelope.OCCURRED_MIN <= row.occurred_at < schemas.envelope.OCCURRED_MAX
        orjson.loads(row.properties)  # JSON that orjson (and so jsonb) reads
    for letter in rejected:
        assert isinstance(letter, Rejection) and letter.stage in ("decode", "validate")
        assert letter.errors and all(e.field and e.rule for e in letter.errors)


def test_a_fault_is_logged_with_the_record_coordinates(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_value: Any) -> Any:
        raise RecursionError("deep")

    monkeypatch.setattr(schemas.acceptance, "decode", broken)
    record = message(orjson.dumps(_valid()), offset=7, timestamp_ms=TS)
    with caplog.at_level("WARNING", logger="sinks.records"):
        rejection = to_row(record, CONFIG)
    assert isinstance(rejection, Rejection) and rejection.stage == "decode"
    assert "0:7 rejected at decode: RecursionError" in caplog.text
