"""Typed Parquet files (one a type, properties as a typed struct in the latest shape): the JSON
Schema -> Arrow mapping, every registered type's rows round-trip, the writers, and an
as-written export having none (no broker)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

import schemas
from schemas import REGISTRY, encode
from sinks.export import Filters
from sinks.export.shaping import Shaper, ShapeSpec, Task
from sinks.export.typed import TypedWriters, _arrow, file_name, typed_shape
from tests.fixtures.samples import sample_events


def _mapped(node: dict[str, Any], defs: dict[str, Any] | None = None) -> tuple[pa.DataType, bool]:
    kind, _convert, as_json = _arrow(node, defs or {})
    return kind, as_json


def test_json_schema_maps_to_arrow_types() -> None:
    assert _mapped({"type": "integer"}) == (pa.int64(), False)
    assert _mapped({"type": "number"}) == (pa.float64(), False)
    assert _mapped({"type": "boolean"}) == (pa.bool_(), False)
    assert _mapped({"type": "string", "enum": ["a", "b"]}) == (pa.string(), False)
    assert _mapped({"type": "string", "format": "date-time"}) == (
        pa.timestamp("us", tz="UTC"),
        False,
    )
    assert _mapped({"type": "string", "format": "date"}) == (pa.date32(), False)
    assert _mapped({"anyOf": [{"type": "integer"}, {"type": "null"}]}) == (pa.int64(), False)
    assert _mapped({"type": "array", "items": {"type": "string"}}) == (
        pa.list_(pa.string()),
        False,
    )
    defs = {"Inner": {"type": "object", "properties": {"n": {"type": "integer"}}}}
    assert _mapped({"$ref": "#/$defs/Inner"}, defs) == (
        pa.struct([pa.field("n", pa.int64())]),
        False,
    )
    # a union of types and a free-form object have no one Arrow type: JSON text
    assert _mapped({"anyOf": [{"type": "integer"}, {"type": "string"}]}) == (pa.string(), True)
    assert _mapped({"type": "object", "additionalProperties": True}) == (pa.string(), True)


def test_values_are_converted_to_their_arrow_type() -> None:
    schema = {
        "type": "object",
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "day": {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
            "extra": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "tags": {"type": "array", "items": {"type": "string", "format": "date"}},
        },
    }
    kind, convert, _ = _arrow(schema, {})
    assert convert is not None
    value = convert({"at": "2026-01-02T03:04:05.000006Z", "extra": 7, "tags": ["2026-01-01"]})
    assert value == {
        "at": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        "extra": "7",
        "tags": [date(2026, 1, 1)],
    }
    got = pa.array([value, {"day": None}], kind).to_pylist()
    assert got[0]["at"] == value["at"] and got[0]["day"] is None and got[1]["extra"] is None


def _task(events: list[schemas.Event]) -> Task:
    return Task(3, list(range(len(events))), [encode(e) for e in events])


def test_every_registered_type_round_trips_through_its_typed_file(tmp_path: Path) -> None:
    events = sample_events()
    assert {e.type for e in events} == set(REGISTRY.names())
    shaped = Shaper(ShapeSpec(("parquet",), Filters(), frozenset())).shape(_task(events))
    assert shaped.typed is not None and set(shaped.typed) == set(REGISTRY.names())

    writers = TypedWriters(lambda name: tmp_path / name, row_group_rows=2)
    writers.write(shaped)
    writers.close()
    for offset, event in enumerate(events):
        table = pq.read_table(tmp_path / file_name(event.type))
        assert table.schema.equals(typed_shape(event.type, REGISTRY.latest(event.type)).schema)
        (row,) = table.to_pylist()
        assert row["event_id"] == str(event.event_id) and row["user_id"] == event.user_id
        assert row["occurred_at"] == event.occurred_at
        assert (row["kafka_partition"], row["kafka_offset"]) == (3, offset)
        written = orjson.loads(encode(event))["properties"]
        props = {k: v for k, v in row["properties"].items() if v is not None}
        assert props == written, event.type
        assert writers.writers[event.type].rows == 1


def test_typed_batches_group_rows_by_type_in_offset_order() -> None:
    events = sample_events()
    page = next(e for e in events if e.type == "page_view")
    login = next(e for e in events if e.type == "login")
    again = {"event_id": schemas.new_event_id()}
    mixed = [page, login, page.model_copy(update=again), login.model_copy(update=again)]
    shaped = Shaper(ShapeSpec(("parquet",), Filters(), frozenset())).shape(_task(mixed))
    assert shaped.typed is not None
    assert shaped.typed["page_view"].column("kafka_offset").to_pylist() == [0, 2]
    assert shaped.typed["login"].column("kafka_offset").to_pylist() == [1, 3]


def test_no_typed_batches_as_written_or_without_parquet() -> None:
    task = _task(sample_events())
    for spec in (
        ShapeSpec(("parquet",), Filters(), frozenset(), upcast=False),
        ShapeSpec(("jsonl",), Filters(), frozenset()),
    ):
        assert not spec.typed
        assert Shaper(spec).shape(task).typed is None


def test_a_clamped_event_keeps_its_own_time_in_a_column_not_in_properties() -> None:
    page = next(e for e in sample_events() if e.type == "page_view")
    late = page.model_copy(update={"event_id": schemas.new_event_id()})
    ahead = int(page.occurred_at.timestamp() * 1000) - 2 * 3_600_000  # 2 h before occurred_at
    task = Task(0, [0, 1], [encode(page), encode(late)], timestamps=[ahead + 7_200_000, ahead])
    shaped = Shaper(ShapeSpec(("parquet",), Filters(), frozenset())).shape(task)
    assert shaped.arrow is not None and shaped.typed is not None
    plain = [orjson.loads(p) for p in shaped.arrow.column("properties").to_pylist()]
    assert "_original_occurred_at" not in plain[0] and "_original_occurred_at" in plain[1]
    rows = shaped.typed["page_view"].to_pylist()
    assert rows[0]["original_occurred_at"] is None
    assert rows[1]["original_occurred_at"] == page.occurred_at
    assert rows[1]["occurred_at"] == datetime.fromtimestamp(ahead / 1000, UTC)
    assert "_original_occurred_at" not in rows[1]["properties"]


def _many(count: int) -> list[schemas.Event]:
    """``count`` events of every registered type, unevenly mixed (page_view most often)."""
    kinds = sample_events()
    page = next(e for e in kinds if e.type == "page_view")
    picks = [page if i % 3 else kinds[(i * 7) % len(kinds)] for i in range(count)]
    return [e.model_copy(update={"event_id": schemas.new_event_id()}) for e in picks]


def _write_typed(
    events: list[schemas.Event], batch: int, out: Path, budget: int
) -> tuple[TypedWriters, int]:
    """Shape ``events`` in batches of ``batch`` and write their typed files; also the most rows
    the writers held after any batch."""
    shaper = Shaper(ShapeSpec(("parquet",), Filters(), frozenset()))
    writers = TypedWriters(lambda name: out / name, row_group_rows=budget)
    most = 0
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        offsets = list(range(start, start + len(chunk)))
        writers.write(shaper.shape(Task(0, offsets, [encode(e) for e in chunk])))
        most = max(most, writers.buffered)
    writers.close()
    return writers, most


def test_typed_files_share_one_bounded_buffer_whatever_the_batch_sizes(tmp_path: Path) -> None:
    events, budget = _many(400), 20
    files: dict[int, dict[str, bytes]] = {}
    for batch in (1, 7, 64, 400):
        out = tmp_path / str(batch)
        out.mkdir()
        writers, most = _write_typed(events, batch, out, budget)
        # Every type's rows are held by its own writer, yet together they stay within the
        # budget and a half (per-type buffers of row_group_rows each would hold 10 x 19 here).
        assert most <= budget + budget // 2, (batch, most)
        files[batch] = {p.name: p.read_bytes() for p in out.iterdir()}
        for event_type, writer in writers.writers.items():
            meta = pq.ParquetFile(out / file_name(event_type)).metadata
            groups = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
            assert sum(groups) == writer.rows == sum(e.type == event_type for e in events)
            assert max(groups) <= budget
        pages = pq.read_table(out / file_name("page_view")).column("kafka_offset").to_pylist()
        assert pages == [i for i, e in enumerate(events) if e.type == "page_view"]
    # the same rows give the same bytes, however they were batched
    assert files[1] == files[7] == files[64] == files[400]
