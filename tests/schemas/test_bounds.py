"""The contract's own bounds (``schemas.envelope.bounded``) and strict JSON types, on the
built-in types and on a custom type that declares no bounds (``count: int, value: float``).

Every input of issue 17 items 1-3 is a case here; the property tests drive extreme values
through the model path and the plain (fast) path and require the same verdict from both:
accepted within the bounds, or refused with the field and rule named, never another exception.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import schemas
from schemas.envelope import INT_MAX, INT_MIN, OCCURRED_MAX, OCCURRED_MIN
from tests.fixtures.custom import Meter, meter_registered

EVENT_ID = "0190a5a0-0000-7000-8000-000000000000"


@pytest.fixture(autouse=True)
def meter() -> Iterator[type[Meter]]:
    with meter_registered() as cls:
        yield cls


def record(type_name: str, properties: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event_id": EVENT_ID,
        "type": type_name,
        "user_id": "u1",
        "occurred_at": "2026-01-01T00:00:00Z",
        "source": "web",
        "schema_version": 1,
        "properties": properties,
    }
    doc.update(envelope)
    return doc


def refusal(value: bytes) -> schemas.InvalidEvent:
    """``decode`` refuses ``value`` and the plain (fast) validator does too."""
    with pytest.raises(ValidationError):
        schemas.REGISTRY.plain.validate_json(value)
    with pytest.raises(schemas.InvalidEvent) as info:
        schemas.decode(value)
    return info.value


def meter_event(properties: dict[str, Any]) -> schemas.Event:
    return schemas.REGISTRY.build(
        "meter", {"user_id": "u1", "source": "web", "properties": properties}
    )


# --- item 1: datetimes, integers, floats beyond what a consumer holds ------------------------


def test_a_datetime_whose_utc_normalisation_overflows_is_refused_not_raised() -> None:
    one_ad = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    with pytest.raises(schemas.InvalidEvent) as info:
        schemas.REGISTRY.build(
            "page_view",
            {"user_id": "u1", "source": "web", "occurred_at": one_ad, "properties": {"path": "/x"}},
        )
    assert str(info.value) == "occurred_at: out of range"
    assert [e.rule for e in info.value.errors] == ["out_of_range"]


@pytest.mark.parametrize(
    "occurred_at",
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-23:59",
        "1969-12-31T23:59:59.999999Z",
        "9999-01-01T00:00:00Z",
        "1970-01-01T00:30:00+01:00",
    ],
)
def test_a_wire_datetime_outside_the_range_is_refused_as_out_of_range(occurred_at: str) -> None:
    error = refusal(orjson.dumps(record("page_view", {"path": "/x"}, occurred_at=occurred_at)))
    assert str(error) == "occurred_at: out of range"
    assert error.stage == "validate"


def test_the_range_bounds_are_inclusive_below_and_exclusive_above() -> None:
    low = schemas.decode(
        orjson.dumps(record("page_view", {"path": "/x"}, occurred_at="1970-01-01T01:00:00+01:00"))
    )
    assert low.occurred_at == OCCURRED_MIN
    high = OCCURRED_MAX - timedelta(microseconds=1)
    last = schemas.decode(
        orjson.dumps(record("page_view", {"path": "/x"}, occurred_at=high.isoformat()))
    )
    assert last.occurred_at == high


def test_a_custom_integer_beyond_64_bits_is_refused_as_out_of_range() -> None:
    value = orjson.dumps(record("meter", {"count": 0, "value": 1.0})).replace(
        b'"count":0', b'"count":18446744073709551616'
    )
    error = refusal(value)
    assert str(error) == "properties.count: out of range"
    for count in (2**64, INT_MAX + 1, INT_MIN - 1):
        with pytest.raises(schemas.InvalidEvent, match=r"^properties\.count: out of range$"):
            meter_event({"count": count, "value": 1.0})
    for count in (INT_MAX, INT_MIN):
        meter_event({"count": count, "value": 1.0})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_custom_float_that_is_not_finite_is_refused(value: float) -> None:
    with pytest.raises(schemas.InvalidEvent) as info:
        meter_event({"count": 1, "value": value})
    assert [(e.field, e.rule) for e in info.value.errors] == [("properties.value", "finite_number")]


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_a_non_finite_float_on_the_wire_is_refused(literal: bytes) -> None:
    value = orjson.dumps(record("meter", {"count": 1, "value": 0.5})).replace(b"0.5", literal)
    error = refusal(value)
    assert error.fields == ["properties.value"]


# --- item 3: strict JSON types ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"occurred_at": 0}, "occurred_at"),
        ({"occurred_at": 1767225600}, "occurred_at"),
        ({"occurred_at": 1767225600.5}, "occurred_at"),
        ({"schema_version": "1"}, "schema_version"),
        ({"schema_version": True}, "schema_version"),
        ({"properties": {"path": "/x", "duration_ms": True}}, "properties.duration_ms"),
        ({"properties": {"path": "/x", "duration_ms": "1200"}}, "properties.duration_ms"),
        ({"properties": {"path": "/x", "duration_ms": 1200.0}}, "properties.duration_ms"),
    ],
)
def test_type_confused_values_are_refused_at_validate(change: dict[str, Any], field: str) -> None:
    error = refusal(orjson.dumps({**record("page_view", {"path": "/x"}), **change}))
    assert error.fields == [field]
    assert error.stage == "validate"


def test_the_python_path_refuses_a_bool_for_an_integer() -> None:
    for props in ({"path": "/x", "duration_ms": True}, {"path": "/x", "duration_ms": "1200"}):
        with pytest.raises(schemas.InvalidEvent) as info:
            schemas.REGISTRY.build(
                "page_view", {"user_id": "u1", "source": "web", "properties": props}
            )
        assert info.value.fields == ["properties.duration_ms"]
    with pytest.raises(schemas.InvalidEvent):
        meter_event({"count": True, "value": 1.0})
    with pytest.raises(schemas.InvalidEvent):
        meter_event({"count": 1, "value": True})
    # an integer is a number: JSON has no separate float type
    assert meter_event({"count": 1, "value": 2}).properties.value == 2


# --- properties: both paths agree, nothing but InvalidEvent escapes --------------------------

offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda m: timezone(timedelta(minutes=m))
)
any_datetime = st.datetimes(timezones=offsets)


def _verdict(value: bytes) -> tuple[str, Any]:
    """('ok', event) or ('refused', (fields, rules)) from decode; the plain validator must
    agree (it may only defer a record to the model's path, never accept what decode refuses)."""
    try:
        event = schemas.decode(value)
    except schemas.InvalidEvent as exc:
        try:
            schemas.REGISTRY.plain.validate_json(value)
        except ValidationError:
            pass
        else:
            raise AssertionError("the plain validator accepts what decode refuses") from None
        return "refused", (exc.fields, [e.rule for e in exc.errors])
    return "ok", event


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@example(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))))
@example(datetime.max.replace(tzinfo=timezone(timedelta(hours=-23, minutes=-59))))
@example(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
@given(any_datetime)
def test_any_datetime_with_any_offset_is_in_range_or_refused(when: datetime) -> None:
    value = orjson.dumps(record("page_view", {"path": "/x"}, occurred_at=when.isoformat()))
    verdict, detail = _verdict(value)
    in_range = OCCURRED_MIN <= when < OCCURRED_MAX
    if in_range:
        assert verdict == "ok"
        assert detail.occurred_at == when and detail.occurred_at.utcoffset() == timedelta(0)
    else:
        assert (verdict, detail) == ("refused", (["occurred_at"], ["out_of_range"]))
    try:
        built = schemas.REGISTRY.build(
            "page_view",
            {"user_id": "u1", "source": "web", "occurred_at": when, "properties": {"path": "/x"}},
        )
    except schemas.InvalidEvent as exc:
        assert not in_range and str(exc) == "occurred_at: out of range"
    else:
        assert in_range and built.occurred_at == when


json_numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.booleans(),
    st.text(max_size=5),
    st.none(),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(json_numbers, json_numbers)
def test_any_count_and_value_are_bounded_or_refused(count: Any, value: Any) -> None:
    text = json.dumps(record("meter", {"count": count, "value": value}))  # NaN/Infinity literals
    verdict, detail = _verdict(text.encode())
    count_ok = type(count) is int and INT_MIN <= count <= INT_MAX
    value_ok = type(value) in (int, float) and math.isfinite(value)
    if count_ok and value_ok:
        assert verdict == "ok"
        assert orjson.loads(schemas.encode(detail))["properties"] == {
            "count": count,
            "value": float(value),
        }
    else:
        assert verdict == "refused"
        fields, _rules = detail
        expected = {"properties.count"} if not count_ok else set()
        expected |= {"properties.value"} if not value_ok else set()
        assert set(fields) == expected


# --- the decoder and the exported JSON Schema agree on type-confused values ------------------

CONFUSED: list[Any] = [
    0,
    1,
    -1,
    1.5,
    1e300,
    2**63,
    -(2**63) - 1,
    True,
    False,
    None,
    "",
    "1200",
    "x",
    "2026-01-01T00:00:00Z",
    [],
    [1],
    ["a"],
    {},
    {"a": 1},
]
"""Values of every JSON type, put in place of every field of a valid record of every type."""


def _field_paths(doc: dict[str, Any]) -> list[tuple[str, ...]]:
    paths = [(k,) for k in doc if k != "properties"]
    return paths + [("properties", k) for k in doc["properties"]]


def _with(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(doc))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


def test_decoder_and_json_schema_agree_on_type_confused_values() -> None:
    import jsonschema

    from schemas.jsonschema import render
    from tests.fixtures.samples import SAMPLE_PROPERTIES

    validator = jsonschema.Draft202012Validator(json.loads(render()["event.schema.json"]))
    samples = {**SAMPLE_PROPERTIES, "meter": {"count": 3, "value": 0.5}}
    checked = 0
    for name in schemas.REGISTRY.names():
        base = orjson.loads(
            schemas.encode(
                schemas.REGISTRY.build(
                    name, {"user_id": "u1", "source": "web", "properties": samples[name]}
                )
            )
        )
        assert validator.is_valid(base), name
        for path in _field_paths(base):
            formatted = path in (("event_id",), ("occurred_at",))
            for value in CONFUSED:
                if formatted and isinstance(value, str):
                    continue  # formats (uuid, date-time) are not checked by this validator
                doc = _with(base, path, value)
                schema_ok = validator.is_valid(doc)
                try:
                    schemas.decode(json.dumps(doc).encode())
                    decoded = True
                except schemas.InvalidEvent:
                    decoded = False
                checked += 1
                if schema_ok and not decoded:
                    # JSON Schema's "integer" takes 1e300 (a zero fraction); the strict decoder
                    # takes integer literals only: stricter, never laxer, than the schema
                    assert value == 1e300 and isinstance(value, float), (name, path, value)
                    continue
                assert schema_ok == decoded, (name, path, value, schema_ok)
    assert checked > 1000


# --- strings: no U+0000, which Postgres text and jsonb cannot hold ----------------------------


def test_a_nul_in_any_string_is_refused_on_both_paths() -> None:
    for type_name, props, field in [
        ("login", {"method": "oauth", "provider": "a\u0000b"}, "properties.provider"),
        ("page_view", {"path": "/a\u0000"}, "properties.path"),
    ]:
        with pytest.raises(schemas.InvalidEvent) as info:
            schemas.REGISTRY.build(
                type_name, {"user_id": "u1", "source": "web", "properties": props}
            )
        assert info.value.fields == [field]
        error = refusal(orjson.dumps(record(type_name, props)))
        assert error.fields == [field]
    error = refusal(orjson.dumps(record("login", {"method": "oauth", "provider": "\u0000"})))
    assert str(error) == "properties.provider: must not contain U+0000"


def test_a_custom_pattern_that_admits_nul_is_guarded_after_it() -> None:
    from typing import Annotated, Literal

    from pydantic import Field

    class NoteProperties(schemas.Properties):
        text: Annotated[str, Field(pattern=r"^.+$")]
        tag: Annotated[str, Field(pattern=r"^[a-z]+$")]

    class Note(schemas.Event):
        type: Literal["note"] = "note"
        properties: NoteProperties

    registry = schemas.EventRegistry(load_entry_points=False)
    registry.register(Note)
    with pytest.raises(schemas.InvalidEvent) as info:
        registry.build(
            "note",
            {"user_id": "u1", "source": "web", "properties": {"text": "a\u0000", "tag": "x"}},
        )
    assert [(e.field, e.rule) for e in info.value.errors] == [("properties.text", "nul_character")]
    assert registry.build(
        "note", {"user_id": "u1", "source": "web", "properties": {"text": "a b", "tag": "x"}}
    )


@pytest.mark.parametrize(
    ("pattern", "admits"),
    [
        (r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$", False),
        (r"^/[^\s\x00]*$", False),
        (r"^[a-z0-9.+\-]+/[a-z0-9.+\-]+$", False),
        (r"^/[^\s]*$", True),
        (r"^.*$", True),
        (r"^\S+$", True),
        (r"^\W$", True),
        (r"^[\x00-\x7f]+$", True),
        (r"^[[:alpha:]]+$", True),
        (r"^[abc", True),
    ],
)
def test_which_patterns_are_proven_to_exclude_nul(pattern: str, admits: bool) -> None:
    from schemas.envelope import _admits_nul

    assert _admits_nul(pattern) is admits
