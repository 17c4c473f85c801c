"""fjord-client (through `fjord produce` / `fjord consume`) against confluent-kafka and kafka-python.

Records written by one side are read by the other with identical keys, values, headers,
timestamps and partitions; keyed records land on the partition the Java client's murmur2 picks,
as confluent-kafka (partitioner=murmur2_random) and kafka-python place them too; and a fjord
group consumer shares a consumer group with confluent-kafka consumers.
"""

from __future__ import annotations

import base64
import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from kafka.partitioner.default import murmur2

from conftest import fjord_bin
from kafka_clients import (CODECS, Rec, confluent_consume, confluent_produce, consumer_conf, create_topic,
                           kp_consume, kp_produce, unique, wait_until)

PARTITIONS = 6


def java_partition(key: bytes, partitions: int = PARTITIONS) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def fjord(*args, input: bytes | None = None, timeout: float = 60, check: bool = True):
    proc = subprocess.run([fjord_bin(), *args], input=input, capture_output=True, timeout=timeout,
                          stdin=None if input is not None else subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc


def fjord_consume_json(bootstrap: str, topic: str, count: int, *extra) -> list[dict]:
    out = fjord("consume", *([topic] if topic else []), "--bootstrap", bootstrap, "--from-beginning",
                "--format", "json", "--max-messages", str(count), "--timeout-ms", "10000", *extra).stdout
    return [json.loads(line) for line in out.decode().splitlines()]


def as_rec(obj: dict) -> Rec:
    """A `fjord consume --format json` line as a Rec (base64 fields decoded)."""
    def b(o, field):
        v = o[field]
        if v is None:
            return None
        return base64.b64decode(v) if o.get(f"{field}_encoding") == "base64" else v.encode()
    headers = tuple((h["key"], b(h, "value")) for h in obj["headers"])
    return Rec(b(obj, "key"), b(obj, "value"), obj["partition"], obj["offset"], headers, obj["timestamp"])


def full(r: Rec):
    return (r.partition, r.offset, r.key, r.value, tuple(r.headers), r.timestamp)


@pytest.mark.parametrize("codec", CODECS)
def test_records_from_fjord_read_identically_by_python_clients(broker, codec):
    topic = unique(f"from-fjord-{codec}")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    lines = [f"trace:{i},kind:k{i % 3}\tuser-{i % 40}=value {i} ünïcode".encode() for i in range(300)]
    fjord("produce", topic, "--bootstrap", broker.bootstrap, "--key-separator", "=", "--headers",
          "--compression", codec, "-X", "linger.ms=20", input=b"\n".join(lines) + b"\n")

    via_fjord = sorted(map(as_rec, fjord_consume_json(broker.bootstrap, topic, len(lines))), key=full)
    assert len(via_fjord) == len(lines)
    start = {p: 0 for p in range(PARTITIONS)}
    via_confluent = sorted(confluent_consume(broker.bootstrap, topic, start), key=full)
    via_kp = sorted(kp_consume(broker.bootstrap, topic, start), key=full)
    assert [full(r) for r in via_confluent] == [full(r) for r in via_fjord]
    assert [full(r) for r in via_kp] == [full(r) for r in via_fjord]

    for r in via_fjord:
        i = int(r.value.split()[1])
        assert r.key == f"user-{i % 40}".encode()
        assert r.headers == (("trace", str(i).encode()), ("kind", f"k{i % 3}".encode()))
        # Java's default partitioner: murmur2(key) mod partitions.
        assert r.partition == java_partition(r.key), r
    # Order within a partition is the order of the lines.
    for p in range(PARTITIONS):
        values = [int(r.value.split()[1]) for r in sorted(via_fjord, key=lambda r: r.offset) if r.partition == p]
        assert values == sorted(values)


def test_keys_land_on_the_same_partitions_from_every_client(broker):
    keys = [f"customer-{i}".encode() for i in range(64)] + [b"", b"\x00\xff", "ключ".encode()]
    placed = {}
    for client in ("fjord", "confluent", "kafka-python"):
        topic = unique(f"keys-{client}")
        create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
        records = [Rec(k, b"v") for k in keys]
        if client == "fjord":
            data = b"".join(k + b"\x1f" + b"v\n" for k in keys)
            fjord("produce", topic, "--bootstrap", broker.bootstrap, "--key-separator", "\x1f", input=data)
            got = [as_rec(o) for o in fjord_consume_json(broker.bootstrap, topic, len(keys))]
        elif client == "confluent":
            got = confluent_produce(broker.bootstrap, topic, records, partitioner="murmur2_random")
        else:
            got = kp_produce(broker.bootstrap, topic, records)
        placed[client] = {r.key: r.partition for r in got}
    assert placed["fjord"] == placed["confluent"] == placed["kafka-python"]
    assert placed["fjord"] == {k: java_partition(k) for k in keys}
    assert len(set(placed["fjord"].values())) == PARTITIONS


@pytest.mark.parametrize("producer", ["confluent", "kafka-python"])
@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_records_from_python_clients_read_identically_by_fjord(broker, producer, codec):
    topic = unique(f"to-fjord-{producer}")
    create_topic(broker.bootstrap, topic, partitions=3)
    base = int(time.time() * 1000) - 3_600_000
    records = [Rec(f"k{i % 7}".encode() if i % 5 else None, f"value-{i}".encode(), partition=i % 3,
                   headers=(("n", str(i).encode()), ("empty", b"")), timestamp=base + i * 10)
               for i in range(200)]
    if producer == "confluent":
        sent = confluent_produce(broker.bootstrap, topic, records, **{"compression.type": codec})
    else:
        sent = kp_produce(broker.bootstrap, topic, records, compression_type=None if codec == "none" else codec)
    got = [as_rec(o) for o in fjord_consume_json(broker.bootstrap, topic, len(records))]
    assert sorted(map(full, got)) == sorted(map(full, sent))
    assert all(r.timestamp == base + int(r.value.split(b"-")[1]) * 10 for r in got)


def test_binary_values_come_back_byte_exact_as_base64(broker):
    topic = unique("binary")
    create_topic(broker.bootstrap, topic)
    value = bytes(range(256))
    confluent_produce(broker.bootstrap, topic, [Rec(b"\xff\xfe", value)])
    [obj] = fjord_consume_json(broker.bootstrap, topic, 1)
    assert obj["value_encoding"] == "base64" and base64.b64decode(obj["value"]) == value
    assert obj["key_encoding"] == "base64" and base64.b64decode(obj["key"]) == b"\xff\xfe"


def test_fjord_group_consumer_shares_a_group_with_confluent_consumers(broker_factory, tmp_path: Path):
    b = broker_factory(overrides={"group.initial.rebalance.delay.ms": "2000"})
    topic, group = unique("mixed-group"), unique("mixed")
    create_topic(b.bootstrap, topic, partitions=4)
    confluent_produce(b.bootstrap, topic, [Rec(None, b"first-%d" % i, partition=i % 4) for i in range(400)])

    out_path = tmp_path / "fjord.jsonl"
    err_path = tmp_path / "fjord.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        fjord_proc = subprocess.Popen(
            [fjord_bin(), "consume", topic, "--bootstrap", b.bootstrap, "--group", group, "--from-beginning",
             "--format", "json", "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500"],
            stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    confluent = Consumer(consumer_conf(b.bootstrap, **{
        "group.id": group, "enable.partition.eof": False, "enable.auto.commit": True,
        "enable.auto.offset.store": True, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500}))
    try:
        confluent.subscribe([topic])
        mine: list[Rec] = []

        def fjord_records():
            return [json.loads(l) for l in out_path.read_text().splitlines() if l.strip()]

        def poll_until(predicate, timeout, message, fjord_running=True):
            deadline = time.monotonic() + timeout
            while not predicate():
                assert not fjord_running or fjord_proc.poll() is None, err_path.read_text()
                assert time.monotonic() < deadline, f"timed out waiting for {message}; " \
                    f"confluent has {len(mine)}, fjord {len(fjord_records())}: {err_path.read_text()[-3000:]}"
                for m in confluent.consume(num_messages=500, timeout=0.2):
                    assert m.error() is None, m.error()
                    mine.append(Rec(m.key(), m.value(), m.partition(), m.offset()))

        poll_until(lambda: len(mine) + len(fjord_records()) >= 400, 60, "all 400 records")
        theirs = fjord_records()
        assert mine and theirs, "both members must get partitions"
        mine_parts = {r.partition for r in mine}
        their_parts = {o["partition"] for o in theirs}
        assert not mine_parts & their_parts, (mine_parts, their_parts)
        assert mine_parts | their_parts == {0, 1, 2, 3}
        seen = sorted([(r.partition, r.offset) for r in mine] + [(o["partition"], o["offset"]) for o in theirs])
        assert seen == sorted((p, o) for p in range(4) for o in range(100))

        # The fjord member leaves (Ctrl-C): it commits, leaves the group, and its partitions move
        # to the confluent consumer, which reads only what is new on them.
        fjord_proc.send_signal(signal.SIGINT)
        assert fjord_proc.wait(timeout=30) == 0, err_path.read_text()
        confluent_produce(b.bootstrap, topic, [Rec(None, b"second-%d" % i, partition=i % 4) for i in range(40)])
        before = len(mine)
        poll_until(lambda: len(mine) - before >= 40, 60, "the 40 new records after the fjord member left",
                   fjord_running=False)
        new = mine[before:]
        assert sorted(r.value for r in new) == sorted(b"second-%d" % i for i in range(40))
    finally:
        if fjord_proc.poll() is None:
            fjord_proc.kill()
        confluent.close()


def test_produce_and_consume_fail_clearly_without_a_broker():
    start = time.monotonic()
    proc = fjord("produce", "t", "--bootstrap", "127.0.0.1:1", "-X", "max.block.ms=2000", input=b"x\n",
                 check=False)
    assert proc.returncode != 0
    err = proc.stderr.decode()
    assert "not available after 2000 ms" in err and "cannot connect to 127.0.0.1:1" in err, err
    proc = fjord("consume", "t", "--bootstrap", "127.0.0.1:1", check=False)
    assert proc.returncode != 0 and "cannot connect to 127.0.0.1:1" in proc.stderr.decode()
    assert time.monotonic() - start < 30


def test_produce_reports_the_offending_line(broker):
    topic = unique("bad-lines")
    create_topic(broker.bootstrap, topic)
    proc = fjord("produce", topic, "--bootstrap", broker.bootstrap, "--key-separator", "=",
                 input=b"a=1\nb=2\nno separator here\nc=3\n", check=False)
    assert proc.returncode != 0
    assert "line 3" in proc.stderr.decode() and "no key separator" in proc.stderr.decode()
    # The lines before it were delivered.
    got = fjord_consume_json(broker.bootstrap, topic, 2)
    assert [(o["key"], o["value"]) for o in got] == [("a", "1"), ("b", "2")]
    big = b"x" * 2_000_000 + b"\n"
    proc = fjord("produce", topic, "--bootstrap", broker.bootstrap, input=big, check=False)
    assert proc.returncode != 0 and "max.request.size" in proc.stderr.decode()
    proc = fjord("produce", topic, "--bootstrap", broker.bootstrap, "--acks", "7", input=b"x\n", check=False)
    assert proc.returncode != 0 and "acks" in proc.stderr.decode()


def test_consume_partition_and_offset_and_produce_from_file(broker, tmp_path: Path):
    topic = unique("file")
    create_topic(broker.bootstrap, topic, partitions=2)
    path = tmp_path / "lines.txt"
    path.write_bytes(b"".join(b"line-%d\n" % i for i in range(1000)))
    fjord("produce", topic, "--bootstrap", broker.bootstrap, "--file", str(path), "--partition", "1")
    out = fjord("consume", topic, "--bootstrap", broker.bootstrap, "--partition", "1", "--offset", "990",
                "--timeout-ms", "3000").stdout
    assert out.splitlines() == [b"line-%d" % i for i in range(990, 1000)]
    out = fjord("consume", topic, "--bootstrap", broker.bootstrap, "--partition", "0", "--from-beginning",
                "--timeout-ms", "1500").stdout
    assert out == b""
    proc = fjord("consume", topic, "--bootstrap", broker.bootstrap, "--partition", "5", check=False)
    assert proc.returncode != 0 and "no partition 5" in proc.stderr.decode()


def test_group_consume_resumes_after_committed_offsets(broker):
    topic, group = unique("resume"), unique("g")
    create_topic(broker.bootstrap, topic, partitions=2)
    fjord("produce", topic, "--bootstrap", broker.bootstrap, input=b"".join(b"r%d\n" % i for i in range(50)))
    first = fjord("consume", topic, "--bootstrap", broker.bootstrap, "--group", group, "--from-beginning",
                  "--max-messages", "50").stdout.splitlines()
    assert sorted(first) == sorted(b"r%d" % i for i in range(50))
    fjord("produce", topic, "--bootstrap", broker.bootstrap, input=b"".join(b"s%d\n" % i for i in range(10)))
    second = fjord("consume", topic, "--bootstrap", broker.bootstrap, "--group", group,
                   "--max-messages", "10").stdout.splitlines()
    assert sorted(second) == sorted(b"s%d" % i for i in range(10))


def test_consume_include_pattern_reads_matching_topics(broker):
    prefix = unique("pat")
    for name in ("a", "b", "other"):
        create_topic(broker.bootstrap, f"{prefix}-{name}" if name != "other" else f"x{prefix}")
    for name in ("a", "b"):
        confluent_produce(broker.bootstrap, f"{prefix}-{name}", [Rec(None, f"{name}{i}".encode()) for i in range(3)])
    confluent_produce(broker.bootstrap, f"x{prefix}", [Rec(None, b"nope")])
    got = fjord_consume_json(broker.bootstrap, "", 6, "--include", f"{prefix}-.*", "--group", unique("g"))
    assert sorted(o["value"] for o in got) == ["a0", "a1", "a2", "b0", "b1", "b2"]
    proc = fjord("consume", "--bootstrap", broker.bootstrap, "--include", "x", check=False)
    assert proc.returncode != 0 and "--group" in proc.stderr.decode()


def test_bench_produce_and_consume_report_what_they_did(broker):
    topic = unique("bench")
    create_topic(broker.bootstrap, topic, partitions=2)
    out = fjord("bench", "produce", topic, "--bootstrap", broker.bootstrap, "--records", "3000",
                "--record-size", "200", "--throughput", "20000", "--acks", "all",
                "--compression", "lz4").stdout.decode()
    m = re.search(r"^3000 records, ([0-9.]+) records/sec \(([0-9.]+) MB/sec\) sent, .* ms 50th, "
                  r".* ms 99th, .* ms 99.9th\.$", out, re.M)
    assert m, out
    # The --throughput cap holds (3000 records at 20,000/s take at least ~150 ms).
    assert float(m.group(1)) <= 21000, out
    # Every record is in the topic, with the requested size.
    got = confluent_consume(broker.bootstrap, topic, {0: 0, 1: 0})
    assert len(got) == 3000 and all(len(r.value) == 200 for r in got)
    out = fjord("bench", "consume", topic, "--bootstrap", broker.bootstrap, "--records", "3000").stdout.decode()
    assert re.search(r"^3000 records, [0-9.]+ records/sec \([0-9.]+ MB/sec\) consumed", out, re.M), out
    proc = fjord("bench", "consume", unique("missing"), "--bootstrap", broker.bootstrap, "--records", "10",
                 "--timeout-ms", "500", check=False)
    assert proc.returncode != 0
