"""One builder per client kind: what every brainstream client needs, and each process's own."""

from __future__ import annotations

from eventlog.clients import consumer_conf, producer_conf
from eventlog.reader import reader_conf
from producers.config import TrackerConfig
from sinks.config import SinkConfig
from sinks.consumer import sink_consumer_conf

CONNECTION = {"bootstrap.servers": "k:9092", "client.id": "c"}


def test_a_consumer_commits_only_what_it_is_told_and_reads_committed_data() -> None:
    conf = consumer_conf(CONNECTION, "g")
    assert conf == {
        **CONNECTION,
        "group.id": "g",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
    }
    assert "auto.offset.reset" not in consumer_conf(CONNECTION, "g", offset_reset=None)


def test_the_sinks_consumer_is_static_when_given_an_instance_id() -> None:
    config = SinkConfig(instance_id="sink-1", session_timeout_ms=30_000)
    conf = sink_consumer_conf(CONNECTION, config)
    assert conf["group.instance.id"] == "sink-1"
    assert conf["session.timeout.ms"] == 30_000
    assert conf["group.id"] == config.group_id
    assert "group.instance.id" not in sink_consumer_conf(CONNECTION, SinkConfig())


def test_a_log_reader_fails_on_deleted_records_and_sees_partition_ends() -> None:
    conf = reader_conf(CONNECTION, "export")
    assert conf["auto.offset.reset"] == "error"
    assert conf["enable.partition.eof"] is True
    assert conf["isolation.level"] == "read_committed"


def test_every_producer_is_idempotent_with_acks_from_every_replica() -> None:
    weakened = {**CONNECTION, "enable.idempotence": False, "acks": "1"}
    conf = producer_conf(weakened, linger_ms=0, compression="lz4")
    assert (conf["enable.idempotence"], conf["acks"]) == (True, "all")
    assert (conf["linger.ms"], conf["compression.type"]) == (0, "lz4")


def test_the_sdks_own_librdkafka_properties_apply_last() -> None:
    conf = TrackerConfig(linger_ms=50, librdkafka={"linger.ms": 7}).producer_conf(CONNECTION)
    assert conf["linger.ms"] == 7
    assert conf["message.timeout.ms"] == TrackerConfig().delivery_timeout_ms
    assert conf["enable.idempotence"] is True
