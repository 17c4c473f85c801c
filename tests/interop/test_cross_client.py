"""Records produced by each client are read back byte-exact by the other two."""

import time

import pytest

from kafka_clients import (
    CLIENTS, CODECS, Rec, confluent_consume, confluent_produce, create_topic, kcat_consume, kcat_produce, kp_consume,
    kp_produce, unique,
)

PARTITIONS = 3


def binary_records(base_ts: int) -> list[Rec]:
    """Binary keys and values, headers (duplicate names, empty value), nulls, a large value."""
    recs = []
    for i in range(60):
        value = bytes((i + j) % 256 for j in range(i * 7)) + b"\x00\n\r\t\xff|%d" % i
        recs.append(Rec(key=b"\x00key\xfe-%d" % i, value=value, partition=i % PARTITIONS,
                        headers=(("seq", b"%d" % i), ("dup", b"a"), ("dup", b"b"), ("empty", b"")),
                        timestamp=base_ts + i))
    recs.append(Rec(key=None, value=b"no key", partition=0, headers=(("h", b"1"),), timestamp=base_ts + 100))
    recs.append(Rec(key=b"tombstone", value=None, partition=1, timestamp=base_ts + 101))
    recs.append(Rec(key=b"empty-value", value=b"", partition=2, timestamp=base_ts + 102))
    recs.append(Rec(key=b"", value=b"empty key", partition=0, timestamp=base_ts + 103))
    recs.append(Rec(key=b"large", value=bytes(range(256)) * 800, partition=1, timestamp=base_ts + 104))
    return recs


def kcat_records() -> list[Rec]:
    # kcat -P reads lines: printable, no tabs in keys, no newlines.
    return [Rec(key=b"kcat-%d-%d" % (p, i), value=b"value %d/%d with spaces; and = signs" % (p, i), partition=p,
                headers=(("src", b"kcat"), ("part", b"%d" % p)))
            for p in range(PARTITIONS) for i in range(25)]


def consume_with(client: str, bootstrap: str, topic: str, count: int) -> list[Rec]:
    start = {p: 0 for p in range(PARTITIONS)}
    if client == "confluent":
        return confluent_consume(bootstrap, topic, start, count=count)
    if client == "kafka-python":
        return kp_consume(bootstrap, topic, start, count=count)
    return kcat_consume(bootstrap, topic)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("producer", CLIENTS)
def test_cross_client(broker, producer, codec):
    topic = unique(f"cross-{producer}-{codec}")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    base_ts = int(time.time() * 1000) - 60_000

    if producer == "kcat":
        expected = []
        for p in range(PARTITIONS):
            recs = [r for r in kcat_records() if r.partition == p]
            kcat_produce(broker.bootstrap, topic, recs, partition=p, headers=recs[0].headers, codec=codec)
            expected += [Rec(r.key, r.value, p, off, r.headers) for off, r in enumerate(recs)]
        want_ts = None
    else:
        produced = binary_records(base_ts)
        if producer == "confluent":
            expected = confluent_produce(broker.bootstrap, topic, produced, **{"compression.type": codec})
        else:
            expected = kp_produce(broker.bootstrap, topic, produced,
                                  compression_type=None if codec == "none" else codec)
        want_ts = {(e.partition, e.offset): r.timestamp for e, r in zip(expected, produced)}

    want = sorted(r.payload() for r in expected)
    for consumer in CLIENTS:
        if consumer == producer:
            continue
        got = consume_with(consumer, broker.bootstrap, topic, len(expected))
        assert len(got) == len(expected), f"{consumer} read {len(got)} of {len(expected)} records from {producer}"
        assert sorted(r.payload() for r in got) == want, f"{consumer} read different records than {producer} wrote"
        if want_ts is not None:
            assert {(r.partition, r.offset): r.timestamp for r in got} == want_ts, (
                f"{consumer}: timestamps differ from {producer}'s CreateTime")
