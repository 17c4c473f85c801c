"""Restarts and crashes: nothing acknowledged is lost, nothing corrupt is served."""

import random
import struct
import time
from collections import defaultdict

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from kafka_clients import (
    Rec, confluent_consume, confluent_produce, confluent_watermarks, consumer_conf, create_topic, kp_consume,
    producer_conf, unique,
)
from records import check_value, keyed_records, make_value

PARTITIONS = 3


def read_all(bootstrap: str, topic: str, partitions: int = PARTITIONS, client: str = "confluent") -> list[Rec]:
    start = {p: 0 for p in range(partitions)}
    if client == "confluent":
        return confluent_consume(bootstrap, topic, start, count=None)
    return kp_consume(bootstrap, topic, start, count=None)


def watermarks(bootstrap, topic, partitions=PARTITIONS):
    return {p: confluent_watermarks(bootstrap, topic, p) for p in range(partitions)}


def test_clean_restart_keeps_everything(broker):
    topic = unique("dur-clean")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    acked = confluent_produce(broker.bootstrap, topic, keyed_records(3000), **{"compression.type": "none"})
    acked += confluent_produce(broker.bootstrap, topic, keyed_records(3000, seed=7), **{"compression.type": "gzip"})
    marks = watermarks(broker.bootstrap, topic)

    assert broker.stop() == 0, f"SIGTERM did not exit cleanly\n{broker.stderr_tail()}"
    broker.start_again()

    assert watermarks(broker.bootstrap, topic) == marks
    want = sorted(r.payload() for r in acked)
    for client in ("confluent", "kafka-python"):
        got = read_all(broker.bootstrap, topic, client=client)
        assert sorted(r.payload() for r in got) == want, f"{client}: data differs after restart"

    # Producing continues at the next offsets.
    more = confluent_produce(broker.bootstrap, topic,
                             [Rec(key=None, value=b"after-%d" % p, partition=p) for p in range(PARTITIONS)])
    assert {r.partition: r.offset for r in more} == {p: marks[p][1] for p in range(PARTITIONS)}


def produce_until_killed(broker, topic: str, codec: str, acked_before_kill: int):
    """Produce with acks=all until `acked_before_kill` records are acknowledged, then queue a burst and
    SIGKILL the broker while the producer still has requests in flight; drop whatever is not acknowledged.

    The burst is what guarantees records in flight at the kill: a steady produce loop against a fast broker
    can keep fewer than a batch outstanding for minutes, so waiting for a backlog to build up by chance is
    not a test (it once produced for four minutes and millions of records before the kill came).
    """
    acked: dict[int, tuple[int, int, bytes]] = {}
    failed: set[int] = set()
    conf = producer_conf(broker.bootstrap, **{
        "acks": "all", "linger.ms": 5, "compression.type": codec, "queue.buffering.max.messages": 20000,
        "message.timeout.ms": 60000,
    })
    p = Producer(conf)
    rng = random.Random(99)
    alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789"
    fillers = [bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 300))) for _ in range(257)]

    def on_delivery(err, msg):
        seq = check_value(msg.value())
        if err is None:
            acked[seq] = (msg.partition(), msg.offset(), msg.value())
        else:
            failed.add(seq)

    seq = 0

    def produce_one() -> bool:
        nonlocal seq
        try:
            p.produce(topic, key=b"k%d" % (seq % 50), value=make_value(seq, fillers[seq % len(fillers)]),
                      on_delivery=on_delivery)
        except BufferError:
            return False
        seq += 1
        return True

    deadline = time.monotonic() + 120
    while len(acked) < acked_before_kill:
        assert time.monotonic() < deadline, f"only {len(acked)} of {acked_before_kill} records acked in 120 s"
        if not produce_one():
            p.poll(0.01)
        p.poll(0)
    # Queue a burst without serving delivery reports, give the producer a moment to put it on the wire,
    # and kill the broker while those requests are outstanding.
    for _ in range(3000):
        if not produce_one():
            break
    time.sleep(0.002)
    broker.kill9()
    killed_at = seq
    unacked_at_kill = killed_at - len(acked)
    acked_at_kill = len(acked)
    for _ in range(500):
        if not produce_one():
            p.poll(0.01)
    p.purge(in_queue=True, in_flight=True, blocking=True)
    remaining = p.flush(30)
    assert remaining == 0, "producer did not settle after purge"
    assert len(acked) + len(failed) == seq, "every record got exactly one delivery report"
    assert unacked_at_kill > 0, "the kill came too late: nothing was in flight"
    assert failed, "no record failed: the kill came after everything was acknowledged"
    return acked, acked_at_kill, seq


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_kill9_during_acks_all_produce(broker, codec):
    topic = unique(f"dur-kill-{codec}")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    acked, acked_at_kill, sent = produce_until_killed(broker, topic, codec, acked_before_kill=4000)
    assert acked_at_kill >= 4000

    broker.start_again()

    for client in ("confluent", "kafka-python"):
        # The consumers verify batch CRCs (check.crcs / check_crcs), so a corrupt batch fails here.
        consumed = read_all(broker.bootstrap, topic, client=client)
        at = {(r.partition, r.offset): r.value for r in consumed}
        # Every acknowledged record is at its offset, byte-exact.
        missing = [(seq, p, o) for seq, (p, o, v) in sorted(acked.items()) if at.get((p, o)) != v]
        assert not missing, (f"{client}: {len(missing)} of {len(acked)} acknowledged records missing or "
                             f"different after kill -9, first: {missing[:5]}")
        # Nothing garbled, offsets contiguous, no record twice.
        by_partition = defaultdict(list)
        for r in consumed:
            by_partition[r.partition].append(r.offset)
        for p, offsets in by_partition.items():
            assert offsets == list(range(len(offsets))), f"{client}: partition {p} offsets have gaps"
        seqs = [check_value(r.value) for r in consumed]
        assert len(seqs) == len(set(seqs)), f"{client}: a record is stored twice"
        assert all(s < sent for s in seqs)

    # (c) Producing continues right after the recovered end of each partition.
    marks = watermarks(broker.bootstrap, topic)
    more = confluent_produce(broker.bootstrap, topic,
                             [Rec(key=None, value=make_value(10**7 + p), partition=p) for p in range(PARTITIONS)])
    assert {r.partition: r.offset for r in more} == {p: marks[p][1] for p in range(PARTITIONS)}
    tail = confluent_consume(broker.bootstrap, topic, {p: marks[p][1] for p in range(PARTITIONS)}, count=PARTITIONS)
    assert sorted(r.value for r in tail) == sorted(r.value for r in more)


def test_produce_continues_after_kill9_and_restart(broker):
    topic = unique("dur-continue")
    create_topic(broker.bootstrap, topic)
    first = confluent_produce(broker.bootstrap, topic, [Rec(None, make_value(i)) for i in range(100)])
    assert [r.offset for r in first] == list(range(100))

    broker.restart(clean=False)  # kill -9 while idle
    second = confluent_produce(broker.bootstrap, topic, [Rec(None, make_value(i)) for i in range(100, 200)])
    assert [r.offset for r in second] == list(range(100, 200))

    broker.restart(clean=True)
    third = confluent_produce(broker.bootstrap, topic, [Rec(None, make_value(i)) for i in range(200, 300)])
    assert [r.offset for r in third] == list(range(200, 300))

    got = confluent_consume(broker.bootstrap, topic, {0: 0}, count=None)
    assert [check_value(r.value) for r in got] == list(range(300))
    assert [r.offset for r in got] == list(range(300))


def last_batch(log: bytes) -> tuple[int, int]:
    """(start, end) byte range of the last complete record batch in a segment file."""
    pos = 0
    last = None
    while pos + 12 <= len(log):
        _base, length = struct.unpack_from(">qi", log, pos)
        end = pos + 12 + length
        if length <= 0 or end > len(log):
            break
        last = (pos, end)
        pos = end
    assert last is not None, "no record batch found in the segment"
    return last


@pytest.mark.parametrize("damage", ["partial-batch", "bad-crc", "zeros"])
def test_torn_tail_is_truncated_on_recovery(broker, damage):
    topic = unique(f"dur-torn-{damage}")
    create_topic(broker.bootstrap, topic)
    produced = [Rec(b"k", make_value(i)) for i in range(100)]
    confluent_produce(broker.bootstrap, topic, produced)
    broker.kill9()

    part_dir = broker.partition_dir(topic, 0)
    segments = sorted(part_dir.glob("*.log"))
    assert segments, f"no segment files in {part_dir}: {list(part_dir.iterdir())}"
    seg = segments[-1]
    data = seg.read_bytes()
    start, end = last_batch(data)
    batch = bytearray(data[start:end])
    struct.pack_into(">q", batch, 0, 100)  # looks like the next batch
    if damage == "partial-batch":
        tail = bytes(batch[: len(batch) // 2])
    elif damage == "bad-crc":
        batch[-1] ^= 0xFF
        tail = bytes(batch)
    else:
        tail = b"\x00" * 4096
    with open(seg, "ab") as f:
        f.write(tail)

    broker.start_again()
    got = confluent_consume(broker.bootstrap, topic, {0: 0}, count=None)
    assert [r.value for r in got] == [r.value for r in produced], "recovered log differs from what was acked"
    assert confluent_watermarks(broker.bootstrap, topic, 0) == (0, 100)
    more = confluent_produce(broker.bootstrap, topic, [Rec(b"k", make_value(100))])
    assert more[0].offset == 100
    got = kp_consume(broker.bootstrap, topic, {0: 0}, count=None)
    assert [check_value(r.value) for r in got] == list(range(101))


@pytest.mark.parametrize("damage", ["deleted", "odd-length", "garbage-after-kill"])
def test_damaged_indexes_are_rebuilt(broker, damage):
    """The log is the truth: damaged offset/time indexes never make the broker serve the wrong records."""
    topic = unique(f"dur-index-{damage}")
    create_topic(broker.bootstrap, topic)
    t0 = 1_700_000_000_000
    p = Producer(producer_conf(broker.bootstrap, **{"linger.ms": 0}))
    for b in range(200):  # 200 batches of 10 records: ~300 KB, many sparse index entries
        for i in range(10):
            seq = b * 10 + i
            p.produce(topic, value=make_value(seq, b"z" * 120), timestamp=t0 + seq * 10)
        assert p.flush(10) == 0
    if damage == "garbage-after-kill":
        broker.kill9()
    else:
        assert broker.stop() == 0
    part_dir = broker.partition_dir(topic, 0)
    if damage == "garbage-after-kill":
        # After a crash the active segment's index may not be on disk yet: plant garbage ones.
        indexes = [part_dir / f"{seg.stem}{ext}" for seg in part_dir.glob("*.log") for ext in (".index", ".timeindex")]
    else:
        indexes = sorted(part_dir.glob("*.index")) + sorted(part_dir.glob("*.timeindex"))
    assert indexes, f"no index files in {part_dir}"
    rng = random.Random(5)
    for f in indexes:
        if damage == "deleted":
            f.unlink()
        elif damage == "odd-length":
            with open(f, "ab") as fh:
                fh.write(b"\x07\x07\x07")
        else:
            size = f.stat().st_size if f.exists() else 0
            f.write_bytes(bytes(rng.randrange(256) for _ in range(max(size, 4096))))

    broker.start_again()
    for start in (0, 777, 1234, 1999):
        got = confluent_consume(broker.bootstrap, topic, {0: start}, count=5 if start < 1999 else 1)
        assert [r.offset for r in got] == list(range(start, start + len(got)))
        assert [check_value(r.value) for r in got] == [r.offset for r in got]
    c = Consumer(consumer_conf(broker.bootstrap))
    try:
        for seq in (0, 555, 1234, 1999):
            [res] = c.offsets_for_times([TopicPartition(topic, 0, t0 + seq * 10 - 5)], timeout=10)
            assert res.offset == seq, f"offsets_for_times after index damage: {res.offset}, want {seq}"
    finally:
        c.close()
    assert confluent_watermarks(broker.bootstrap, topic, 0) == (0, 2000)
