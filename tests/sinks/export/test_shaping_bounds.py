"""The export's shaper on extreme input (issue 17 item 1): every record ends as an exported row
or as a counted undecodable record, never an exception, whatever its values. (The worker no
longer decodes raw events: it folds the sink's accepted stream, which holds only what the sink
stored.)"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import encode
from sinks.export.config import Filters
from sinks.export.shaping import Shaper, ShapeSpec, Task
from tests.fixtures.samples import sample_event

BASE: dict[str, Any] = json.loads(encode(sample_event("page_view", user_id="u1")))

offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda m: f"{'+' if m >= 0 else '-'}{abs(m) // 60:02d}:{abs(m) % 60:02d}"
)
values = st.one_of(
    st.builds(lambda d, o: d.isoformat() + o, st.datetimes(), offsets),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
)
fields = st.sampled_from(
    ["occurred_at", "user_id", "schema_version", "path", "duration_ms", "referrer", "extra"]
)


def _value(changes: list[tuple[str, Any]]) -> bytes:
    doc = json.loads(json.dumps(BASE))
    for field, value in changes:
        if field in ("path", "duration_ms", "referrer", "extra"):
            doc["properties"][field] = value
        else:
            doc[field] = value
    return json.dumps(doc).encode()


records = st.tuples(
    st.lists(st.tuples(fields, values), max_size=3),
    st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
)


@settings(max_examples=800, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, min_size=1, max_size=8))
def test_export_ends_every_record_with_a_verdict(
    batch: list[tuple[list[tuple[str, Any]], int | None]],
) -> None:
    raw = [_value(changes) for changes, _ts in batch]
    shaper = Shaper(ShapeSpec(("parquet", "jsonl"), Filters(), frozenset()))
    shaped = shaper.shape(Task(0, list(range(len(raw))), raw))
    assert shaped.counts.read == len(raw)
    assert sum(shaped.counts.outcomes.values()) == len(raw)
    assert shaped.arrow is not None and shaped.arrow.num_rows == shaped.rows
    assert shaped.jsonl is not None and shaped.jsonl.count(b"\n") == shaped.rows
