"""The accepted stream's batch format: round trip, fencing, and named refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.accepted import AcceptedBatch, InvalidBatch, decode_batch, encode_batch


def _batch() -> AcceptedBatch:
    batch = AcceptedBatch("brainstream.events", 2, 100, 110)
    batch.append(100, "page_view", "u1", 1_767_225_600_000_000, 1)
    batch.append(103, "login", "u2", 1_767_225_601_000_000, 2)
    batch.append(107, "page_view", "u1", 1_767_225_602_000_000, 1)
    return batch


def test_round_trip_keeps_every_column() -> None:
    batch = _batch()
    assert decode_batch(encode_batch(batch)) == batch


def test_types_are_dictionary_encoded() -> None:
    assert encode_batch(_batch()).count(b'"page_view"') == 1


def test_an_empty_range_still_moves_a_fence() -> None:
    empty = AcceptedBatch("brainstream.events", 0, 5, 9)
    decoded = decode_batch(encode_batch(empty))
    assert (len(decoded), decoded.first_offset, decoded.last_offset) == (0, 5, 9)


@pytest.mark.parametrize(
    ("fence", "offsets"), [(99, [100, 103, 107]), (100, [103, 107]), (106, [107]), (110, [])]
)
def test_after_keeps_only_events_above_the_fence(fence: int, offsets: list[int]) -> None:
    rest = _batch().after(fence)
    assert rest.offsets == offsets
    assert rest.user_ids == [{100: "u1", 103: "u2", 107: "u1"}[o] for o in offsets]
    assert rest.last_offset == 110


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty"),
        (b"{", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"format": 2}', "format 2"),
        (b'{"format": 1}', "missing field"),
    ],
)
def test_malformed_values_are_named(value: bytes, reason: str) -> None:
    with pytest.raises(InvalidBatch, match=reason):
        decode_batch(value)


def _mutate(**changes: object) -> bytes:
    import json

    doc = json.loads(encode_batch(_batch()))
    doc.update(changes)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"offset": [100, 103]}, "differ in length"),
        ({"offset": [100, 100, 107]}, "not ascending"),
        ({"offset": [100, 103, 111]}, "not ascending"),
        ({"first_offset": 101}, "not ascending"),
        ({"first_offset": 120}, "first_offset is above"),
        ({"type": [0, 5, 0]}, "outside type_names"),
        ({"user_id": ["u1", 2, "u1"]}, "user_id is not a list of strings"),
        ({"occurred_at_us": [1.5, 2, 3]}, "occurred_at_us is not a list of integers"),
        ({"partition": "0"}, "partition is not an integer"),
    ],
)
def test_inconsistent_batches_are_named(changes: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidBatch, match=reason):
        decode_batch(_mutate(**changes))


@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),
            st.sampled_from(["a", "b", "c"]),
            st.text(max_size=5),
            st.integers(-(2**62), 2**62),
            st.integers(1, 9),
        ),
        max_size=30,
    )
)
def test_any_batch_round_trips(events: list[tuple[int, str, str, int, int]]) -> None:
    batch = AcceptedBatch("t", 1, 10, 10 + 6 * len(events))
    offset = 9
    for gap, type_, user, ts, version in events:
        offset += gap + 1
        batch.append(offset, type_, user, ts, version)
    batch.last_offset = max(batch.last_offset, offset)
    assert decode_batch(encode_batch(batch)) == batch
