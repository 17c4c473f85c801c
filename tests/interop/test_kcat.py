"""kcat from the system packages (old librdkafka 2.0.2) against Fjord, next to the new librdkafka.

Old librdkafka releases reject some ApiVersions answers that newer ones accept, so both are exercised.
"""

import json
import subprocess

import confluent_kafka

from kafka_clients import (
    Rec, confluent_consume, confluent_produce, create_topic, kcat_consume, kcat_path, kcat_produce,
    kcat_query_offset, kcat_version, libversions, unique,
)


def test_versions(capsys):
    out = kcat_version()
    assert "librdkafka 2." in out, out
    with capsys.disabled():
        print(f"\n[interop] {libversions()}")
    assert confluent_kafka.libversion()[0] != "", "confluent-kafka has a bundled librdkafka"


def test_kcat_metadata_listing(broker):
    topic = unique("kcat-md")
    create_topic(broker.bootstrap, topic, partitions=3)
    proc = subprocess.run([kcat_path(), "-b", broker.bootstrap, "-L", "-J"], capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    md = json.loads(proc.stdout)
    [b] = md["brokers"]
    assert b["name"] == f"{broker.bootstrap}/{b['id']}" or b["name"].startswith(broker.bootstrap), b
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics, f"{topic} missing from kcat -L: {list(topics)}"
    t = topics[topic]
    assert "error" not in t, t
    assert sorted(p["partition"] for p in t["partitions"]) == [0, 1, 2]
    for p in t["partitions"]:
        assert p["leader"] == b["id"] and [r["id"] for r in p["replicas"]] == [b["id"]]

    # Plain-text listing too (what people type).
    proc = subprocess.run([kcat_path(), "-b", broker.bootstrap, "-L", "-t", topic], capture_output=True,
                          timeout=30)
    text = proc.stdout.decode()
    assert proc.returncode == 0 and "1 brokers:" in text and f'topic "{topic}" with 3 partitions' in text, text


def test_kcat_produce_consume_query(broker):
    topic = unique("kcat-rt")
    create_topic(broker.bootstrap, topic)
    recs = [Rec(key=b"k%d" % i, value=b"kcat value %d" % i) for i in range(500)]
    kcat_produce(broker.bootstrap, topic, recs, codec="lz4")
    got = kcat_consume(broker.bootstrap, topic, partition=0)
    assert [(r.offset, r.key, r.value) for r in got] == [(i, r.key, r.value) for i, r in enumerate(recs)]
    # Consume a bounded count from an offset, and tail the end (-o -10).
    got = kcat_consume(broker.bootstrap, topic, partition=0, offset=100, count=5)
    assert [r.offset for r in got] == [100, 101, 102, 103, 104]
    got = kcat_consume(broker.bootstrap, topic, partition=0, offset=-10)
    assert [r.offset for r in got] == list(range(490, 500))
    # -Q: ListOffsets by timestamp from the old client; timestamps here are "now", so 0 finds offset 0.
    assert kcat_query_offset(broker.bootstrap, topic, 0, 0) == 0
    # The new librdkafka reads what the old one wrote.
    got = confluent_consume(broker.bootstrap, topic, {0: 0}, count=None)
    assert [r.value for r in got] == [r.value for r in recs]


def test_kcat_reads_new_librdkafka_batches(broker):
    topic = unique("kcat-new")
    create_topic(broker.bootstrap, topic, partitions=2)
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        confluent_produce(broker.bootstrap, topic,
                          [Rec(key=b"%s-%d" % (codec.encode(), i), value=b"v" * (i % 50), partition=i % 2)
                           for i in range(200)], **{"compression.type": codec})
    got = kcat_consume(broker.bootstrap, topic)
    assert len(got) == 1000
    assert sorted(r.key for r in got) == sorted(
        b"%s-%d" % (c.encode(), i) for c in ("none", "gzip", "snappy", "lz4", "zstd") for i in range(200))
    for r in got:
        i = int(r.key.split(b"-")[1])
        assert r.value == b"v" * (i % 50) and r.partition == i % 2


def test_kcat_old_protocol_fallback_does_not_hurt_broker(broker):
    """With api.version.request=false, librdkafka assumes broker.version.fallback (0.10.0): that old protocol
    generation (Produce v2, magic 1) is not something Fjord must serve, so only check Fjord stays up."""
    topic = unique("kcat-fallback")
    create_topic(broker.bootstrap, topic)
    subprocess.run([kcat_path(), "-b", broker.bootstrap, "-L", "-X", "api.version.request=false",
                    "-m", "5"], capture_output=True, timeout=30)
    assert broker.running, broker.stderr_tail()
    kcat_produce(broker.bootstrap, topic, [Rec(b"k", b"still fine")])
    assert [r.value for r in kcat_consume(broker.bootstrap, topic, partition=0)] == [b"still fine"]
