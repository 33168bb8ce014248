"""The in-memory broker models what consume loops rely on: positions from committed offsets,
rebalances that revoke everyone before anyone gets a new share, pause, failed commits."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaException, TopicPartition

from eventlog.local import LocalBroker, LocalConsumer


def _broker() -> LocalBroker:
    broker = LocalBroker()
    broker.create_topic("e", 2)
    for i in range(6):
        broker.produce("e", f"v{i}".encode(), partition=i % 2)
    return broker


def _member(broker: LocalBroker, log: list[str], name: str) -> LocalConsumer:
    consumer = broker.consumer({"group.id": "g"})
    consumer.subscribe(
        ["e"],
        on_assign=lambda _c, ps: log.append(f"{name}+{sorted(tp.partition for tp in ps)}"),
        on_revoke=lambda _c, ps: log.append(f"{name}-{sorted(tp.partition for tp in ps)}"),
    )
    return consumer


def test_a_member_reads_from_the_committed_offsets_of_its_group() -> None:
    broker = _broker()
    first = broker.consumer({"group.id": "g"})
    first.subscribe(["e"])
    assert len(first.consume(10, 0.1)) == 6
    first.commit(offsets=[TopicPartition("e", 0, 2), TopicPartition("e", 1, 1)])
    first.close()
    again = broker.consumer({"group.id": "g"})
    again.subscribe(["e"])
    assert sorted((m.partition(), m.offset()) for m in again.consume(10, 0.1)) == [
        (0, 2),
        (1, 1),
        (1, 2),
    ]


def test_new_shares_are_given_only_after_every_member_revoked() -> None:
    broker, log = _broker(), []
    a = _member(broker, log, "a")
    a.consume(1, 0.1)
    assert log == ["a+[0, 1]"]
    b = _member(broker, log, "b")
    assert b.consume(1, 0.1) == [] and b.assignment() == []  # a has not revoked yet
    a.consume(1, 0.1)  # a revokes in its own poll
    b.consume(1, 0.1)
    a.consume(1, 0.1)
    assert log[:2] == ["a+[0, 1]", "a-[0, 1]"]
    assert sorted(log[2:]) == ["a+[0]", "b+[1]"]


def test_a_paused_partition_delivers_nothing_until_resumed() -> None:
    broker = _broker()
    c = broker.consumer({"group.id": "g"})
    c.subscribe(["e"])
    c.consume(1, 0.1)
    c.pause([TopicPartition("e", 0)])
    assert {m.partition() for m in c.consume(10, 0.1)} == {1}
    c.resume([TopicPartition("e", 0)])
    assert {m.partition() for m in c.consume(10, 0.1)} == {0}


def test_committing_a_partition_no_longer_owned_fails() -> None:
    broker, log = _broker(), []
    a = _member(broker, log, "a")
    a.consume(1, 0.1)
    b = _member(broker, log, "b")
    a.consume(1, 0.1)
    b.consume(1, 0.1)
    with pytest.raises(KafkaException):
        a.commit(offsets=[TopicPartition("e", 1, 3)], asynchronous=False)
