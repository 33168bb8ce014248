"""One acceptance rule: the sink, the worker's path and the export give every record the same
verdict (accepted at the same time, or refused), under both policies of the one setting."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from confluent_kafka import Message

from schemas import encode
from schemas.acceptance import (
    FUTURE_SKEW,
    ORIGINAL_OCCURRED_AT,
    Accept,
    AcceptanceRule,
    AcceptanceSettings,
    FuturePolicy,
    Reject,
    judge,
)
from schemas.accepted import decode_batch, encode_batch
from sinks.config import SinkConfig
from sinks.export.config import Filters
from sinks.export.shaping import Shaper, ShapeSpec, Task
from sinks.forward import accepted_batches, epoch_us
from sinks.records import split
from streams.fold import fold
from tests.fixtures.samples import sample_event
from tests.sinks.conftest import message

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
SKEW = timedelta(seconds=AcceptanceRule().future_skew_seconds)


def _records() -> list[Message]:
    """One record of each kind the rule tells apart, offsets 0.. on one partition."""

    def event(at: datetime, user: str = "u1") -> bytes:
        return encode(sample_event("login", occurred_at=at, user_id=user))

    unknown_version = orjson.loads(event(T0))
    unknown_version["schema_version"] = 99
    cases: list[tuple[bytes | None, list[tuple[str, str | bytes | None]] | None, int | None]] = [
        (event(T0), [("bs.schema_version", b"1")], T0_MS),  # as written
        (event(T0 + timedelta(minutes=30)), None, T0_MS),  # within the skew
        (event(T0 + SKEW), None, T0_MS),  # exactly at the skew: kept
        (event(T0 + SKEW + timedelta(milliseconds=1)), None, T0_MS),  # just beyond
        (event(T0 + timedelta(days=3), "u2"), None, T0_MS),  # far ahead
        (event(T0 + timedelta(days=3), "u3"), None, None),  # no record time: kept
        (event(T0 - timedelta(days=400)), None, T0_MS),  # late: kept as it is
        (b"{not json", None, T0_MS),
        (b"", None, T0_MS),
        (orjson.dumps(unknown_version), None, T0_MS),
        (event(T0), [("bs.schema_version", b"2")], T0_MS),  # header contradicts the value
    ]
    return [
        message(value, headers=headers, offset=i, timestamp_ms=ts)
        for i, (value, headers, ts) in enumerate(cases)
    ]


Verdicts = dict[int, datetime | None]
"""Offset -> the time stored for an accepted record, ``None`` for a refused one."""


def _sink(records: list[Message], rule: AcceptanceRule) -> Verdicts:
    rows, rejected = split(records, SinkConfig(acceptance=rule))
    verdicts: Verdicts = {r.kafka_offset: r.occurred_at for r in rows}
    verdicts.update({r.origin.offset(): None for r in rejected})  # type: ignore[misc]
    return verdicts


def _worker(records: list[Message], rule: AcceptanceRule) -> Verdicts:
    """What the worker folds: the accepted stream's record for this range, as it decodes it."""
    rows, _rejected = split(records, SinkConfig(acceptance=rule))
    (batch,) = accepted_batches("t.events", {0: (0, len(records) - 1)}, rows)
    received = decode_batch(encode_batch(batch))
    assert fold(received).events == len(received)
    verdicts: Verdicts = dict.fromkeys(range(len(records)))
    for offset, us in zip(received.offsets, received.occurred_at_us, strict=True):
        verdicts[offset] = T0 + timedelta(microseconds=us - epoch_us(T0))
    return verdicts


def _export(records: list[Message], rule: AcceptanceRule) -> Verdicts:
    spec = ShapeSpec(("jsonl",), Filters(), frozenset(), upcast=False, rule=rule)
    task = Task(
        0,
        [r.offset() for r in records],  # type: ignore[misc]
        [r.value() for r in records],
        None,
        [r.timestamp()[1] for r in records],
        [r.headers() for r in records],
    )
    shaped = Shaper(spec).shape(task)
    assert shaped.jsonl is not None
    verdicts: Verdicts = dict.fromkeys(range(len(records)))
    for line in shaped.jsonl.splitlines():
        row = json.loads(line)
        verdicts[row["kafka_offset"]] = datetime.fromisoformat(row["occurred_at"])
    return verdicts


def _judged(records: list[Message], rule: AcceptanceRule) -> Verdicts:
    verdicts: Verdicts = {}
    for r in records:
        verdict = judge(r.value(), r.headers(), r.timestamp()[1], rule)
        verdicts[r.offset()] = verdict.occurred_at if isinstance(verdict, Accept) else None  # type: ignore[index]
    return verdicts


@pytest.mark.parametrize("policy", ["clamp", "reject"])
def test_the_sink_the_worker_and_the_export_give_every_record_the_same_verdict(
    policy: FuturePolicy,
) -> None:
    rule = AcceptanceRule(future_policy=policy)
    records = _records()
    expected = _judged(records, rule)
    assert _sink(records, rule) == expected
    assert _worker(records, rule) == expected
    assert _export(records, rule) == expected
    ahead = {3, 4}  # beyond the skew, with a record time
    if policy == "clamp":
        assert {o for o, at in expected.items() if at is None} == {7, 8, 9, 10}
        assert all(expected[o] == T0 for o in ahead)
    else:
        assert {o for o, at in expected.items() if at is None} == {7, 8, 9, 10, *ahead}
    assert expected[5] == T0 + timedelta(days=3) and expected[6] == T0 - timedelta(days=400)


def test_a_clamped_record_keeps_its_own_time_in_the_sink_and_the_export_alike() -> None:
    rule = AcceptanceRule()
    far = T0 + timedelta(days=3)
    record = message(encode(sample_event("login", occurred_at=far)), timestamp_ms=T0_MS)
    rows, _ = split([record], SinkConfig(acceptance=rule))
    spec = ShapeSpec(("jsonl",), Filters(), frozenset(), upcast=False, rule=rule)
    shaped = Shaper(spec).shape(Task(0, [0], [record.value()], None, [T0_MS], [None]))
    assert shaped.jsonl is not None
    exported = json.loads(shaped.jsonl)["properties"]
    assert json.loads(rows[0].properties) == exported
    assert exported[ORIGINAL_OCCURRED_AT] == far.isoformat()


def test_a_reject_names_its_rule_and_stage() -> None:
    far = encode(sample_event("login", occurred_at=T0 + timedelta(days=3)))
    verdict = judge(far, None, T0_MS, AcceptanceRule(future_policy="reject"))
    assert isinstance(verdict, Reject)
    assert (verdict.stage, verdict.reason) == ("validate", FUTURE_SKEW)
    broken = judge(b"{", None, T0_MS, AcceptanceRule())
    assert isinstance(broken, Reject) and broken.stage == "decode"


def test_the_setting_is_read_once_for_every_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAINSTREAM_FUTURE_POLICY", "reject")
    monkeypatch.setenv("BRAINSTREAM_FUTURE_SKEW_SECONDS", "60")
    from brainstream.settings import ExportSettings, SinkSettings

    expected = AcceptanceRule(future_skew_seconds=60, future_policy="reject")
    assert SinkSettings().acceptance == ExportSettings().acceptance == expected


@pytest.mark.parametrize(
    ("old", "value", "expected"),
    [
        ("BRAINSTREAM_SINK_FUTURE_POLICY", "dlq", AcceptanceRule(future_policy="reject")),
        ("BRAINSTREAM_SINK_FUTURE_SKEW_SECONDS", "5", AcceptanceRule(future_skew_seconds=5)),
    ],
)
def test_the_old_names_and_words_still_work_with_a_deprecation_warning(
    monkeypatch: pytest.MonkeyPatch, old: str, value: str, expected: AcceptanceRule
) -> None:
    monkeypatch.setenv(old, value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert AcceptanceSettings().rule() == expected
    assert {w.category for w in caught} == {DeprecationWarning}
    assert any(old in str(w.message) for w in caught)


def test_the_new_name_wins_over_the_old_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAINSTREAM_SINK_FUTURE_POLICY", "reject")
    monkeypatch.setenv("BRAINSTREAM_FUTURE_POLICY", "clamp")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert AcceptanceSettings().future_policy == "clamp"
    assert [w.category for w in caught] == [DeprecationWarning]
