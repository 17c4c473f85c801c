"""Fetch semantics seen by real clients: starting inside a batch, long poll, size limits."""

import threading
import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from kafka import TopicPartition as KpTopicPartition

from kafka_clients import (
    CLIENTS, Rec, confluent_consume, confluent_produce, consumer_conf, create_topic, kcat_consume, kp_consume,
    kp_consumer, raw_batches, raw_fetch, raw_produce, unique,
)

PRELUDE = 5      # records before the big batch, so the batch's base offset is not 0
BATCH = 100
SKIP = 37


def produce_prelude_and_batch(bootstrap: str, topic: str, codec: str) -> int:
    confluent_produce(bootstrap, topic, [Rec(None, b"prelude-%d" % i) for i in range(PRELUDE)])
    # One batch for sure: a producer may split records into several batches under load.
    codes = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
    err, base = raw_produce(bootstrap, topic, 0, [b"batch-%03d" % i for i in range(BATCH)],
                            compression_type=codes[codec])
    assert err == 0 and base == PRELUDE
    return base


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_fetch_inside_batch_returns_whole_batch(broker, codec):
    """On the wire: fetching from base+37 answers with the batch that holds it, from its base offset."""
    topic = unique("fetch-raw")
    create_topic(broker.bootstrap, topic)
    base = produce_prelude_and_batch(broker.bootstrap, topic, codec)
    err, hw, records = raw_fetch(broker.bootstrap, topic, 0, base + SKIP)
    assert err == 0 and hw == base + BATCH
    batches = raw_batches(records)
    assert batches, "fetch inside a batch returned no batch"
    first_base, first_records = batches[0]
    assert first_base == base, f"first batch starts at {first_base}, expected the whole batch from {base}"
    assert [o for o, _ in first_records] == list(range(base, base + BATCH)), "the batch was produced as one"
    assert [v for _, v in first_records] == [b"batch-%03d" % i for i in range(BATCH)]


@pytest.mark.parametrize("codec", ["none", "gzip", "zstd"])
@pytest.mark.parametrize("client", CLIENTS)
def test_consume_from_offset_inside_batch(broker, client, codec):
    topic = unique(f"fetch-mid-{client}")
    create_topic(broker.bootstrap, topic)
    base = produce_prelude_and_batch(broker.bootstrap, topic, codec)
    start = base + SKIP
    want = [(base + i, b"batch-%03d" % i) for i in range(SKIP, BATCH)]
    if client == "confluent":
        got = confluent_consume(broker.bootstrap, topic, {0: start}, count=None)
    elif client == "kafka-python":
        got = kp_consume(broker.bootstrap, topic, {0: start}, count=None)
    else:
        got = kcat_consume(broker.bootstrap, topic, partition=0, offset=start)
    assert [(r.offset, r.value) for r in got] == want


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_long_poll_wakes_on_produce(broker, client):
    """A consumer parked in a Fetch (max wait 5 s) on an empty partition gets a new record promptly."""
    topic = unique(f"fetch-lp-{client}")
    create_topic(broker.bootstrap, topic)

    def produce_one(i):
        confluent_produce(broker.bootstrap, topic, [Rec(None, b"wake-%d" % i)], **{"linger.ms": 0})
        return time.monotonic()

    if client == "confluent":
        c = Consumer(consumer_conf(broker.bootstrap, **{"fetch.wait.max.ms": 5000, "fetch.min.bytes": 1,
                                                         "enable.partition.eof": False}))
        c.assign([TopicPartition(topic, 0, 0)])

        def poll_one(deadline_s):
            end = time.monotonic() + deadline_s
            while time.monotonic() < end:
                m = c.poll(0.05)
                if m is not None:
                    assert m.error() is None, m.error()
                    return m
            return None
    else:
        c = kp_consumer(broker.bootstrap, fetch_max_wait_ms=5000, fetch_min_bytes=1)
        tp = KpTopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 0)

        def poll_one(deadline_s):
            end = time.monotonic() + deadline_s
            while time.monotonic() < end:
                batch = c.poll(timeout_ms=50, max_records=1)
                if batch:
                    [msgs] = batch.values()
                    return msgs[0]
            return None

    try:
        for i in range(2):
            # Let the consumer reach its long poll on the empty end of the log.
            assert poll_one(1.5) is None, "record delivered before it was produced"
            acked = {}
            th = threading.Thread(target=lambda: acked.setdefault("t", produce_one(i)))
            th.start()
            m = poll_one(10)
            got_at = time.monotonic()
            th.join(30)
            assert m is not None, "record never delivered"
            value = m.value() if client == "confluent" else m.value
            assert value == b"wake-%d" % i
            latency = got_at - acked["t"]
            assert latency < 2.0, f"{client}: long poll answered {latency:.2f}s after the produce (max wait 5 s)"
    finally:
        c.close()


def test_fetch_answers_at_once_when_data_is_there(broker):
    topic = unique("fetch-now")
    create_topic(broker.bootstrap, topic)
    confluent_produce(broker.bootstrap, topic, [Rec(None, b"x" * 100) for _ in range(10)])
    t = time.monotonic()
    err, hw, records = raw_fetch(broker.bootstrap, topic, 0, 0, max_wait_ms=5000, min_bytes=1)
    elapsed = time.monotonic() - t
    assert err == 0 and hw == 10 and raw_batches(records)
    assert elapsed < 1.5, f"fetch with data available took {elapsed:.2f}s (max_wait 5 s)"


def test_fetch_waits_for_max_wait_on_empty_partition(broker):
    topic = unique("fetch-wait")
    create_topic(broker.bootstrap, topic)
    # Warm the connection path first so connection setup is not measured.
    raw_fetch(broker.bootstrap, topic, 0, 0, max_wait_ms=0)
    t = time.monotonic()
    err, hw, records = raw_fetch(broker.bootstrap, topic, 0, 0, max_wait_ms=1000, min_bytes=1)
    elapsed = time.monotonic() - t
    assert err == 0 and hw == 0 and not raw_batches(records)
    assert 0.9 <= elapsed < 3.5, f"empty fetch with max_wait 1 s took {elapsed:.2f}s"


def test_fetch_min_bytes_waits_until_max_wait(broker):
    topic = unique("fetch-minb")
    create_topic(broker.bootstrap, topic)
    confluent_produce(broker.bootstrap, topic, [Rec(None, b"small")])
    t = time.monotonic()
    err, hw, records = raw_fetch(broker.bootstrap, topic, 0, 0, max_wait_ms=1000, min_bytes=1_000_000)
    elapsed = time.monotonic() - t
    assert err == 0 and hw == 1
    assert [v for _, recs in raw_batches(records) for _, v in recs] == [b"small"]
    assert 0.9 <= elapsed < 3.5, f"min_bytes not met: expected ~1 s wait, took {elapsed:.2f}s"


def test_fetch_partition_max_bytes_honoured(broker):
    topic = unique("fetch-max")
    create_topic(broker.bootstrap, topic)
    for i in range(40):  # 40 separate batches of ~200 bytes
        confluent_produce(broker.bootstrap, topic, [Rec(None, b"%03d" % i + b"y" * 150)], **{"linger.ms": 0})
    err, hw, records = raw_fetch(broker.bootstrap, topic, 0, 0, partition_max_bytes=1000)
    assert err == 0 and hw == 40
    assert 0 < len(records) <= 1000, f"partition_max_bytes=1000 but got {len(records)} bytes"
    batches = raw_batches(records)
    assert batches and batches[0][0] == 0
    # Response-level max_bytes too.
    err, hw, records = raw_fetch(broker.bootstrap, topic, 0, 0, max_bytes=1000)
    assert err == 0 and 0 < len(records) <= 1000, f"max_bytes=1000 but got {len(records)} bytes"


def test_first_batch_larger_than_limits_is_still_returned(broker):
    """KIP-74: a batch bigger than max_bytes is returned whole so consumers can make progress."""
    topic = unique("fetch-big")
    create_topic(broker.bootstrap, topic)
    big = [Rec(None, bytes([i]) * 20_000) for i in range(5)]
    confluent_produce(broker.bootstrap, topic, big, **{"linger.ms": 0, "batch.size": 16384})
    err, hw, records = raw_fetch(broker.bootstrap, topic, 0, 0, partition_max_bytes=100, max_bytes=100)
    assert err == 0 and hw == 5
    batches = raw_batches(records)
    assert batches, f"no complete batch returned (got {len(records)} bytes) for a fetch limit below one batch"
    assert batches[0][1][0] == (0, big[0].value)
    got = confluent_consume(broker.bootstrap, topic, {0: 0}, count=5,
                            **{"fetch.max.bytes": 1024, "max.partition.fetch.bytes": 1024,
                               "message.max.bytes": 1000})
    assert [r.value for r in got] == [r.value for r in big]
    got = kp_consume(broker.bootstrap, topic, {0: 0}, count=5, fetch_max_bytes=1024, max_partition_fetch_bytes=1024)
    assert [r.value for r in got] == [r.value for r in big]
