"""Log compaction seen by a real client: after the cleaner ran, a consumer reading a compacted topic
from offset 0 gets exactly the latest value of every live key, at the offset it was produced at."""

import os

from kafka_clients import Rec, confluent_consume, confluent_produce, create_topic, unique, wait_until

KEYS = 300
RECORDS = 30_000


def test_consumer_from_zero_sees_the_latest_value_per_live_key(broker_factory):
    broker = broker_factory({"log.cleaner.backoff.ms": 200})
    topic = unique("compacted")
    create_topic(broker.bootstrap, topic, config={
        "cleanup.policy": "compact",
        "segment.bytes": "65536",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "1000",
    })
    records = [Rec(b"key-%d" % (i % KEYS), b"value-%d" % i, partition=0) for i in range(RECORDS)]
    # Delete every tenth key, then roll the active segment with one (incompressible) record larger
    # than a segment, so that everything before it becomes cleanable.
    records += [Rec(b"key-%d" % k, None, partition=0) for k in range(0, KEYS, 10)]
    conf = {"enable.idempotence": True, "compression.type": "zstd", "linger.ms": 20}
    delivered = confluent_produce(broker.bootstrap, topic, records, **conf)
    # Its own request: a segment rolls between requests, not inside one.
    filler = [Rec(b"filler", os.urandom(70_000), partition=0)]
    delivered += confluent_produce(broker.bootstrap, topic, filler, **conf)
    latest: dict[bytes, Rec] = {}
    for r in delivered:
        latest[r.key] = r
    expected = sorted((r.offset, r.key, r.value) for r in latest.values() if r.value is not None)
    assert len(expected) == KEYS - KEYS // 10 + 1

    seen: list = []

    def cleaned() -> bool:
        nonlocal seen
        got = confluent_consume(broker.bootstrap, topic, {0: 0}, timeout=20)
        seen = [(r.offset, r.key, r.value) for r in got]
        return len(seen) == len(expected)

    wait_until(cleaned, timeout=30, interval=0.5, message="the cleaner compacted the topic")
    assert seen == expected
    sizes = sum(f.stat().st_size for f in broker.partition_dir(topic, 0).glob("*.log"))
    assert sizes < 100_000, f"the log shrank to {sizes} bytes"
