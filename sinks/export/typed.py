"""Typed Parquet: one file per event type, ``<type>.typed.parquet``, whose ``properties`` is a
struct column of that type's latest shape.

``events.parquet`` has one schema for every type (properties as JSON text), so it holds any
type, including ones registered after the dataset was made. A typed file is what a reader of
one type wants: ``properties.path`` is a string column and ``properties.duration_ms`` an int64,
with no JSON to parse. Its schema is derived from the latest version's JSON Schema, the same
one the manifest publishes as ``types[<type>].properties_schema``.

A clamped event's own time (``properties._original_occurred_at`` in ``events.parquet``, see
:mod:`schemas.acceptance`) is the column ``original_occurred_at`` here (null when not clamped).

Typed files are written with the ``parquet`` format when the export is in the latest shape. An
as-written export has none, because the versions of a type have different shapes.

JSON Schema to Arrow: ``integer`` -> int64, ``number`` -> float64, ``boolean`` -> bool,
``string`` -> string (``date-time`` -> timestamp[us, UTC], ``date`` -> date32), an ``array``
of X -> list<X>, an ``object`` with ``properties`` -> struct, ``anyOf`` [X, null] -> X
(nullable). Anything else (a union of types, or a free-form object) -> string holding JSON,
marked with the field metadata ``content: json``. Every property field is nullable, since
an optional field may be unset.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import orjson
import pyarrow as pa
from pydantic import TypeAdapter

from schemas import REGISTRY
from sinks.export.parquet import ParquetWriter
from sinks.export.rows import Columns

if TYPE_CHECKING:
    from sinks.export.shaping import Shaped

SUFFIX = ".typed.parquet"

Convert = Callable[[Any], Any]
"""A JSON value (as ``orjson.loads`` gives it) to the Python value its Arrow type takes."""

_JSON_META = {b"content": b"json"}


def file_name(event_type: str) -> str:
    """``<type>.typed.parquet``."""
    return f"{event_type}{SUFFIX}"


def latest_properties_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of ``properties`` at ``event_type``'s latest version.

    Raises:
        UnknownEventType: no version of ``event_type`` is registered.
    """
    props = REGISTRY.get(event_type).model_fields["properties"].annotation
    assert props is not None
    schema: dict[str, Any] = TypeAdapter(props).json_schema(mode="validation")
    return schema


@dataclass(frozen=True, slots=True)
class TypedShape:
    """The Arrow schema of a type's typed file and how to fill its ``properties`` column."""

    schema: pa.Schema
    convert: Convert | None
    """Applied to each row's properties (a dict); ``None`` when they go in as they are."""


@cache
def typed_shape(event_type: str, version: int) -> TypedShape:
    """The typed file's shape for ``event_type`` at its latest ``version`` (cached per process;
    the version is part of the key, so a newly registered version gets a new shape).

    Raises:
        UnknownEventType: no version of ``event_type`` is registered.
        TypeError: its properties' JSON Schema is not an object.
    """
    schema = latest_properties_schema(event_type)
    struct, convert, _meta = _arrow(schema, schema.get("$defs", {}))
    if not pa.types.is_struct(struct):  # a properties model is always an object
        raise TypeError(f"properties of {event_type} v{version} are not an object")
    fields = [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("occurred_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("original_occurred_at", pa.timestamp("us", tz="UTC"), nullable=True),
        pa.field("source", pa.string(), nullable=False),
        pa.field("schema_version", pa.int16(), nullable=False),
        pa.field("properties", struct, nullable=False),
        pa.field("kafka_partition", pa.int32(), nullable=False),
        pa.field("kafka_offset", pa.int64(), nullable=False),
    ]
    meta = {"brainstream.event_type": event_type, "brainstream.schema_version": str(version)}
    return TypedShape(pa.schema(fields, metadata=meta), convert)


def typed_batches(
    batch: pa.RecordBatch, columns: Columns, originals: Mapping[int, datetime]
) -> dict[str, pa.RecordBatch]:
    """Type -> its rows of ``batch`` in the typed file's schema, in ``batch``'s order.

    ``batch`` is a batch of ``events.parquet``'s schema with every row in its type's latest
    shape, ``columns`` the Python lists it was made from, ``originals`` row -> the event's own
    time for the clamped rows. Each type's ``properties`` struct is built in one pass: its rows'
    JSON texts are parsed as one JSON array, and the keys the struct has no field for (such as
    ``_original_occurred_at``) are not kept. Each type's batch is a ``take`` of its own rows (a
    slice would carry, and pickle, the whole batch's buffers).
    """
    rows: dict[str, list[int]] = {}
    for i, event_type in enumerate(cast("list[str]", columns["type"])):
        index = rows.get(event_type)
        if index is None:
            index = rows[event_type] = []
        index.append(i)
    texts = cast("list[str]", columns["properties"])
    versions = cast("list[int]", columns["schema_version"])
    out = {}
    for event_type, index in rows.items():
        shape = typed_shape(event_type, versions[index[0]])
        props = orjson.loads("".join(("[", ",".join([texts[i] for i in index]), "]")))
        if shape.convert is not None:
            props = [shape.convert(p) for p in props]
        picked = batch.take(pa.array(index, pa.int32()))
        original = (
            pa.array([originals.get(i) for i in index], _TIMESTAMP)
            if originals
            else pa.nulls(len(index), _TIMESTAMP)
        )
        computed = {
            "properties": pa.array(props, shape.schema.field("properties").type),
            "original_occurred_at": original,
        }
        arrays = [
            computed[f.name] if f.name in computed else picked.column(f.name) for f in shape.schema
        ]
        out[event_type] = pa.RecordBatch.from_arrays(arrays, schema=shape.schema)
    return out


_TIMESTAMP = pa.timestamp("us", tz="UTC")


Mapped = tuple[pa.DataType, Convert | None, bool]
"""An Arrow type, the converter its values need (or ``None``), whether it holds JSON text."""


def _arrow(node: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapped:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _arrow(defs[ref.removeprefix("#/$defs/")], defs)
    options = node.get("anyOf")
    if options is not None:
        kept = [o for o in options if o.get("type") != "null"]
        return _arrow(kept[0], defs) if len(kept) == 1 else _as_json()
    kind = node.get("type")
    if kind == "integer":
        return pa.int64(), None, False
    if kind == "number":
        return pa.float64(), None, False
    if kind == "boolean":
        return pa.bool_(), None, False
    if kind == "string":
        if node.get("format") == "date-time":
            return pa.timestamp("us", tz="UTC"), _maybe(datetime.fromisoformat), False
        if node.get("format") == "date":
            return pa.date32(), _maybe(date.fromisoformat), False
        return pa.string(), None, False
    if kind == "array" and isinstance(node.get("items"), Mapping):
        item, convert, _ = _arrow(node["items"], defs)
        return pa.list_(item), (_each(convert) if convert else None), False
    if kind == "object" and isinstance(node.get("properties"), Mapping):
        return _struct(node["properties"], defs)
    return _as_json()


def _struct(properties: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapped:
    fields, converters = [], {}
    for name, sub in sorted(properties.items()):
        kind, convert, as_json = _arrow(sub, defs)
        fields.append(pa.field(name, kind, nullable=True, metadata=_JSON_META if as_json else None))
        if convert is not None:
            converters[name] = convert
    if not converters:
        return pa.struct(fields), None, False

    def convert_struct(value: Any) -> Any:
        if value is None:
            return None
        out = dict(value)
        for name, convert in converters.items():
            if name in out:
                out[name] = convert(out[name])
        return out

    return pa.struct(fields), convert_struct, False


def _as_json() -> Mapped:
    return pa.string(), _maybe(lambda v: orjson.dumps(v).decode()), True


def _maybe(convert: Convert) -> Convert:
    return lambda v: None if v is None else convert(v)


def _each(convert: Convert) -> Convert:
    return lambda v: None if v is None else [convert(x) for x in v]


class TypedWriters:
    """One :class:`~sinks.export.parquet.ParquetWriter` per exported type, opened on its first
    row, each with the options of ``events.parquet``.

    The types share one buffer budget, ``row_group_rows`` (as ``events.parquet`` holds at most
    that many rows): every ``row_group_rows`` exported rows (every type counted, the points
    where ``events.parquet`` closes a row group), the largest buffers are written as row groups
    until at most half the budget stays buffered (the smaller types keep filling theirs); a
    type whose buffer reaches ``row_group_rows`` writes it at once. So at most 1.5 x
    ``row_group_rows`` typed rows are held, whatever the range and the number of types. The
    flush points depend only on the sequence of rows, so the files do not depend on how the
    records were fetched.
    """

    def __init__(self, path_of: Callable[[str], Path], *, row_group_rows: int, **options: Any):
        self._path_of = path_of
        self._budget = row_group_rows
        self._options = {"row_group_rows": row_group_rows, **options}
        self._since = 0  # exported rows since the last flush point
        self.writers: dict[str, ParquetWriter] = {}

    @property
    def buffered(self) -> int:
        """Rows held in memory by every type's writer."""
        return sum(w.buffered for w in self.writers.values())

    def write(self, shaped: Shaped) -> None:
        typed = shaped.typed
        if not typed:
            return
        taken = dict.fromkeys(typed, 0)  # type -> its rows of this batch written so far
        done = 0  # rows of this batch (every type) written so far
        types: list[str] | None = None
        while shaped.rows - done >= self._budget - self._since:  # a flush point in the batch
            cut = done + self._budget - self._since
            if types is None:
                assert shaped.arrow is not None  # typed batches come with events.parquet's
                types = shaped.arrow.column("type").to_pylist()
            for event_type, rows in Counter(types[done:cut]).items():
                self._append(event_type, typed[event_type].slice(taken[event_type], rows))
                taken[event_type] += rows
            done, self._since = cut, 0
            self._settle()
        for event_type, batch in typed.items():
            self._append(event_type, batch.slice(taken[event_type]))
        self._since += shaped.rows - done

    def _append(self, event_type: str, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        writer = self.writers.get(event_type)
        if writer is None:
            path = self._path_of(file_name(event_type))
            writer = self.writers[event_type] = ParquetWriter(
                path, schema=batch.schema, **self._options
            )
        writer.write_batch(batch)

    def _settle(self) -> None:
        """Write the largest buffers (ties: by type name) until at most half the budget is
        held."""
        held = {t: w.buffered for t, w in sorted(self.writers.items()) if w.buffered}
        total = sum(held.values())
        while total > self._budget // 2:
            largest = max(held, key=held.__getitem__)
            self.writers[largest].flush()
            total -= held.pop(largest)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()
