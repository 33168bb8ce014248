"""Pure logic of export: ranges, selection, pseudonyms, shaping, formats, manifest, layout."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

import schemas
from eventlog.ranges import PartitionRange, epoch_ms, from_times, resolve
from schemas import encode
from sinks.export import DatasetExists, ExportRequest, Filters, InvalidRange, LogRange
from sinks.export.dataset import DatasetDir
from sinks.export.jsonl import JsonlWriter
from sinks.export.manifest import FileManifest, content_hash
from sinks.export.parquet import ParquetWriter, uuid_strings
from sinks.export.privacy import Pseudonymiser
from sinks.export.selection import Outcome, Selection
from sinks.export.shaping import Shaped, Shaper, ShapeSpec, Task
from sinks.export.tally import Tally
from tests.fixtures.samples import sample_event
from tests.sinks.export.helpers import events

MARKS = {0: (0, 100), 1: (10, 50), 2: (0, 0)}


def test_resolve_defaults_to_the_whole_log_in_partition_order() -> None:
    assert resolve({2: (0, 5), 0: (3, 9)}) == [PartitionRange(0, 3, 9), PartitionRange(2, 0, 5)]


def test_resolve_clamps_into_the_log_and_never_inverts() -> None:
    ranges = resolve(MARKS, {0: 20, 1: 0}, {0: 500, 1: 5})
    assert ranges == [
        PartitionRange(0, 20, 100),
        PartitionRange(1, 10, 10),
        PartitionRange(2, 0, 0),
    ]
    assert [r.size for r in ranges] == [80, 0, 0]


def test_resolve_rejects_unknown_partitions() -> None:
    with pytest.raises(InvalidRange, match=r"\[7\]"):
        resolve(MARKS, {7: 0})


def test_times_without_a_record_mean_the_end_of_the_partition() -> None:
    assert from_times({0: -1, 1: 20}, MARKS) == {0: 100, 1: 20}


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)))
def test_epoch_ms_is_exact(moment: datetime) -> None:
    aware = moment.replace(tzinfo=UTC)
    assert epoch_ms(aware) == (aware - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        milliseconds=1
    )


def test_log_range_is_time_or_offsets() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert LogRange().kind == "all"
    assert LogRange(since=t).kind == "time"
    assert LogRange(end_offsets={0: 5}).kind == "offsets"
    with pytest.raises(ValidationError, match="not both"):
        LogRange(since=t, start_offsets={0: 1})
    with pytest.raises(ValidationError, match="after since"):
        LogRange(since=t, until=t)
    with pytest.raises(ValidationError):
        LogRange(since=datetime(2026, 1, 1))  # naive


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "x" * 200])
def test_dataset_names_cannot_escape_the_output_dir(name: str) -> None:
    with pytest.raises(ValidationError):
        ExportRequest(name=name)


def test_request_formats_are_known_and_unique() -> None:
    with pytest.raises(ValidationError):
        ExportRequest(name="x", formats=("parquet", "parquet"))
    with pytest.raises(ValidationError):
        ExportRequest.model_validate({"name": "x", "formats": ["csv"]})


def test_selection_counts_erasure_before_filters() -> None:
    selection = Selection(Filters(event_types=frozenset({"login"})), erased={"gone"})
    assert selection.outcome(sample_event("login", user_id="gone")) is Outcome.ERASED
    assert selection.outcome(sample_event("search", user_id="gone")) is Outcome.ERASED
    assert selection.outcome(sample_event("search")) is Outcome.FILTERED
    assert selection.outcome(sample_event("login")) is Outcome.EXPORTED


def test_selection_filters_users_and_sources() -> None:
    selection = Selection(
        Filters(user_ids=frozenset({"u1"}), sources=frozenset({"web"})), erased=set()
    )
    assert selection.outcome(sample_event("login", user_id="u1", source="web")) is Outcome.EXPORTED
    assert selection.outcome(sample_event("login", user_id="u2", source="web")) is Outcome.FILTERED
    assert selection.outcome(sample_event("login", user_id="u1", source="api")) is Outcome.FILTERED


def test_pseudonyms_are_keyed_stable_and_unlinkable_without_the_key() -> None:
    one, same, other = (Pseudonymiser(SecretStr(k)) for k in ("k1", "k1", "k2"))
    assert one.pseudonym("user-1") == same.pseudonym("user-1") != other.pseudonym("user-1")
    assert one.pseudonym("user-1") != one.pseudonym("user-2")
    assert len(one.pseudonym("user-1")) == 64 and "user" not in one.pseudonym("user-1")
    assert one.fingerprint == same.fingerprint != other.fingerprint
    with pytest.raises(ValueError, match="empty"):
        Pseudonymiser(SecretStr(""))


VALUES = [encode(e) for e in events(2_500, users=7)]


def _task(count: int, offset: int = 0) -> Task:
    return Task(1, list(range(offset, offset + count)), VALUES[offset : offset + count])


def test_shaper_counts_every_outcome_and_keeps_order() -> None:
    task = _task(20)
    task.values[3] = b"{broken"
    spec = ShapeSpec(
        ("parquet", "jsonl"), Filters(sources=frozenset({"tests"})), frozenset({"user-2"})
    )
    shaped = Shaper(spec).shape(task)
    assert shaped.counts.read == 20 and shaped.last_offset == 19
    assert shaped.counts.outcomes == {
        Outcome.UNDECODABLE: 1,
        Outcome.ERASED: 3,
        Outcome.EXPORTED: 16,
    }
    assert shaped.arrow is not None and shaped.arrow.num_rows == shaped.rows == 16
    lines = [json.loads(line) for line in (shaped.jsonl or b"").splitlines()]
    assert [r["kafka_offset"] for r in lines] == shaped.arrow.column("kafka_offset").to_pylist()
    assert lines[0]["occurred_at"].endswith("Z") and isinstance(lines[0]["properties"], dict)


def test_shaper_pseudonymises_every_user_id() -> None:
    spec = ShapeSpec(("jsonl",), Filters(), frozenset(), SecretStr("key"))
    shaped = Shaper(spec).shape(_task(30))
    assert b"user-" not in (shaped.jsonl or b"")


def _shaped_in(pieces: list[int]) -> list[Shaped]:
    shaper = Shaper(ShapeSpec(("parquet", "jsonl"), Filters(), frozenset()))
    out, offset = [], 0
    for size in pieces:
        out.append(shaper.shape(_task(size, offset)))
        offset += size
    return out


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_files_do_not_depend_on_batch_sizes(tmp_path: Path, compression: str) -> None:
    digests = set()
    for i, pieces in enumerate([[2_500], [1, 999, 1_000, 500], [1_200, 1_300]]):
        parquet = ParquetWriter(tmp_path / f"{i}.parquet", row_group_rows=1_000)
        jsonl = JsonlWriter(tmp_path / f"{i}.jsonl", compression=compression)  # type: ignore[arg-type]
        for shaped in _shaped_in(pieces):
            parquet.write(shaped)
            jsonl.write(shaped)
        parquet.close()
        jsonl.close()
        digests.add(
            ((tmp_path / f"{i}.parquet").read_bytes(), (tmp_path / f"{i}.jsonl").read_bytes())
        )
    assert len(digests) == 1
    meta = pq.ParquetFile(tmp_path / "0.parquet").metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [1_000, 1_000, 500]
    data = (tmp_path / "0.jsonl").read_bytes()
    if compression == "gzip":
        data = gzip.decompress(data)
    elif compression == "zstd":
        data = zstandard.ZstdDecompressor().stream_reader(data).read()
    text = data
    assert len(text.splitlines()) == 2_500


@given(st.lists(st.uuids(), max_size=50))
def test_event_ids_are_written_as_their_canonical_text(ids: list[UUID]) -> None:
    edges = [UUID(int=0), UUID(int=2**128 - 1), UUID("00000000-0000-0000-0000-0000000000ff")]
    for batch in (ids, edges):
        assert uuid_strings(batch).to_pylist() == [str(u) for u in batch]


def test_tally_adds_batches_up() -> None:
    tally = Tally()
    for shaped in _shaped_in([10, 25]):
        tally.add(shaped.partition, shaped.counts)
    assert tally.total_read == tally.exported == 35
    assert sum(tally.counts_by_type().values()) == 35
    versions = tally.schema_versions()
    assert versions and all(
        set(v) == {str(schemas.REGISTRY.latest(name))} for name, v in versions.items()
    )


def test_content_hash_covers_file_digests_not_order() -> None:
    a = FileManifest(name="a", format="parquet", compression="zstd", rows=1, bytes=1, sha256="1")
    b = FileManifest(name="b", format="jsonl", compression="none", rows=1, bytes=1, sha256="2")
    assert content_hash([a, b]) == content_hash([b, a])
    assert content_hash([a, b]) != content_hash([a, b.model_copy(update={"sha256": "3"})])


def test_dataset_appears_complete_or_not_at_all(tmp_path: Path) -> None:
    dataset = DatasetDir(tmp_path, "d")
    dataset.open()
    dataset.path("events.jsonl").write_text("{}\n")
    assert not (tmp_path / "d").exists()
    dataset.commit(b'{"m": 1}')
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["events.jsonl", "manifest.json"]
    assert not (tmp_path / "d.partial").exists()
    with pytest.raises(DatasetExists):
        DatasetDir(tmp_path, "d").open()
    again = DatasetDir(tmp_path, "d", overwrite=True)
    again.open()
    again.commit(b'{"m": 2}')
    assert (tmp_path / "d" / "manifest.json").read_bytes() == b'{"m": 2}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    left = DatasetDir(tmp_path, "e")
    left.open()
    left.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_the_export_upcasts_to_the_latest_version_unless_asked_as_written() -> None:
    from tests.fixtures.samples import samples_of

    events = [e for v in (1, 2, 3) for e in samples_of("github_api_call", v)]
    task = Task(0, list(range(len(events))), [encode(e) for e in events])
    latest = Shaper(ShapeSpec(("jsonl",), Filters(), frozenset())).shape(task)
    rows = [json.loads(line) for line in (latest.jsonl or b"").splitlines()]
    assert [r["schema_version"] for r in rows] == [3, 3, 3, 3]
    assert [r["properties"]["resource"] for r in rows] == ["core", "search", "graphql", "core"]
    assert rows[1]["properties"]["latency_ms"] == 812 and rows[0]["properties"]["method"] == "GET"
    assert "duration_ms" not in rows[1]["properties"]
    assert latest.counts.versions == {
        ("github_api_call", 1): 2,
        ("github_api_call", 2): 1,
        ("github_api_call", 3): 1,
    }
    spec = ShapeSpec(("jsonl",), Filters(), frozenset(), upcast=False)
    written = Shaper(spec).shape(task)
    rows = [json.loads(line) for line in (written.jsonl or b"").splitlines()]
    assert [r["schema_version"] for r in rows] == [1, 1, 2, 3]
    assert rows[1]["properties"]["duration_ms"] == 812
    assert written.counts.versions == latest.counts.versions


def test_an_upcaster_that_fails_is_counted_not_exported() -> None:
    from tests.fixtures.samples import samples_of

    events = samples_of("github_api_call", 2) + samples_of("github_api_call", 3)
    task = Task(0, [0, 1], [encode(e) for e in events])
    with schemas.REGISTRY.overlay() as reg:
        reg.upcaster("github_api_call", 2, replace=True)(lambda p: {**p, "resource": "nope"})
        shaped = Shaper(ShapeSpec(("jsonl",), Filters(), frozenset())).shape(task)
    assert shaped.rows == 1
    assert shaped.counts.outcomes == {Outcome.NOT_UPCAST: 1, Outcome.EXPORTED: 1}
