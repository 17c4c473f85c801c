"""Thin, uniform wrappers over the three real clients used by the interop suite.

confluent-kafka (librdkafka, new), kafka-python (pure Python) and kcat (the system
package, old librdkafka). Every consumer here uses manual assignment with explicit
offsets: Fjord has no consumer groups yet. Every call is bounded in time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass

import confluent_kafka
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import kafka
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kafka.client_async import KafkaClient

CLIENTS = ("confluent", "kafka-python", "kcat")
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


@dataclass(frozen=True)
class Rec:
    """A record as produced or consumed. Bytes everywhere so comparisons are byte-exact."""

    key: bytes | None
    value: bytes | None
    partition: int | None = None
    offset: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: int | None = None
    timestamp_type: str | None = None  # "create" | "log_append" when known

    def payload(self):
        return (self.partition, self.offset, self.key, self.value, self.headers)


def wait_until(predicate, timeout: float, interval: float = 0.05, message: str = "condition"):
    """Poll `predicate` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {last!r})")
        time.sleep(interval)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------------------------
# confluent-kafka
# --------------------------------------------------------------------------------------------

def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, name: str, partitions: int = 1, config: dict | None = None,
                 timeout: float = 30) -> None:
    """Create a topic through confluent-kafka's AdminClient and wait for metadata to show it."""
    a = admin(bootstrap)
    futures = a.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        request_timeout=timeout,
    )
    futures[name].result(timeout=timeout)

    def visible():
        md = a.list_topics(topic=name, timeout=10)
        t = md.topics.get(name)
        return t is not None and t.error is None and len(t.partitions) == partitions

    wait_until(visible, timeout, message=f"topic {name} with {partitions} partitions in metadata")


def producer_conf(bootstrap: str, **extra) -> dict:
    conf = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": False,
        "acks": "all",
        "linger.ms": 5,
    }
    conf.update(extra)
    return conf


def confluent_produce(bootstrap: str, topic: str, records: list[Rec], timeout: float = 60,
                      **conf) -> list[Rec]:
    """Produce `records` and return them with the partition/offset from each delivery report.

    Fails on the first delivery error. Honors Rec.partition, headers and timestamp.
    """
    p = Producer(producer_conf(bootstrap, **conf))
    results: dict[int, Rec] = {}
    errors: list[str] = []

    for i, r in enumerate(records):
        def on_delivery(err, msg, i=i, r=r):
            if err is not None:
                errors.append(f"record {i}: {err}")
            else:
                results[i] = Rec(r.key, r.value, msg.partition(), msg.offset(), r.headers,
                                 msg.timestamp()[1])
        kwargs = {"key": r.key, "value": r.value, "on_delivery": on_delivery}
        if r.partition is not None:
            kwargs["partition"] = r.partition
        if r.headers:
            kwargs["headers"] = list(r.headers)
        if r.timestamp is not None:
            kwargs["timestamp"] = r.timestamp
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(timeout)
    assert remaining == 0, f"{remaining} records not delivered within {timeout}s"
    assert not errors, f"delivery errors: {errors[:5]} ({len(errors)} total)"
    return [results[i] for i in range(len(records))]


def consumer_conf(bootstrap: str, **extra) -> dict:
    conf = {
        "bootstrap.servers": bootstrap,
        # confluent-kafka refuses to build a consumer without group.id; we never join or commit.
        "group.id": unique("interop"),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "check.crcs": True,
    }
    conf.update(extra)
    return conf


def _confluent_rec(msg) -> Rec:
    ts_type, ts = msg.timestamp()
    kind = {confluent_kafka.TIMESTAMP_CREATE_TIME: "create",
            confluent_kafka.TIMESTAMP_LOG_APPEND_TIME: "log_append"}.get(ts_type)
    return Rec(msg.key(), msg.value(), msg.partition(), msg.offset(),
               tuple(msg.headers() or ()), ts, kind)


def confluent_consume(bootstrap: str, topic: str, partitions: dict[int, int],
                      count: int | None = None, timeout: float = 60, **conf) -> list[Rec]:
    """Consume from explicit {partition: start offset} assignments.

    Stops when `count` records were read or, with count=None, when every partition hit EOF.
    Raises on any consumer error (CRC, broker errors...).
    """
    c = Consumer(consumer_conf(bootstrap, **conf))
    try:
        c.assign([TopicPartition(topic, p, off) for p, off in partitions.items()])
        out: list[Rec] = []
        eof: set[int] = set()
        deadline = time.monotonic() + timeout
        while True:
            if count is not None and len(out) >= count:
                break
            if count is None and eof >= set(partitions):
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"confluent consumer: got {len(out)} records (wanted {count}, eof {sorted(eof)}) "
                    f"within {timeout}s")
            msgs = c.consume(num_messages=1000, timeout=0.5)
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        eof.add(m.partition())
                        continue
                    raise KafkaException(err)
                out.append(_confluent_rec(m))
                eof.discard(m.partition())
        return out
    finally:
        c.close()


def confluent_watermarks(bootstrap: str, topic: str, partition: int, timeout: float = 10):
    c = Consumer(consumer_conf(bootstrap))
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout, cached=False)
    finally:
        c.close()


# --------------------------------------------------------------------------------------------
# kafka-python
# --------------------------------------------------------------------------------------------

def kp_produce(bootstrap: str, topic: str, records: list[Rec], timeout: float = 60, **conf) -> list[Rec]:
    cfg = {"bootstrap_servers": bootstrap, "acks": "all", "linger_ms": 5}
    cfg.update(conf)
    p = KafkaProducer(**cfg)
    try:
        futures = []
        for r in records:
            futures.append(p.send(topic, key=r.key, value=r.value, partition=r.partition,
                                  headers=list(r.headers) or None, timestamp_ms=r.timestamp))
        p.flush(timeout=timeout)
        out = []
        for r, f in zip(records, futures):
            md = f.get(timeout=timeout)
            out.append(Rec(r.key, r.value, md.partition, md.offset, r.headers, md.timestamp))
        return out
    finally:
        p.close(timeout=10)


def _kp_rec(m) -> Rec:
    return Rec(m.key, m.value, m.partition, m.offset, tuple(m.headers or ()), m.timestamp,
               {0: "create", 1: "log_append"}.get(m.timestamp_type))


def kp_consumer(bootstrap: str, **conf) -> KafkaConsumer:
    # kafka-python 2.3's receive_message_max_bytes (1 MB) is below one fetch of a few full
    # partitions (max_partition_fetch_bytes is 1 MiB each, fetch_max_bytes 50 MiB): it drops
    # such a response as an "Invalid frame length" and retries forever, against Kafka too.
    cfg = {"bootstrap_servers": bootstrap, "group_id": None, "enable_auto_commit": False,
           "auto_offset_reset": "earliest", "check_crcs": True,
           "receive_message_max_bytes": 64 * 1024 * 1024}
    cfg.update(conf)
    return KafkaConsumer(**cfg)


def kp_consume(bootstrap: str, topic: str, partitions: dict[int, int], count: int | None = None,
               timeout: float = 60, **conf) -> list[Rec]:
    """Consume with kafka-python from explicit offsets; count=None reads to the end offsets."""
    c = kp_consumer(bootstrap, **conf)
    try:
        tps = [KpTopicPartition(topic, p) for p in partitions]
        c.assign(tps)
        for tp in tps:
            c.seek(tp, partitions[tp.partition])
        if count is None:
            ends = c.end_offsets(tps)
            count = sum(max(0, ends[tp] - partitions[tp.partition]) for tp in tps)
        out: list[Rec] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"kafka-python consumer: got {len(out)} of {count} records within {timeout}s")
            batch = c.poll(timeout_ms=500, max_records=5000)
            for tp in sorted(batch, key=lambda t: t.partition):
                out.extend(_kp_rec(m) for m in batch[tp])
        return out
    finally:
        c.close()


def kp_raw_request(bootstrap: str, request, timeout: float = 20):
    """Send one protocol request (kafka.protocol.*) to the broker and return the response."""
    client = KafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        deadline = time.monotonic() + timeout
        node = None
        while node is None or not client.is_ready(node):
            if time.monotonic() > deadline:
                raise AssertionError("kafka-python raw client: no ready connection")
            node = client.least_loaded_node()
            if node is not None:
                client.maybe_connect(node)
            client.poll(timeout_ms=100)
        future = client.send(node, request)
        client.poll(timeout_ms=timeout * 1000, future=future)
        assert future.is_done, "no response within timeout"
        if future.failed():
            raise future.exception
        return future.value
    finally:
        client.close()


# --------------------------------------------------------------------------------------------
# kcat (system package)
# --------------------------------------------------------------------------------------------

KCAT_KEY_DELIM = "\t"


def kcat_path() -> str:
    path = shutil.which("kcat")
    assert path, "kcat not installed (scripts/test installs it with apt-get install kcat)"
    return path


def kcat_version() -> str:
    return subprocess.run([kcat_path(), "-V"], capture_output=True, text=True, timeout=10).stdout


def kcat_produce(bootstrap: str, topic: str, records: list[Rec], codec: str = "none",
                 partition: int | None = None, headers: tuple[tuple[str, bytes], ...] = (),
                 extra: list[str] = (), timeout: float = 120) -> None:
    """Produce keyed lines through one kcat process (stdin fed in one go).

    Keys and values must not contain the key delimiter (tab) or newlines.
    """
    lines = []
    for r in records:
        assert r.key is not None and r.value is not None
        assert b"\n" not in r.key + r.value and b"\t" not in r.key
        lines.append(r.key + KCAT_KEY_DELIM.encode() + r.value + b"\n")
    args = [kcat_path(), "-b", bootstrap, "-t", topic, "-P", "-K", KCAT_KEY_DELIM,
            "-z", codec, "-X", "linger.ms=5", "-X", "request.required.acks=-1"]
    if partition is not None:
        args += ["-p", str(partition)]
    for k, v in headers:
        args += ["-H", f"{k}={v.decode()}"]
    args += list(extra)
    proc = subprocess.run(args, input=b"".join(lines), capture_output=True, timeout=timeout)
    assert proc.returncode == 0, f"kcat -P failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}"
    assert b"ERROR" not in proc.stderr, f"kcat -P reported errors: {proc.stderr.decode(errors='replace')}"


# One header line with fixed fields, one line of headers, then raw key and value bytes.
_KCAT_FMT = "%p %o %T %K %S\\n%h\\n%k%s\\n"
_KCAT_HDR = re.compile(rb"(-?\d+) (-?\d+) (-?\d+) (-?\d+) (-?\d+)\n")


def _parse_kcat_headers(line: bytes) -> tuple[tuple[str, bytes], ...]:
    if not line:
        return ()
    out = []
    for item in line.split(b","):
        k, _, v = item.partition(b"=")
        out.append((k.decode(), v))
    return tuple(out)


def parse_kcat_output(data: bytes) -> list[Rec]:
    out: list[Rec] = []
    pos = 0
    while pos < len(data):
        m = _KCAT_HDR.match(data, pos)
        assert m, f"unparseable kcat output at byte {pos}: {data[pos:pos + 200]!r}"
        part, off, ts, klen, vlen = (int(x) for x in m.groups())
        pos = m.end()
        nl = data.index(b"\n", pos)
        headers = _parse_kcat_headers(data[pos:nl])
        pos = nl + 1
        key = data[pos:pos + klen] if klen >= 0 else None
        pos += max(klen, 0)
        value = data[pos:pos + vlen] if vlen >= 0 else None
        pos += max(vlen, 0)
        assert data[pos:pos + 1] == b"\n", f"kcat record framing broken at byte {pos}"
        pos += 1
        out.append(Rec(key, value, part, off, headers, ts))
    return out


def kcat_consume(bootstrap: str, topic: str, partition: int | None = None, offset: str | int = "beginning",
                 count: int | None = None, extra: list[str] = (), timeout: float = 120) -> list[Rec]:
    """Consume with kcat -C until the end of the partition(s) (-e) or `count` records (-c)."""
    args = [kcat_path(), "-b", bootstrap, "-t", topic, "-C", "-o", str(offset), "-f", _KCAT_FMT,
            "-X", "check.crcs=true"]
    if partition is not None:
        args += ["-p", str(partition)]
    if count is not None:
        args += ["-c", str(count)]
    else:
        args += ["-e"]
    args += list(extra)
    proc = subprocess.run(args, capture_output=True, timeout=timeout)
    assert proc.returncode == 0, f"kcat -C failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}"
    return parse_kcat_output(proc.stdout)


def kcat_query_offset(bootstrap: str, topic: str, partition: int, timestamp: int, timeout: float = 30) -> int:
    """kcat -Q: offset for a timestamp (ListOffsets by timestamp)."""
    proc = subprocess.run([kcat_path(), "-b", bootstrap, "-Q", "-t", f"{topic}:{partition}:{timestamp}"],
                          capture_output=True, timeout=timeout)
    assert proc.returncode == 0, f"kcat -Q failed: {proc.stderr.decode(errors='replace')}"
    m = re.search(rb"offset (-?\d+)", proc.stdout)
    assert m, f"unexpected kcat -Q output: {proc.stdout!r}"
    return int(m.group(1))


def libversions() -> str:
    m = re.search(r"Version (\S+) .*?librdkafka (\S+)", kcat_version(), re.S)
    kcat_desc = f"kcat {m.group(1)} (librdkafka {m.group(2)})" if m else "kcat (unknown)"
    return (f"{kcat_desc}; confluent-kafka {confluent_kafka.version()[0]} "
            f"(librdkafka {confluent_kafka.libversion()[0]}); kafka-python {kafka.__version__}")


# --------------------------------------------------------------------------------------------
# Raw protocol requests (through kafka-python's protocol classes) for exact broker answers
# --------------------------------------------------------------------------------------------

def raw_fetch(bootstrap: str, topic: str, partition: int, offset: int, max_wait_ms: int = 100,
              min_bytes: int = 1, max_bytes: int = 50 * 1024 * 1024, partition_max_bytes: int = 10 * 1024 * 1024,
              timeout: float = 30):
    """Fetch v4. Returns (error_code, high_watermark, records bytes)."""
    from kafka.protocol.fetch import FetchRequest

    req = FetchRequest[4](replica_id=-1, max_wait_time=max_wait_ms, min_bytes=min_bytes, max_bytes=max_bytes,
                          isolation_level=0, topics=[(topic, [(partition, offset, partition_max_bytes)])])
    resp = kp_raw_request(bootstrap, req, timeout=timeout)
    [(_, partitions)] = resp.topics
    [(p, error_code, high_watermark, _lso, _aborted, records)] = partitions
    assert p == partition
    return error_code, high_watermark, records


def raw_batches(records: bytes):
    """Complete record batches in a fetch answer: [(base_offset, [(offset, value), ...])].

    A trailing partial batch (allowed by the protocol) is ignored.
    """
    from kafka.record.memory_records import MemoryRecords

    out = []
    mr = MemoryRecords(records or b"")
    while mr.has_next():
        batch = mr.next_batch()
        if batch is None:
            break
        out.append((batch.base_offset, [(r.offset, r.value) for r in batch]))
    return out


def build_batch(values: list[bytes], compression_type: int = 0) -> bytes:
    from kafka.record.memory_records import MemoryRecordsBuilder

    b = MemoryRecordsBuilder(magic=2, compression_type=compression_type, batch_size=2**31 - 1)
    now = int(time.time() * 1000)
    for v in values:
        assert b.append(timestamp=now, key=None, value=v, headers=[]) is not None
    b.close()
    return b.buffer()


def raw_pipeline(bootstrap: str, requests: list, timeout: float = 20) -> list:
    """Write all requests on one plain socket at once (pipelined); return the responses in order,
    None for requests that get no answer (acks=0 produce)."""
    import socket

    from kafka.protocol.parser import KafkaProtocol

    proto = KafkaProtocol(client_id="fjord-interop")
    for r in requests:
        proto.send_request(r)
    expected = sum(1 for r in requests if r.expect_response())
    host, port = bootstrap.rsplit(":", 1)
    got = []
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(proto.send_bytes())
        while len(got) < expected:
            data = sock.recv(65536)
            assert data, f"connection closed after {len(got)} of {expected} responses"
            got.extend(resp for _corr, resp in proto.receive_bytes(data))
    it = iter(got)
    return [next(it) if r.expect_response() else None for r in requests]


def raw_produce(bootstrap: str, topic: str, partition: int, values: list[bytes], acks: int = -1,
                compression_type: int = 0, timeout: float = 30):
    """Produce v3 with one record batch. Returns (error_code, base_offset)."""
    from kafka.protocol.produce import ProduceRequest

    assert acks != 0, "use raw_pipeline for acks=0 (kafka-python's client never writes acks=0 requests)"
    req = ProduceRequest[3](transactional_id=None, required_acks=acks, timeout=int(timeout * 1000),
                            topics=[(topic, [(partition, build_batch(values, compression_type))])])
    resp = kp_raw_request(bootstrap, req, timeout=timeout)
    [(_, partitions)] = resp.topics
    [(p, error_code, offset, _ts)] = partitions
    assert p == partition
    return error_code, offset


def raw_list_offset(bootstrap: str, topic: str, partition: int, timestamp: int, timeout: float = 20):
    """ListOffsets v4. Returns (error_code, timestamp, offset)."""
    from kafka.protocol.list_offsets import ListOffsetsRequest

    req = ListOffsetsRequest[4](replica_id=-1, isolation_level=0,
                                topics=[(topic, [(partition, -1, timestamp)])])
    resp = kp_raw_request(bootstrap, req, timeout=timeout)
    [(_, partitions)] = resp.topics
    [(p, error_code, ts, offset, _epoch)] = partitions
    assert p == partition
    return error_code, ts, offset
