"""The accepted stream's batch format: what the raw sink stored from one source offset range.

The raw sink decides what counts as one event (the ``event_id`` primary key) and what is
acceptable at all (every DLQ stage, including what Postgres refuses). After its transaction
commits it forwards, per source partition, exactly the events that this offset range stored,
as one record of topic ``brainstream.events.accepted`` (see :data:`schemas.topics.ACCEPTED`)
on the same partition number as the source. Every projection that reads this stream therefore
agrees with the raw table by construction.

Wire format (version :data:`FORMAT`): a compact JSON object with one list per column, so that
a batch of thousands of events is one record and the per-record cost of a consumer is paid
once per batch::

    {"format": 1, "topic": "brainstream.events", "partition": 0,
     "first_offset": 100, "last_offset": 199,
     "offset": [100, 101, 105], "type_names": ["page_view", "login"],
     "type": [0, 1, 0], "user_id": ["u1", "u2", "u1"],
     "occurred_at_us": [1767225600000000, ...], "schema_version": [1, 1, 1]}

- ``first_offset`` .. ``last_offset`` (inclusive) is the source range the sink processed for
  this record, accepted or not: a consumer's fence moves to ``last_offset`` even when the
  range accepted nothing (all duplicates, refused or erased).
- ``offset`` lists the source offset of each accepted event, strictly ascending within the
  range. A consumer skips the events at or below its fence, so a range forwarded again after
  a crash between the database commit and the produce is never counted twice.
- ``type`` indexes ``type_names`` (dictionary encoding); ``occurred_at_us`` is the time as
  stored (after the future-skew rule), in microseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic_core import from_json, to_json

from schemas.errors import BrainstreamError

FORMAT = 1
"""Version of the batch format written by :func:`encode_batch`."""

_COLUMNS = ("offset", "type", "user_id", "occurred_at_us", "schema_version")


class InvalidBatch(BrainstreamError):
    """An accepted-stream record that is not a well-formed batch; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid accepted batch: {reason}")


@dataclass(slots=True)
class AcceptedBatch:
    """The events one source offset range stored, in source-offset order.

    ``types``, ``user_ids``, ``occurred_at_us`` and ``schema_versions`` are parallel to
    ``offsets`` (one entry per accepted event).
    """

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    offsets: list[int] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    user_ids: list[str] = field(default_factory=list)
    occurred_at_us: list[int] = field(default_factory=list)
    schema_versions: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.offsets)

    def append(
        self, offset: int, type_: str, user_id: str, occurred_at_us: int, schema_version: int
    ) -> None:
        """Add one accepted event (offsets must be appended in ascending order)."""
        self.offsets.append(offset)
        self.types.append(type_)
        self.user_ids.append(user_id)
        self.occurred_at_us.append(occurred_at_us)
        self.schema_versions.append(schema_version)

    def after(self, fence: int) -> AcceptedBatch:
        """The events above ``fence`` (a source offset already applied), as a new batch."""
        if not self.offsets or self.offsets[0] > fence:
            return self
        start = next((i for i, o in enumerate(self.offsets) if o > fence), len(self.offsets))
        return AcceptedBatch(
            self.topic,
            self.partition,
            max(self.first_offset, fence + 1),
            self.last_offset,
            self.offsets[start:],
            self.types[start:],
            self.user_ids[start:],
            self.occurred_at_us[start:],
            self.schema_versions[start:],
        )


def encode_batch(batch: AcceptedBatch) -> bytes:
    """The record value of ``batch`` (compact JSON, format :data:`FORMAT`)."""
    names: dict[str, int] = {}
    codes = [names.setdefault(t, len(names)) for t in batch.types]
    return to_json(
        {
            "format": FORMAT,
            "topic": batch.topic,
            "partition": batch.partition,
            "first_offset": batch.first_offset,
            "last_offset": batch.last_offset,
            "offset": batch.offsets,
            "type_names": list(names),
            "type": codes,
            "user_id": batch.user_ids,
            "occurred_at_us": batch.occurred_at_us,
            "schema_version": batch.schema_versions,
        }
    )


def decode_batch(value: bytes | None) -> AcceptedBatch:
    """Parse a record value written by :func:`encode_batch`.

    Raises:
        InvalidBatch: not JSON, another format version, a missing or mistyped field, columns
            of different lengths, offsets outside the range or not ascending.
    """
    if not value:
        raise InvalidBatch("empty record value")
    try:
        doc: Any = from_json(value)
    except ValueError as exc:
        raise InvalidBatch(f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise InvalidBatch("not a JSON object")
    if doc.get("format") != FORMAT:
        raise InvalidBatch(f"format {doc.get('format')!r} is not {FORMAT}")
    try:
        names = _strs(doc["type_names"], "type_names")
        batch = AcceptedBatch(
            _str(doc["topic"], "topic"),
            _int(doc["partition"], "partition"),
            _int(doc["first_offset"], "first_offset"),
            _int(doc["last_offset"], "last_offset"),
            _ints(doc["offset"], "offset"),
            [names[i] for i in _ints(doc["type"], "type")],
            _strs(doc["user_id"], "user_id"),
            _ints(doc["occurred_at_us"], "occurred_at_us"),
            _ints(doc["schema_version"], "schema_version"),
        )
    except KeyError as exc:
        raise InvalidBatch(f"missing field {exc.args[0]}") from None
    except IndexError:
        raise InvalidBatch("type index outside type_names") from None
    _check(batch)
    return batch


def _check(batch: AcceptedBatch) -> None:
    n = len(batch.offsets)
    columns = (batch.types, batch.user_ids, batch.occurred_at_us, batch.schema_versions)
    if any(len(c) != n for c in columns):
        raise InvalidBatch(f"columns {_COLUMNS} differ in length")
    if batch.first_offset > batch.last_offset:
        raise InvalidBatch("first_offset is above last_offset")
    previous = batch.first_offset - 1
    for offset in batch.offsets:
        if not previous < offset <= batch.last_offset:
            raise InvalidBatch("offsets are not ascending within first_offset..last_offset")
        previous = offset


def _int(value: Any, name: str) -> int:
    if type(value) is not int:
        raise InvalidBatch(f"{name} is not an integer")
    return value


def _str(value: Any, name: str) -> str:
    if type(value) is not str:
        raise InvalidBatch(f"{name} is not a string")
    return value


def _ints(value: Any, name: str) -> list[int]:
    if type(value) is not list or any(type(v) is not int for v in value):
        raise InvalidBatch(f"{name} is not a list of integers")
    return value


def _strs(value: Any, name: str) -> list[str]:
    if type(value) is not list or any(type(v) is not str for v in value):
        raise InvalidBatch(f"{name} is not a list of strings")
    return value
