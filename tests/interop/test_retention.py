"""Retention by time and size deletes whole old segments; DeleteRecords moves the log start."""

import time

import pytest
from confluent_kafka import KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
from kafka import TopicPartition as KpTopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import OffsetOutOfRangeError as KpOffsetOutOfRangeError

from kafka_clients import (
    admin, confluent_consume, confluent_watermarks, create_topic, kp_consume, producer_conf, raw_fetch,
    raw_list_offset, unique, wait_until,
)
from records import check_value, make_value

RETENTION_CHECK = {"log.retention.check.interval.ms": 500}
N = 60
OFFSET_OUT_OF_RANGE = 1


def produce_one_batch_each(bootstrap: str, topic: str, n: int = N, size: int = 150, first: int = 0,
                           timestamp: int | None = None) -> None:
    """n records, each in its own batch (flush after each), so segments roll at small segment.bytes."""
    p = Producer(producer_conf(bootstrap, **{"linger.ms": 0}))
    errors = []
    for i in range(first, first + n):
        kwargs = {} if timestamp is None else {"timestamp": timestamp}
        p.produce(topic, value=make_value(i, b"r" * size),
                  on_delivery=lambda err, msg: errors.append(err) if err else None, **kwargs)
        assert p.flush(10) == 0
    assert not errors, errors


def produce_old_then_future(bootstrap: str, topic: str) -> None:
    """Offsets 0..29 timestamped an hour ago, 30..59 an hour ahead: with retention.ms=1000 exactly the
    segments holding only old records expire, and the test can look at the result without racing."""
    now = int(time.time() * 1000)
    produce_one_batch_each(bootstrap, topic, n=N // 2, timestamp=now - 3_600_000)
    produce_one_batch_each(bootstrap, topic, n=N // 2, first=N // 2, timestamp=now + 3_600_000)


def segment_bases(broker, topic: str, partition: int = 0) -> list[int]:
    d = broker.partition_dir(topic, partition)
    bases = []
    for f in d.glob("*.log"):
        assert len(f.stem) == 20 and f.stem.isdigit(), f"segment file name {f.name} is not <20 digits>.log"
        bases.append(int(f.stem))
    return sorted(bases)


def segment_sizes(broker, topic: str, partition: int = 0) -> list[int]:
    d = broker.partition_dir(topic, partition)
    sizes = []
    for b in segment_bases(broker, topic, partition):
        try:
            sizes.append((d / f"{b:020d}.log").stat().st_size)
        except FileNotFoundError:  # deleted while we looked
            pass
    return sizes


def log_bytes(broker, topic: str, partition: int = 0) -> int:
    return sum(segment_sizes(broker, topic, partition))


def check_consistent_after_deletion(broker, topic: str, produced: int = N, keep_from: int | None = None) -> int:
    """Low watermark > 0, segments below it are gone, the rest of the data is intact. Returns low.

    keep_from: offsets from here on must not have been deleted."""
    low, high = confluent_watermarks(broker.bootstrap, topic, 0)
    assert high == produced, f"retention changed the log end offset: {high}"
    assert 0 < low <= high
    if keep_from is not None:
        assert low <= keep_from, f"log start {low}: records from offset {keep_from} on had not expired"
    bases = segment_bases(broker, topic)
    assert 0 not in bases, "the first segment was not deleted"
    # Whole segments only: at most one remaining segment starts at or below the log start offset,
    # and no remaining segment lies entirely below it.
    assert sum(1 for b in bases if b <= low) <= 1, f"segments {bases} lie below log start {low}"
    got = confluent_consume(broker.bootstrap, topic, {0: low}, count=None)
    assert [r.offset for r in got] == list(range(low, high))
    assert [check_value(r.value) for r in got] == list(range(low, high))
    return low


def test_retention_ms_deletes_old_segments(broker_factory):
    broker = broker_factory(RETENTION_CHECK)
    topic = unique("ret-ms")
    create_topic(broker.bootstrap, topic, config={"segment.bytes": "1024", "retention.ms": "1000"})
    produce_one_batch_each(broker.bootstrap, topic)
    wait_until(lambda: confluent_watermarks(broker.bootstrap, topic, 0)[0] > 0, 20,
               message="log start offset to advance past 0")
    wait_until(lambda: 0 not in segment_bases(broker, topic), 10, message="segment 0 file to disappear")
    assert confluent_watermarks(broker.bootstrap, topic, 0)[1] == N, "retention changed the log end offset"
    # Deletion may still be going on: whatever is served is intact and in order.
    got = confluent_consume(broker.bootstrap, topic, {0: -2}, count=None)
    assert [r.offset for r in got] == sorted({r.offset for r in got})
    assert all(check_value(r.value) == r.offset for r in got)
    # The partition still takes writes after the old data expired.
    produce_one_batch_each(broker.bootstrap, topic, n=1, first=N)
    assert confluent_watermarks(broker.bootstrap, topic, 0)[1] == N + 1


def test_retention_ms_uses_record_timestamps(broker_factory):
    broker = broker_factory(RETENTION_CHECK)
    topic = unique("ret-ts")
    create_topic(broker.bootstrap, topic, config={"segment.bytes": "1024", "retention.ms": "1000"})
    produce_old_then_future(broker.bootstrap, topic)
    wait_until(lambda: confluent_watermarks(broker.bootstrap, topic, 0)[0] > 0, 20,
               message="segments with only old records to expire")
    wait_until(lambda: 0 not in segment_bases(broker, topic), 10, message="segment 0 file to disappear")
    # Segments whose newest record is older than retention.ms go; the others stay.
    wait_until(lambda: sum(1 for b in segment_bases(broker, topic) if b <= N // 2) <= 1, 10,
               message="every segment made only of old records to be deleted")
    check_consistent_after_deletion(broker, topic, keep_from=N // 2)


def test_retention_applies_after_alter_configs(broker_factory):
    broker = broker_factory(RETENTION_CHECK)
    topic = unique("ret-alter")
    create_topic(broker.bootstrap, topic, config={"segment.bytes": "1024", "retention.ms": "-1"})
    produce_old_then_future(broker.bootstrap, topic)
    bases = segment_bases(broker, topic)
    assert len(bases) >= 4 and bases[0] == 0, f"segment.bytes=1024 should roll segments, got {bases}"
    # Several retention checks pass with infinite retention: nothing may be deleted.
    time.sleep(2)
    assert segment_bases(broker, topic) == bases
    assert confluent_watermarks(broker.bootstrap, topic, 0) == (0, N)

    res = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    a = admin(broker.bootstrap)
    a.incremental_alter_configs([res])[res].result(timeout=20)
    wait_until(lambda: confluent_watermarks(broker.bootstrap, topic, 0)[0] > 0, 20,
               message="log start offset to advance after retention.ms was lowered")
    wait_until(lambda: sum(1 for b in segment_bases(broker, topic) if b <= N // 2) <= 1, 10,
               message="every segment made only of old records to be deleted")
    check_consistent_after_deletion(broker, topic, keep_from=N // 2)


def test_retention_bytes(broker_factory):
    broker = broker_factory(RETENTION_CHECK)
    topic = unique("ret-bytes")
    create_topic(broker.bootstrap, topic, config={"segment.bytes": "1024", "retention.bytes": "3000"})
    produce_one_batch_each(broker.bootstrap, topic)
    assert log_bytes(broker, topic) > 6000
    wait_until(lambda: confluent_watermarks(broker.bootstrap, topic, 0)[0] > 0, 20,
               message="size retention to delete segments")
    def settled():
        # Kafka deletes the oldest segment while the rest still holds retention.bytes or more.
        sizes = segment_sizes(broker, topic)
        return bool(sizes) and sum(sizes) - sizes[0] < 3000

    wait_until(settled, 10, message="size retention to settle below retention.bytes")
    low = check_consistent_after_deletion(broker, topic)
    assert low < N, "size retention must not delete everything"
    assert log_bytes(broker, topic) > 0


def test_delete_records_confluent(broker):
    topic = unique("ret-delrec-c")
    create_topic(broker.bootstrap, topic)
    produce_one_batch_each(broker.bootstrap, topic, n=100, size=10)
    a = admin(broker.bootstrap)
    tp = TopicPartition(topic, 0, 37)  # inside a segment, not at a batch boundary of note
    result = a.delete_records([tp], request_timeout=15)[tp].result(timeout=20)
    assert result.low_watermark == 37
    assert confluent_watermarks(broker.bootstrap, topic, 0) == (37, 100)
    assert raw_list_offset(broker.bootstrap, topic, 0, -2)[2] == 37  # ListOffsets earliest
    assert raw_fetch(broker.bootstrap, topic, 0, 10)[0] == OFFSET_OUT_OF_RANGE
    got = confluent_consume(broker.bootstrap, topic, {0: -2}, count=None)  # OFFSET_BEGINNING
    assert [r.offset for r in got] == list(range(37, 100))
    assert [check_value(r.value) for r in got] == list(range(37, 100))

    # Beyond the high watermark: OFFSET_OUT_OF_RANGE, nothing changes.
    tp_far = TopicPartition(topic, 0, 500)
    with pytest.raises(KafkaException) as e:
        a.delete_records([tp_far], request_timeout=15)[tp_far].result(timeout=20)
    assert e.value.args[0].code() == OFFSET_OUT_OF_RANGE
    assert confluent_watermarks(broker.bootstrap, topic, 0) == (37, 100)

    # Survives a clean restart.
    broker.restart()
    assert confluent_watermarks(broker.bootstrap, topic, 0) == (37, 100)
    a = admin(broker.bootstrap)  # a client from before the restart may have lost its leader cache

    # -1 means up to the high watermark.
    tp_all = TopicPartition(topic, 0, -1)
    assert a.delete_records([tp_all], request_timeout=15)[tp_all].result(timeout=20).low_watermark == 100
    assert confluent_watermarks(broker.bootstrap, topic, 0) == (100, 100)


def test_delete_records_kafka_python(broker):
    topic = unique("ret-delrec-kp")
    create_topic(broker.bootstrap, topic)
    produce_one_batch_each(broker.bootstrap, topic, n=80, size=10)
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=20000)
    try:
        tp = KpTopicPartition(topic, 0)
        result = client.delete_records({tp: 50})
        assert result[tp]["low_watermark"] == 50
    finally:
        client.close()
    got = kp_consume(broker.bootstrap, topic, {0: 50}, count=None)
    assert [r.offset for r in got] == list(range(50, 80))
    with pytest.raises(KpOffsetOutOfRangeError):
        kp_consume(broker.bootstrap, topic, {0: 10}, count=1, timeout=20, auto_offset_reset="none")


def test_segment_ms_rolls_by_record_time(broker):
    """Kafka rolls when a new batch's timestamp is segment.ms past the segment's first batch."""
    topic = unique("ret-segms")
    create_topic(broker.bootstrap, topic, config={"segment.ms": "1000"})
    now = int(time.time() * 1000)
    produce_one_batch_each(broker.bootstrap, topic, n=3, timestamp=now)
    assert segment_bases(broker, topic) == [0]
    produce_one_batch_each(broker.bootstrap, topic, n=2, first=3, timestamp=now + 5000)
    assert segment_bases(broker, topic) == [0, 3], "no roll after segment.ms of record time"
    got = confluent_consume(broker.bootstrap, topic, {0: 0}, count=None)
    assert [check_value(r.value) for r in got] == [0, 1, 2, 3, 4]


def test_segment_ms_rolls_after_time_passes(broker):
    topic = unique("ret-segms-wall")
    create_topic(broker.bootstrap, topic, config={"segment.ms": "1000"})
    produce_one_batch_each(broker.bootstrap, topic, n=2)
    time.sleep(1.2)  # record time and wall time both move past segment.ms
    produce_one_batch_each(broker.bootstrap, topic, n=1, first=2)
    assert segment_bases(broker, topic) == [0, 2]
