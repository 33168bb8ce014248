"""Decode, select and shape a batch of records into format-ready columns (pure, picklable).

This is the per-record work of an export, so it is what runs in the worker processes of
:mod:`sinks.export.parallel`; the main process only consumes and writes.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import orjson
import pyarrow as pa
from pydantic import SecretStr

from schemas import REGISTRY, InvalidEvent
from schemas.acceptance import Accept, AcceptanceRule, Reject, judge
from sinks.export.config import Filters, Format
from sinks.export.parquet import to_record_batch
from sinks.export.privacy import Pseudonymiser
from sinks.export.rows import COLUMNS, Columns, iso_utc
from sinks.export.selection import Outcome, Selection
from sinks.export.typed import typed_batches

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ShapeSpec:
    """Everything a worker needs to shape batches the same way the main process would."""

    formats: tuple[Format, ...]
    filters: Filters
    erased: frozenset[str]
    pseudonym_key: SecretStr | None = None
    upcast: bool = True
    """Properties in their type's latest version (``False``: as written)."""
    rule: AcceptanceRule = field(default_factory=AcceptanceRule)
    """The acceptance rule every record is judged by (the raw sink's)."""

    @property
    def typed(self) -> bool:
        """Whether batches carry one typed record batch per type (:mod:`sinks.export.typed`):
        with Parquet, in the latest shape."""
        return self.upcast and "parquet" in self.formats


@dataclass(frozen=True, slots=True)
class Task:
    partition: int
    offsets: list[int]
    values: list[bytes | None]
    accepted: list[bool] | None = None
    """Parallel to ``offsets``: whether the raw sink accepted the record (``None``: all)."""
    timestamps: list[int] | None = None
    """Parallel to ``offsets``: each record's Kafka timestamp in epoch ms (``None``: none)."""
    headers: list[Any] | None = None
    """Parallel to ``offsets``: each record's headers (``None``: none)."""


@dataclass(slots=True)
class Counts:
    read: int = 0
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    versions: Counter[tuple[str, int]] = field(default_factory=Counter)
    """Exported rows per (type, schema_version as read)."""


@dataclass(slots=True)
class Shaped:
    partition: int
    last_offset: int
    rows: int
    counts: Counts
    arrow: pa.RecordBatch | None = None
    jsonl: bytes | None = None
    typed: dict[str, pa.RecordBatch] | None = None
    """Type -> its rows in the typed file's schema (:mod:`sinks.export.typed`)."""


class Shaper:
    def __init__(self, spec: ShapeSpec) -> None:
        self._spec = spec
        self._selection = Selection(spec.filters, spec.erased)
        key = spec.pseudonym_key
        self._pseudonym = Pseudonymiser(key).pseudonym if key is not None else None
        self._latest: dict[str, int] = {}
        """Type -> its latest version, looked up once per shaper (one export)."""

    def shape(self, task: Task) -> Shaped:
        counts = Counts(read=len(task.values))
        columns: Columns = {name: [] for name in COLUMNS}
        originals: dict[int, datetime] = {}  # row -> the event's own time, when clamped
        written: list[int] = []  # each row's schema_version as read
        add_id, add_type = columns["event_id"].append, columns["type"].append
        add_user, add_time = columns["user_id"].append, columns["occurred_at"].append
        add_source, add_version = columns["source"].append, columns["schema_version"].append
        add_props, add_offset = columns["properties"].append, columns["kafka_offset"].append
        mask, stamps, headers, rule = task.accepted, task.timestamps, task.headers, self._spec.rule
        outcomes, outcome_of, pseudonym = counts.outcomes, self._selection.outcome, self._pseudonym
        for i, (offset, value) in enumerate(zip(task.offsets, task.values, strict=True)):
            if mask is not None and not mask[i]:
                outcomes[Outcome.NOT_ACCEPTED] += 1
                continue
            verdict = judge(
                value,
                headers[i] if headers is not None else None,
                stamps[i] if stamps is not None else None,
                rule,
            )
            if isinstance(verdict, Reject):
                outcomes[Outcome.UNDECODABLE] += 1
                continue
            event = verdict.event
            outcome = outcome_of(event)
            if outcome is not Outcome.EXPORTED:
                outcomes[outcome] += 1
                continue
            try:
                properties, version = self._properties(verdict)
            except InvalidEvent as exc:
                log.warning("%s v%d not upcast: %s", event.type, event.schema_version, exc)
                outcomes[Outcome.NOT_UPCAST] += 1
                continue
            if verdict.clamped:
                originals[len(written)] = event.occurred_at
            written.append(event.schema_version)
            add_id(event.event_id)
            add_type(event.type)
            add_user(pseudonym(event.user_id) if pseudonym else event.user_id)
            add_time(verdict.occurred_at)
            add_source(event.source)
            add_version(version)
            add_props(properties)
            add_offset(offset)
        if written:
            outcomes[Outcome.EXPORTED] += len(written)
            types = cast("list[str]", columns["type"])
            counts.versions.update(zip(types, written, strict=True))
        columns["kafka_partition"] = [task.partition] * len(written)
        return self._shaped(task, counts, columns, originals)

    def _properties(self, verdict: Accept) -> tuple[str, int]:
        """``(properties JSON, its schema_version)``: upcast to the latest version unless the
        spec says as written, with the original time of a clamped event (as the raw table).

        Raises:
            InvalidEvent: an upcaster failed.
        """
        event = verdict.event
        props = event.properties
        if self._spec.upcast:
            latest = self._latest.get(event.type) or self._latest.setdefault(
                event.type, REGISTRY.latest(event.type)
            )
            if event.schema_version != latest:
                written = props.__pydantic_serializer__.to_python(
                    props, mode="json", exclude_none=True
                )
                upcast = REGISTRY.upcast(event.type, event.schema_version, written)
                return orjson.dumps(verdict.with_original(upcast)).decode(), latest
        return verdict.properties_json(), event.schema_version

    def _shaped(
        self, task: Task, counts: Counts, columns: Columns, originals: dict[int, datetime]
    ) -> Shaped:
        rows = len(columns["event_id"])
        shaped = Shaped(task.partition, task.offsets[-1], rows, counts)
        if "parquet" in self._spec.formats:
            shaped.arrow = to_record_batch(columns)
            if self._spec.typed and rows:
                shaped.typed = typed_batches(shaped.arrow, columns, originals)
        if "jsonl" in self._spec.formats:
            shaped.jsonl = jsonl_lines(columns)
        return shaped


def jsonl_lines(columns: Columns) -> bytes:
    """One JSON object per row: the columns as keys, ``properties`` as a nested object."""
    lines = []
    for i, props in enumerate(columns["properties"]):
        head = orjson.dumps(
            {
                "event_id": columns["event_id"][i],
                "type": columns["type"][i],
                "user_id": columns["user_id"][i],
                "occurred_at": iso_utc(columns["occurred_at"][i]),  # type: ignore[arg-type]
                "source": columns["source"][i],
                "schema_version": columns["schema_version"][i],
                "kafka_partition": columns["kafka_partition"][i],
                "kafka_offset": columns["kafka_offset"][i],
            }
        )
        # ``properties`` is already compact JSON: splice it in instead of re-encoding it.
        lines.append(b"".join((head[:-1], b',"properties":', str(props).encode(), b"}\n")))
    return b"".join(lines)
