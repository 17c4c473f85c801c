"""ListOffsets: by timestamp (incl. a target inside a batch), earliest, latest, max timestamp."""

import time

import confluent_kafka
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import OffsetSpec
from kafka import TopicPartition as KpTopicPartition

from kafka_clients import (
    Rec, admin, confluent_consume, confluent_produce, consumer_conf, create_topic, kcat_query_offset, kp_consume,
    kp_consumer, unique,
)

B_OFFSETS_TS = [2000, 2030, 2010, 2020]  # batch B: timestamps out of order on purpose


def produce_two_batches(bootstrap: str, topic: str) -> int:
    """Batch A: offsets 0..99, ts T0+10*i. Batch B: offsets 100..103, ts T0+[2000,2030,2010,2020]."""
    t0 = int(time.time() * 1000) - 3_600_000
    batch_a = [Rec(key=b"a%d" % i, value=b"A-%d" % i, partition=0, timestamp=t0 + 10 * i) for i in range(100)]
    batch_b = [Rec(key=b"b%d" % i, value=b"B-%d" % i, partition=0, timestamp=t0 + d)
               for i, d in enumerate(B_OFFSETS_TS)]
    # One produce call per batch, lingering so each becomes one record batch.
    acked = confluent_produce(bootstrap, topic, batch_a, **{"linger.ms": 500})
    acked += confluent_produce(bootstrap, topic, batch_b, **{"linger.ms": 500})
    assert [r.offset for r in acked] == list(range(104))
    return t0


# (target timestamp relative to t0, expected offset or None)
CASES = [
    (-5000, 0),
    (0, 0),
    (1, 1),
    (375, 38),     # inside batch A
    (990, 99),     # last record of batch A
    (991, 100),    # between the batches: first record of batch B
    (2015, 101),   # inside batch B: first record (by offset) with ts >= target
    (2030, 101),
    (2031, None),  # after every record
]


def expected_ts(t0, offset):
    return t0 + (10 * offset if offset < 100 else B_OFFSETS_TS[offset - 100])


def test_offsets_for_times_confluent_consumer(broker):
    topic = unique("lo-confluent")
    create_topic(broker.bootstrap, topic)
    t0 = produce_two_batches(broker.bootstrap, topic)
    c = Consumer(consumer_conf(broker.bootstrap))
    try:
        for delta, want in CASES:
            [res] = c.offsets_for_times([TopicPartition(topic, 0, t0 + delta)], timeout=10)
            assert res.error is None, res.error
            got = None if res.offset == confluent_kafka.OFFSET_END else res.offset
            assert got == want, f"confluent offsets_for_times(t0{delta:+d}) = {res.offset}, want {want}"
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False) == (0, 104)
    finally:
        c.close()


def test_list_offsets_confluent_admin(broker):
    topic = unique("lo-admin")
    create_topic(broker.bootstrap, topic)
    t0 = produce_two_batches(broker.bootstrap, topic)
    a = admin(broker.bootstrap)
    tp = TopicPartition(topic, 0)

    def list_offsets(spec):
        return a.list_offsets({tp: spec}, request_timeout=10)[tp].result(timeout=15)

    assert list_offsets(OffsetSpec.earliest()).offset == 0
    assert list_offsets(OffsetSpec.latest()).offset == 104
    res = list_offsets(OffsetSpec.max_timestamp())
    assert (res.offset, res.timestamp) == (101, t0 + 2030), "max timestamp is record 101 (t0+2030)"
    for delta, want in CASES:
        res = list_offsets(OffsetSpec.for_timestamp(t0 + delta))
        got = None if res.offset == -1 else res.offset
        assert got == want, f"list_offsets(for_timestamp t0{delta:+d}) = {res.offset}, want {want}"
        if want is not None:
            assert res.timestamp == expected_ts(t0, want), f"timestamp returned for offset {want}"


def test_offsets_for_times_kafka_python(broker):
    topic = unique("lo-kp")
    create_topic(broker.bootstrap, topic)
    t0 = produce_two_batches(broker.bootstrap, topic)
    c = kp_consumer(broker.bootstrap)
    tp = KpTopicPartition(topic, 0)
    try:
        for delta, want in CASES:
            res = c.offsets_for_times({tp: t0 + delta})[tp]
            if want is None:
                assert res is None, f"kafka-python offsets_for_times(t0{delta:+d}) = {res}, want none"
            else:
                assert res is not None and res.offset == want, (
                    f"kafka-python offsets_for_times(t0{delta:+d}) = {res}, want {want}")
                assert res.timestamp == expected_ts(t0, want)
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: 104}
    finally:
        c.close()


def test_query_offsets_kcat(broker):
    topic = unique("lo-kcat")
    create_topic(broker.bootstrap, topic)
    t0 = produce_two_batches(broker.bootstrap, topic)
    for delta, want in CASES:
        got = kcat_query_offset(broker.bootstrap, topic, 0, t0 + delta)
        assert got == (-1 if want is None else want), f"kcat -Q t0{delta:+d} = {got}, want {want}"


def test_consume_from_timestamp_offset_is_exact(broker):
    """Seek to the offset ListOffsets gives for a mid-batch timestamp; records start exactly there."""
    topic = unique("lo-seek")
    create_topic(broker.bootstrap, topic)
    t0 = produce_two_batches(broker.bootstrap, topic)
    c = Consumer(consumer_conf(broker.bootstrap))
    try:
        [res] = c.offsets_for_times([TopicPartition(topic, 0, t0 + 375)], timeout=10)
    finally:
        c.close()
    got = confluent_consume(broker.bootstrap, topic, {0: res.offset}, count=104 - 38)
    assert [r.value for r in got] == [b"A-%d" % i for i in range(38, 100)] + [b"B-%d" % i for i in range(4)]
    got = kp_consume(broker.bootstrap, topic, {0: res.offset}, count=104 - 38)
    assert got[0].offset == 38 and got[0].timestamp == t0 + 380


def test_log_append_time(broker):
    topic = unique("lo-append")
    create_topic(broker.bootstrap, topic, config={"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    acked = confluent_produce(broker.bootstrap, topic,
                              [Rec(key=b"k", value=b"v%d" % i, timestamp=1000 + i) for i in range(50)],
                              **{"linger.ms": 200})
    after = int(time.time() * 1000)
    consumed = confluent_consume(broker.bootstrap, topic, {0: 0}, count=50)
    for r in consumed:
        assert r.timestamp_type == "log_append", f"offset {r.offset}: timestamp type {r.timestamp_type}"
        assert before - 1 <= r.timestamp <= after + 1, (
            f"offset {r.offset}: LogAppendTime {r.timestamp} not within produce window [{before}, {after}]")
    # The produce response carries the LogAppendTime (what the delivery report says = what is stored).
    stored = {r.offset: r.timestamp for r in consumed}
    for r in acked:
        assert r.timestamp == stored[r.offset], f"delivery report timestamp for offset {r.offset}"
    kp = kp_consume(broker.bootstrap, topic, {0: 0}, count=50)
    assert all(r.timestamp_type == "log_append" for r in kp)
    # ListOffsets by timestamp uses the broker's time, not the producer's.
    c = Consumer(consumer_conf(broker.bootstrap))
    try:
        [res] = c.offsets_for_times([TopicPartition(topic, 0, 5000)], timeout=10)
        assert res.offset == 0
        [res] = c.offsets_for_times([TopicPartition(topic, 0, after + 60_000)], timeout=10)
        assert res.offset == confluent_kafka.OFFSET_END
    finally:
        c.close()
