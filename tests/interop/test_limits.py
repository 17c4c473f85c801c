"""Limits and bad requests get Kafka's error codes, and the broker keeps serving."""

import os
import socket
import struct
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource
from kafka import KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kafka.errors import MessageSizeTooLargeError, OffsetOutOfRangeError
from kafka.protocol.produce import ProduceRequest

from kafka_clients import (
    Rec, admin, confluent_consume, kcat_consume, confluent_produce, consumer_conf, create_topic, kp_consume, kp_consumer,
    build_batch, confluent_watermarks, producer_conf, raw_batches, raw_pipeline, raw_fetch, raw_list_offset, raw_produce, unique, wait_until,
)

MESSAGE_TOO_LARGE = 10
UNKNOWN_TOPIC_OR_PARTITION = 3
OFFSET_OUT_OF_RANGE = 1
UNSUPPORTED_VERSION = 35


def confluent_deliver_one(bootstrap, topic, value, **conf):
    """Produce one record; return (KafkaError or None, offset)."""
    p = Producer(producer_conf(bootstrap, **conf))
    result = {}
    p.produce(topic, value=value, on_delivery=lambda err, msg: result.update(err=err, offset=msg.offset()))
    assert p.flush(30) == 0, "no delivery report within 30 s"
    return result["err"], result["offset"]


def test_max_message_bytes_enforced_confluent(broker):
    topic = unique("lim-confluent")
    create_topic(broker.bootstrap, topic, config={"max.message.bytes": "10000"})
    big = os.urandom(20_000)  # incompressible, well over the topic limit
    err, _ = confluent_deliver_one(broker.bootstrap, topic, big, **{"message.max.bytes": 2_000_000})
    assert err is not None, "a record over max.message.bytes was accepted"
    assert err.code() == KafkaError.MSG_SIZE_TOO_LARGE, f"expected broker MESSAGE_TOO_LARGE (10), got {err}"

    # The broker keeps serving; a record under the limit is accepted and takes offset 0.
    ok = os.urandom(9_000)
    err, offset = confluent_deliver_one(broker.bootstrap, topic, ok)
    assert err is None and offset == 0
    assert [r.value for r in confluent_consume(broker.bootstrap, topic, {0: 0}, count=None)] == [ok]


def test_max_message_bytes_enforced_kafka_python(broker):
    topic = unique("lim-kp")
    create_topic(broker.bootstrap, topic, config={"max.message.bytes": "10000"})
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, max_request_size=2_000_000, acks="all")
    try:
        future = p.send(topic, value=os.urandom(20_000))  # passes the client's own size check
        with pytest.raises(MessageSizeTooLargeError):
            future.get(timeout=30)
        md = p.send(topic, value=b"fits").get(timeout=30)
        assert md.offset == 0
    finally:
        p.close(timeout=10)


def test_max_message_bytes_raw_produce(broker):
    topic = unique("lim-raw")
    create_topic(broker.bootstrap, topic, config={"max.message.bytes": "5000"})
    err, _ = raw_produce(broker.bootstrap, topic, 0, [os.urandom(6000)])
    assert err == MESSAGE_TOO_LARGE
    # A batch of small records whose total is over the limit is one oversized batch as well.
    err, _ = raw_produce(broker.bootstrap, topic, 0, [os.urandom(1000) for _ in range(8)])
    assert err == MESSAGE_TOO_LARGE
    err, offset = raw_produce(broker.bootstrap, topic, 0, [b"small"])
    assert (err, offset) == (0, 0)


def test_record_just_under_the_default_limit(broker):
    """A ~1 MB record (under max.message.bytes' default 1048588) goes through every client."""
    topic = unique("lim-1mb")
    create_topic(broker.bootstrap, topic)
    value = os.urandom(1_000_000)
    err, offset = confluent_deliver_one(broker.bootstrap, topic, value, **{"message.max.bytes": 2_000_000})
    assert err is None and offset == 0, err
    assert [r.value for r in confluent_consume(broker.bootstrap, topic, {0: 0}, count=1)] == [value]
    assert [r.value for r in kp_consume(broker.bootstrap, topic, {0: 0}, count=1)] == [value]
    assert [r.value for r in kcat_consume(broker.bootstrap, topic, partition=0)] == [value]


def test_broker_message_max_bytes_is_the_topic_default(broker_factory):
    broker = broker_factory({"message.max.bytes": 5000})
    topic = unique("lim-default")
    create_topic(broker.bootstrap, topic)
    res = ConfigResource("topic", topic)
    a = admin(broker.bootstrap)
    configs = a.describe_configs([res])[res].result(timeout=15)
    assert configs["max.message.bytes"].value == "5000"
    err, _ = confluent_deliver_one(broker.bootstrap, topic, os.urandom(8000), **{"message.max.bytes": 2_000_000})
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
    err, offset = confluent_deliver_one(broker.bootstrap, topic, os.urandom(3000))
    assert err is None and offset == 0


def test_acks_zero_raw_produce_is_appended(broker):
    topic = unique("lim-acks0")
    create_topic(broker.bootstrap, topic)
    def produce(acks, values):
        return ProduceRequest[3](transactional_id=None, required_acks=acks, timeout=10000,
                                 topics=[(topic, [(0, build_batch(values))])])

    # Pipelined on one connection: no answer for acks=0, and the next answer still matches its request.
    responses = raw_pipeline(broker.bootstrap, [produce(0, [b"fire", b"and", b"forget"]), produce(1, [b"acked"]),
                                                produce(0, [b"again"]), produce(-1, [b"last"])])
    assert responses[0] is None and responses[2] is None
    assert [r.topics[0][1][0][1:3] for r in (responses[1], responses[3])] == [(0, 3), (0, 5)]
    wait_until(lambda: confluent_watermarks(broker.bootstrap, topic, 0)[1] == 6, 10, message="all batches appended")
    got = confluent_consume(broker.bootstrap, topic, {0: 0}, count=6)
    assert [r.value for r in got] == [b"fire", b"and", b"forget", b"acked", b"again", b"last"]


def test_unknown_partition_raw(broker):
    topic = unique("lim-unknown")
    create_topic(broker.bootstrap, topic, partitions=3)
    assert raw_produce(broker.bootstrap, topic, 7, [b"x"])[0] == UNKNOWN_TOPIC_OR_PARTITION
    assert raw_fetch(broker.bootstrap, topic, 7, 0)[0] == UNKNOWN_TOPIC_OR_PARTITION
    assert raw_list_offset(broker.bootstrap, topic, 7, -1)[0] == UNKNOWN_TOPIC_OR_PARTITION
    missing = unique("no-such-topic")
    # Produce and Fetch never create topics, even with auto.create.topics.enable=true.
    assert raw_produce(broker.bootstrap, missing, 0, [b"x"])[0] == UNKNOWN_TOPIC_OR_PARTITION
    assert raw_fetch(broker.bootstrap, missing, 0, 0)[0] == UNKNOWN_TOPIC_OR_PARTITION
    # The broker still serves the real partitions.
    assert raw_produce(broker.bootstrap, topic, 2, [b"ok"]) == (0, 0)


def test_unknown_partition_clients(broker):
    topic = unique("lim-unknown-cl")
    create_topic(broker.bootstrap, topic, partitions=3)
    p = Producer(producer_conf(broker.bootstrap))
    result = {}
    p.produce(topic, value=b"x", partition=7, on_delivery=lambda err, msg: result.update(err=err))
    assert p.flush(30) == 0
    assert result["err"] is not None and result["err"].code() in (
        KafkaError._UNKNOWN_PARTITION, KafkaError.UNKNOWN_TOPIC_OR_PART), result["err"]



def test_unknown_topic_without_auto_create(broker_factory):
    broker = broker_factory({"auto.create.topics.enable": "false"})
    topic = unique("lim-nocreate")
    err, _ = confluent_deliver_one(broker.bootstrap, topic, b"x", **{"topic.metadata.propagation.max.ms": 1000,
                                                                      "message.timeout.ms": 20000})
    assert err is not None and err.code() in (KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART), err
    md = admin(broker.bootstrap).list_topics(timeout=10)
    assert topic not in md.topics, "topic was auto-created although auto.create.topics.enable=false"


def test_fetch_out_of_range(broker):
    topic = unique("lim-oor")
    create_topic(broker.bootstrap, topic)
    confluent_produce(broker.bootstrap, topic, [Rec(None, b"r%d" % i) for i in range(10)])

    assert raw_fetch(broker.bootstrap, topic, 0, 11)[0] == OFFSET_OUT_OF_RANGE
    assert raw_fetch(broker.bootstrap, topic, 0, 1000)[0] == OFFSET_OUT_OF_RANGE
    assert raw_fetch(broker.bootstrap, topic, 0, -5)[0] == OFFSET_OUT_OF_RANGE
    err, hw, records = raw_fetch(broker.bootstrap, topic, 0, 10)  # the log end is in range, just empty
    assert (err, hw, raw_batches(records)) == (0, 10, [])

    # confluent-kafka with auto.offset.reset=error reports the broker's OFFSET_OUT_OF_RANGE.
    c = Consumer(consumer_conf(broker.bootstrap, **{"auto.offset.reset": "error"}))
    try:
        c.assign([TopicPartition(topic, 0, 50)])
        deadline = time.monotonic() + 20
        err = None
        while err is None and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None:
                assert m.error() is not None, f"got a record at offset {m.offset()} from out-of-range offset 50"
                if m.error().code() != KafkaError._PARTITION_EOF:
                    err = m.error()
        assert err is not None, "no error for an out-of-range fetch offset"
        assert err.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE), err
        assert "out of range" in err.str().lower(), err
    finally:
        c.close()

    # kafka-python without a reset policy raises OffsetOutOfRangeError.
    kc = kp_consumer(broker.bootstrap, auto_offset_reset="none")
    try:
        tp = KpTopicPartition(topic, 0)
        kc.assign([tp])
        kc.seek(tp, 50)
        with pytest.raises(OffsetOutOfRangeError):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                assert not kc.poll(timeout_ms=200), "records delivered from an out-of-range offset"
    finally:
        kc.close()

    # With auto.offset.reset=earliest the clients recover to the start.
    assert len(confluent_consume(broker.bootstrap, topic, {0: 50}, count=10)) == 10
    assert len(kp_consume(broker.bootstrap, topic, {0: 50}, count=10)) == 10


# ---- malformed input on a raw socket ---------------------------------------------------------

def send_frame(bootstrap: str, payload: bytes, size: int | None = None, timeout: float = 10) -> bytes:
    """Send one size-prefixed frame, return everything read until the broker closes or goes quiet."""
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(payload) if size is None else size) + payload)
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            data += chunk
            if len(data) >= 4 and len(data) >= 4 + struct.unpack_from(">i", data)[0]:
                break
        return data


def request_header(api_key: int, api_version: int, correlation_id: int, client_id: bytes = b"interop") -> bytes:
    return struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id)) + client_id


def test_api_versions_unsupported_version_gets_v0_fallback(broker):
    """Old clients (librdkafka 2.0.2) rely on this: an unknown ApiVersions version is answered with a
    v0 response carrying UNSUPPORTED_VERSION and the ApiVersions range, not a dropped connection."""
    resp = send_frame(broker.bootstrap, request_header(18, 99, 4242) + b"\x00" * 8)
    assert len(resp) >= 4 + 4 + 2 + 4, f"no ApiVersions answer (got {resp!r})"
    size, corr, err, count = struct.unpack_from(">iihi", resp)
    assert corr == 4242
    assert err == UNSUPPORTED_VERSION
    keys = {struct.unpack_from(">hhh", resp, 14 + 6 * i)[0]: struct.unpack_from(">hhh", resp, 14 + 6 * i)[1:]
            for i in range(count)}
    assert 18 in keys and keys[18][0] == 0 and keys[18][1] >= 3, f"ApiVersions range missing: {keys}"


@pytest.mark.parametrize("frame", ["garbage", "truncated-header", "huge-size", "negative-size", "unknown-api-key"])
def test_bad_frames_do_not_hurt_the_broker(broker, frame):
    topic = unique("lim-bad")
    create_topic(broker.bootstrap, topic)
    if frame == "garbage":
        send_frame(broker.bootstrap, os.urandom(64))
    elif frame == "truncated-header":
        send_frame(broker.bootstrap, b"\x00\x03")
    elif frame == "huge-size":
        # Over socket.request.max.bytes (100 MiB): the broker must not try to buffer it.
        send_frame(broker.bootstrap, b"\x00" * 16, size=1_000_000_000)
    elif frame == "negative-size":
        send_frame(broker.bootstrap, b"\x00" * 16, size=-7)
    else:
        send_frame(broker.bootstrap, request_header(32000, 0, 1))
    assert broker.running, f"broker died on a {frame} frame\n{broker.stderr_tail()}"
    # Other and new connections are served as before.
    assert raw_produce(broker.bootstrap, topic, 0, [b"still alive"]) == (0, 0)
    assert [r.value for r in kp_consume(broker.bootstrap, topic, {0: 0}, count=1)] == [b"still alive"]
    wait_until(lambda: broker.running, 1, message="broker alive")
