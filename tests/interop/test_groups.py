"""Consumer groups through the real clients (issue 3): partition assignment, rebalances on member
death, at-least-once with synchronous commits, kafka-python group members (alone and mixed with
librdkafka), cooperative-sticky, static membership, committed offsets across restarts, the
AdminClient group APIs, and `__consumer_offsets` staying small under compaction.

Every group member runs its poll loop in its own thread (or its own process when it must be
SIGKILLed), so rebalance callbacks are always served and no client blocks another.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaError, TopicPartition
from kafka import KafkaConsumer

from kafka_clients import Rec, admin, confluent_produce, create_topic, raw_pipeline, unique, wait_until

SESSION_MS = 6000
FAST = {"group.initial.rebalance.delay.ms": 0}


def group_conf(bootstrap: str, group: str, **extra) -> dict:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": SESSION_MS,
        "heartbeat.interval.ms": 500,
        "topic.metadata.refresh.interval.ms": 2000,
    }
    conf.update(extra)
    return conf


class Member:
    """A confluent-kafka group consumer polled by its own thread.

    `assigned` follows the rebalance callbacks (full lists for eager protocols, incremental for
    cooperative); `events` records every callback; `consumed` every (partition, offset) read.
    With commit=True each record is committed synchronously right after it is recorded.
    """

    def __init__(self, bootstrap: str, group: str, topic: str, commit: bool = False, **conf):
        self.topic = topic
        self.commit = commit
        self.lock = threading.Lock()
        self.assigned: set[int] = set()
        self.events: list[tuple[str, list[int]]] = []
        self.consumed: set[tuple[int, int]] = set()
        self.errors: list[str] = []
        self.cooperative = conf.get("partition.assignment.strategy") == "cooperative-sticky"
        self.consumer = Consumer(group_conf(bootstrap, group, **conf))
        self.stop_event = threading.Event()
        self.consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _on_assign(self, _c, parts):
        ps = [p.partition for p in parts]
        with self.lock:
            self.events.append(("assign", sorted(ps)))
            self.assigned = self.assigned | set(ps) if self.cooperative else set(ps)

    def _on_revoke(self, _c, parts):
        ps = [p.partition for p in parts]
        with self.lock:
            self.events.append(("revoke", sorted(ps)))
            self.assigned = self.assigned - set(ps) if self.cooperative else set()

    def _on_lost(self, _c, parts):
        ps = [p.partition for p in parts]
        with self.lock:
            self.events.append(("lost", sorted(ps)))
            self.assigned = self.assigned - set(ps)

    def _run(self):
        while not self.stop_event.is_set():
            m = self.consumer.poll(0.1)
            if m is None:
                continue
            if m.error() is not None:
                if m.error().code() != KafkaError._PARTITION_EOF:
                    self.errors.append(str(m.error()))
                continue
            with self.lock:
                self.consumed.add((m.partition(), m.offset()))
            if self.commit:
                try:
                    self.consumer.commit(message=m, asynchronous=False)
                except Exception as e:  # a commit racing a rebalance: the record is re-read later
                    self.errors.append(f"commit: {e}")

    def snapshot(self) -> set[int]:
        with self.lock:
            return set(self.assigned)

    def n_events(self) -> int:
        with self.lock:
            return len(self.events)

    def close(self, leave: bool = True):
        self.stop_event.set()
        self.thread.join(timeout=30)
        self.consumer.close()


class KpMember:
    """A kafka-python group consumer (subscribe + poll + synchronous commit) in its own thread."""

    def __init__(self, bootstrap: str, group: str, topic: str, commit: bool = True):
        self.lock = threading.Lock()
        self.assigned: set[int] = set()
        self.consumed: set[tuple[int, int]] = set()
        self.errors: list[str] = []
        self.commits = 0
        self.commit = commit
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=SESSION_MS, heartbeat_interval_ms=500,
            metadata_max_age_ms=2000)
        self.consumer.subscribe([topic])
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_event.is_set():
            try:
                batch = self.consumer.poll(timeout_ms=100)
                with self.lock:
                    self.assigned = {tp.partition for tp in self.consumer.assignment()}
                    for tp, msgs in batch.items():
                        self.consumed.update((m.partition, m.offset) for m in msgs)
                if batch and self.commit:
                    self.consumer.commit()
                    self.commits += 1
            except Exception as e:
                self.errors.append(repr(e))
                time.sleep(0.1)

    def snapshot(self) -> set[int]:
        with self.lock:
            return set(self.assigned)

    def close(self):
        self.stop_event.set()
        self.thread.join(timeout=30)
        self.consumer.close()


CHILD = r"""
import json, sys
from confluent_kafka import Consumer, KafkaError
conf = json.loads(sys.argv[1]); topic = sys.argv[2]; commit = sys.argv[3] == "1"
def out(**kw):
    sys.stdout.write(json.dumps(kw) + "\n"); sys.stdout.flush()
def on_assign(c, ps): out(assign=sorted(p.partition for p in ps))
def on_revoke(c, ps): out(revoke=sorted(p.partition for p in ps))
c = Consumer(conf)
c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
while True:
    m = c.poll(0.1)
    if m is None or m.error() is not None:
        continue
    out(consumed=[m.partition(), m.offset()])
    if commit:
        try:
            c.commit(message=m, asynchronous=False)
        except Exception as e:
            out(error=str(e))
"""


class ChildMember:
    """A confluent-kafka group consumer in a subprocess, so that it can die without a LeaveGroup."""

    def __init__(self, bootstrap: str, group: str, topic: str, commit: bool = False, **conf):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(group_conf(bootstrap, group, **conf)), topic,
             "1" if commit else "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lock = threading.Lock()
        self.assigned: set[int] = set()
        self.consumed: set[tuple[int, int]] = set()
        self.events: list = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            with self.lock:
                self.events.append(ev)
                if "assign" in ev:
                    self.assigned = set(ev["assign"])
                elif "revoke" in ev:
                    self.assigned = set()
                elif "consumed" in ev:
                    self.consumed.add(tuple(ev["consumed"]))

    def snapshot(self) -> set[int]:
        with self.lock:
            return set(self.assigned)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.reader.join(timeout=10)

    def close(self):
        if self.proc.poll() is None:
            self.kill()


def assignments(members) -> list[set[int]]:
    return [m.snapshot() for m in members]


def partitioned(members, partitions: int, sizes: list[int] | None = None):
    """True when the members' assignments cover range(partitions) exactly once (with those sizes)."""
    got = assignments(members)
    flat = sorted(p for a in got for p in a)
    if flat != list(range(partitions)):
        return False
    return sizes is None or sorted(len(a) for a in got) == sorted(sizes)


def produce_spread(bootstrap: str, topic: str, partitions: int, n: int) -> set[tuple[int, int]]:
    recs = confluent_produce(bootstrap, topic, [Rec(b"k%d" % i, b"v%d" % i, partition=i % partitions)
                                                for i in range(n)])
    return {(r.partition, r.offset) for r in recs}


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=15)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


@pytest.fixture
def cleanup():
    things = []
    yield things
    for t in reversed(things):
        try:
            t.close()
        except Exception:
            pass


# ------------------------------------------------------------------------------------------------

def test_three_consumers_get_two_partitions_each(broker_factory, cleanup):
    broker = broker_factory(FAST)
    topic, group = unique("groups"), unique("g")
    create_topic(broker.bootstrap, topic, partitions=6)
    members = [Member(broker.bootstrap, group, topic) for _ in range(3)]
    cleanup.extend(members)
    wait_until(lambda: partitioned(members, 6, [2, 2, 2]), timeout=30, interval=0.2,
               message="three members with two partitions each")


def test_killed_member_partitions_move_and_no_record_is_lost(broker_factory, cleanup):
    broker = broker_factory(FAST)
    topic, group = unique("groups"), unique("g")
    create_topic(broker.bootstrap, topic, partitions=6)
    a = Member(broker.bootstrap, group, topic, commit=True)
    b = Member(broker.bootstrap, group, topic, commit=True)
    child = ChildMember(broker.bootstrap, group, topic, commit=True)
    cleanup.extend([a, b, child])
    members = [a, b, child]
    wait_until(lambda: partitioned(members, 6, [2, 2, 2]), timeout=30, interval=0.2,
               message="three members with two partitions each")
    # Produced once the group is settled, so that the child owns (and reads) a third of it.
    produced = produce_spread(broker.bootstrap, topic, 6, 600)
    wait_until(lambda: len(child.consumed) > 0, timeout=20, message="the child consumed records")
    produced |= produce_spread(broker.bootstrap, topic, 6, 600)
    child.kill()
    killed_at = time.monotonic()
    wait_until(lambda: partitioned([a, b], 6, [3, 3]), timeout=SESSION_MS / 1000 + 10, interval=0.1,
               message="the two survivors own all six partitions")
    took = time.monotonic() - killed_at
    assert took < SESSION_MS / 1000 + 6, f"rebalance after the kill took {took:.1f}s"
    produced |= produce_spread(broker.bootstrap, topic, 6, 600)

    def all_seen():
        return produced <= (a.consumed | b.consumed | child.consumed)

    wait_until(all_seen, timeout=30, interval=0.2, message="every produced record consumed")
    ends = {}
    for p, o in produced:
        ends[p] = max(ends.get(p, 0), o + 1)
    wait_until(lambda: committed(broker.bootstrap, group, topic, 6) == ends, timeout=20, interval=0.5,
               message=f"committed offsets at the log ends {ends}")
    assert not [e for e in a.errors + b.errors if not e.startswith("commit:")]


def test_kafka_python_group_consumer_alone(broker_factory, cleanup):
    broker = broker_factory(FAST)
    topic, group = unique("groups"), unique("g")
    create_topic(broker.bootstrap, topic, partitions=3)
    produced = produce_spread(broker.bootstrap, topic, 3, 300)
    kp = KpMember(broker.bootstrap, group, topic)
    cleanup.append(kp)
    wait_until(lambda: kp.snapshot() == {0, 1, 2}, timeout=30, interval=0.2, message="kafka-python owns all")
    wait_until(lambda: produced <= kp.consumed, timeout=30, interval=0.2, message="kafka-python read all")
    wait_until(lambda: committed(broker.bootstrap, group, topic, 3) == {0: 100, 1: 100, 2: 100},
               timeout=20, interval=0.5, message="kafka-python's commits")
    assert not kp.errors, kp.errors


def test_mixed_group_kafka_python_and_confluent(broker_factory, cleanup):
    broker = broker_factory(FAST)
    topic, group = unique("groups"), unique("g")
    create_topic(broker.bootstrap, topic, partitions=6)
    produced = produce_spread(broker.bootstrap, topic, 6, 600)
    kp = KpMember(broker.bootstrap, group, topic)
    c1 = Member(broker.bootstrap, group, topic, commit=True)
    c2 = Member(broker.bootstrap, group, topic, commit=True)
    cleanup.extend([kp, c1, c2])
    members = [kp, c1, c2]
    wait_until(lambda: partitioned(members, 6, [2, 2, 2]), timeout=40, interval=0.2,
               message="mixed group: six partitions, two per member")
    wait_until(lambda: produced <= (kp.consumed | c1.consumed | c2.consumed), timeout=30, interval=0.2,
               message="the mixed group read every record")
    wait_until(lambda: committed(broker.bootstrap, group, topic, 6) == {p: 100 for p in range(6)},
               timeout=20, interval=0.5, message="commits from both clients")


def test_cooperative_sticky_moves_only_what_must_move(broker_factory, cleanup):
    broker = broker_factory(FAST)
    topic, group = unique("groups"), unique("g")
    create_topic(broker.bootstrap, topic, partitions=6)
    conf = {"partition.assignment.strategy": "cooperative-sticky"}
    a = Member(broker.bootstrap, group, topic, **conf)
    cleanup.append(a)
    wait_until(lambda: a.snapshot() == set(range(6)), timeout=30, interval=0.2, message="a owns all six")
    assert a.events == [("assign", [0, 1, 2, 3, 4, 5])]
    b = Member(broker.bootstrap, group, topic, **conf)
    cleanup.append(b)
    wait_until(lambda: partitioned([a, b], 6, [3, 3]), timeout=30, interval=0.2, message="three each")
    time.sleep(2)  # no further movement
    revoked = [p for kind, ps in a.events if kind in ("revoke", "lost") for p in ps]
    assert sorted(revoked) == sorted(b.snapshot()), f"a's callbacks: {a.events}"
    assert a.snapshot() == set(range(6)) - set(revoked)
    assert all(kind == "assign" for kind, _ in b.events), b.events


def test_static_member_restart_keeps_partitions_without_rebalance(broker_factory, cleanup):
    broker = broker_factory(FAST)
    topic, group = unique("groups"), unique("g")
    create_topic(broker.bootstrap, topic, partitions=4)
    b = Member(broker.bootstrap, group, topic, **{"group.instance.id": "static-b"})
    cleanup.append(b)
    wait_until(lambda: b.snapshot() == set(range(4)), timeout=30, interval=0.2, message="b owns all")
    a = ChildMember(broker.bootstrap, group, topic, **{"group.instance.id": "static-a"})
    cleanup.append(a)
    wait_until(lambda: partitioned([a, b], 4, [2, 2]), timeout=30, interval=0.2, message="two each")
    time.sleep(1)
    a_parts, b_parts, b_events = a.snapshot(), b.snapshot(), b.n_events()
    a.kill()
    a2 = ChildMember(broker.bootstrap, group, topic, **{"group.instance.id": "static-a"})
    cleanup.append(a2)
    wait_until(lambda: a2.snapshot(), timeout=SESSION_MS / 1000, interval=0.1,
               message="the restarted static member got its assignment")
    assert a2.snapshot() == a_parts
    # Past the old session timeout: the group must not have rebalanced around the restart.
    time.sleep(SESSION_MS / 1000 + 2)
    assert b.n_events() == b_events, f"b saw a rebalance: {b.events}"
    assert b.snapshot() == b_parts
    assert a2.snapshot() == a_parts
    assert [e for e in a2.events if "assign" in e or "revoke" in e] == [{"assign": sorted(a_parts)}]


def test_committed_offsets_survive_restart_and_consumer_resumes(broker_factory, cleanup):
    broker = broker_factory(FAST)
    topic, group = unique("groups"), unique("g")
    create_topic(broker.bootstrap, topic, partitions=2)
    first = produce_spread(broker.bootstrap, topic, 2, 100)
    m = Member(broker.bootstrap, group, topic, commit=True)
    wait_until(lambda: first <= m.consumed, timeout=30, interval=0.2, message="first half read")
    wait_until(lambda: committed(broker.bootstrap, group, topic, 2) == {0: 50, 1: 50}, timeout=20,
               interval=0.5, message="first half committed")
    m.close()
    broker.restart()
    assert committed(broker.bootstrap, group, topic, 2) == {0: 50, 1: 50}
    second = produce_spread(broker.bootstrap, topic, 2, 100)
    m2 = Member(broker.bootstrap, group, topic, commit=True)
    cleanup.append(m2)
    wait_until(lambda: second <= m2.consumed, timeout=30, interval=0.2, message="second half read")
    assert m2.consumed == second, "the resumed consumer re-read committed records"


def test_admin_list_describe_delete_and_offsets(broker_factory, cleanup):
    broker = broker_factory(FAST)
    topic, group = unique("groups"), unique("g")
    create_topic(broker.bootstrap, topic, partitions=4)
    members = [Member(broker.bootstrap, group, topic) for _ in range(2)]
    cleanup.extend(members)
    wait_until(lambda: partitioned(members, 4, [2, 2]), timeout=30, interval=0.2, message="two each")
    a = admin(broker.bootstrap)
    listed = a.list_consumer_groups(request_timeout=10).result(timeout=15)
    states = {g.group_id: g.state for g in listed.valid}
    assert states.get(group) == ConsumerGroupState.STABLE, states
    desc = a.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    assert desc.state == ConsumerGroupState.STABLE
    assert len(desc.members) == 2
    owned = sorted(tp.partition for mem in desc.members for tp in mem.assignment.topic_partitions
                   if tp.topic == topic)
    assert owned == [0, 1, 2, 3]
    with pytest.raises(Exception) as err:
        a.delete_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    assert err.value.args[0].code() == KafkaError.NON_EMPTY_GROUP, err.value
    for m in members:
        m.close()
    cleanup.clear()
    # Alter/list offsets of the now empty group.
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 7), TopicPartition(topic, 3, 2)])
    a.alter_consumer_group_offsets([req], request_timeout=10)[group].result(timeout=15)
    got = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [
        TopicPartition(topic, p) for p in range(4)])], request_timeout=10)[group].result(timeout=15)
    offsets = {tp.partition: tp.offset for tp in got.topic_partitions}
    assert offsets[0] == 7 and offsets[3] == 2, offsets
    wait_until(lambda: a.describe_consumer_groups([group])[group].result(timeout=15).state
               == ConsumerGroupState.EMPTY, timeout=15, interval=0.5, message="group empty")
    a.delete_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    listed = a.list_consumer_groups(request_timeout=10).result(timeout=15)
    assert group not in {g.group_id for g in listed.valid}


# ------------------------------------------------------------------------------------------------
# __consumer_offsets compaction

def java_hash(s: str) -> int:
    """Java's String.hashCode over UTF-16 code units, as a signed 32-bit int."""
    data = s.encode("utf-16-be")
    h = 0
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i:i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def kafka_partition_for(group: str, n: int = 50) -> int:
    """Kafka's GroupMetadataManager.partitionFor: Utils.abs(groupId.hashCode) % n, where
    Utils.abs(Integer.MIN_VALUE) == 0 and Utils.abs(x) == Math.abs(x) otherwise."""
    h = java_hash(group)
    return (0 if h == -(1 << 31) else abs(h)) % n


def offsets_dir_bytes(broker, partition: int) -> int:
    d = broker.data_dir / f"__consumer_offsets-{partition}"
    return sum(f.stat().st_size for f in d.glob("*.log")) if d.exists() else 0


def raw_commits(bootstrap: str, group: str, topic: str, count: int, chunk: int = 1000):
    from kafka.protocol.commit import OffsetCommitRequest

    for start in range(0, count, chunk):
        reqs = [OffsetCommitRequest[2](consumer_group=group, consumer_group_generation_id=-1, consumer_id="",
                                       retention_time=-1, topics=[(topic, [(0, i, "")])])
                for i in range(start, min(count, start + chunk))]
        for resp in raw_pipeline(bootstrap, reqs, timeout=60):
            [(_, [(_p, code)])] = resp.topics
            assert code == 0, f"OffsetCommit error {code}"


def test_consumer_offsets_stays_small_over_many_commits(broker_factory):
    broker = broker_factory({**FAST, "offsets.topic.segment.bytes": 102400, "log.cleaner.backoff.ms": 500,
                             "log.cleaner.min.cleanable.ratio": 0.01})
    topic = unique("groups")
    # A group whose hash is non-negative, where every reading of "abs" agrees.
    group = next(g for g in (unique("g") for _ in range(100)) if java_hash(g) >= 0)
    create_topic(broker.bootstrap, topic, partitions=1)
    n = 20_000
    t0 = time.monotonic()
    raw_commits(broker.bootstrap, group, topic, n)
    took = time.monotonic() - t0
    part = kafka_partition_for(group)
    written = offsets_dir_bytes(broker, part)
    print(f"{n} commits in {took:.1f}s; __consumer_offsets-{part} holds {written} bytes of .log now")
    # Each commit record is ~100 bytes on disk: 20,000 commits ~ 2 MB uncleaned.
    wait_until(lambda: offsets_dir_bytes(broker, part) < 250_000, timeout=30, interval=0.5,
               message=f"__consumer_offsets-{part} cleaned below 250 kB")
    assert committed(broker.bootstrap, group, topic, 1) == {0: n - 1}
    broker.restart()
    assert committed(broker.bootstrap, group, topic, 1) == {0: n - 1}


def test_group_lands_in_kafkas_offsets_partition_for_negative_hash(broker):
    """Kafka places a group in Utils.abs(hashCode) % 50; for a negative hash that differs from
    (hashCode & 0x7fffffff) % 50."""
    topic = unique("groups")
    create_topic(broker.bootstrap, topic, partitions=1)
    group = next(g for g in (unique("g") for _ in range(1000))
                 if java_hash(g) < 0 and kafka_partition_for(g) != (java_hash(g) & 0x7FFFFFFF) % 50)
    raw_commits(broker.bootstrap, group, topic, 5)
    populated = sorted(p for p in range(50) if offsets_dir_bytes(broker, p) > 0)
    assert populated == [kafka_partition_for(group)], (
        f"group {group} hash {java_hash(group)}: Kafka partition {kafka_partition_for(group)}, "
        f"data in {populated}")
