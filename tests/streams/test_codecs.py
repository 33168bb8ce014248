"""The worker's Kafka client (aiokafka under Faust) must decode every codec producers may use.

The SDK compresses with lz4 by default; without a codec library aiokafka's fetcher crashes the
worker on the first compressed batch (found by ``brainstream demo``).
"""

from __future__ import annotations

import pytest
from aiokafka import codec


@pytest.mark.parametrize("name", ["gzip", "snappy", "lz4", "zstd"])
def test_aiokafka_has_the_codec(name: str) -> None:
    assert getattr(codec, f"has_{name}")(), f"aiokafka cannot decode {name} batches"


def test_lz4_round_trip_in_kafka_framing() -> None:
    payload = b'{"type":"page_view"}' * 50
    assert codec.lz4_decode(codec.lz4_encode(payload)) == payload
