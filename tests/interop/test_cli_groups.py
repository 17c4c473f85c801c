"""`fjord group list|describe|delete|reset-offsets` against real consumer groups (issue 3's CLI)."""

import subprocess
import time

from confluent_kafka import Consumer, TopicPartition

from conftest import fjord_bin
from kafka_clients import Rec, confluent_produce, consumer_conf, create_topic, unique


def fjord_group(bootstrap, *args, check=True):
    proc = subprocess.run([fjord_bin(), "group", "--bootstrap", bootstrap, *args], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def describe_rows(bootstrap, group):
    out = fjord_group(bootstrap, "describe", group).stdout
    lines = out.splitlines()
    header = next(i for i, l in enumerate(lines) if l.startswith("GROUP"))
    return lines[0], [l.split() for l in lines[header + 1:] if l.strip()]


def group_consumer(bootstrap, group):
    return Consumer(consumer_conf(bootstrap, **{"group.id": group, "enable.auto.commit": False,
                                                "enable.partition.eof": False, "session.timeout.ms": 6000,
                                                "heartbeat.interval.ms": 500}))


def test_group_commands_show_members_lag_and_manage_offsets(broker_factory):
    b = broker_factory(overrides={"group.initial.rebalance.delay.ms": "0"})
    topic, group = unique("cli-groups"), unique("cg")
    create_topic(b.bootstrap, topic, partitions=4)
    base_ts = int(time.time() * 1000) - 100_000
    confluent_produce(b.bootstrap, topic,
                      [Rec(None, b"v%d" % i, partition=i % 4, timestamp=base_ts + i) for i in range(400)])
    consumers = [group_consumer(b.bootstrap, group) for _ in range(2)]
    try:
        for c in consumers:
            c.subscribe([topic])
        consumed = 0
        deadline = time.time() + 30
        while time.time() < deadline and (consumed < 100 or any(not c.assignment() for c in consumers)):
            for c in consumers:
                m = c.poll(0.1)
                if m is not None and m.error() is None:
                    consumed += 1
                    if m.offset() == 9:  # commit offset 10 on every partition it reaches
                        c.commit(m, asynchronous=False)
        assert all(len(c.assignment()) == 2 for c in consumers), [c.assignment() for c in consumers]

        assert group in fjord_group(b.bootstrap, "list").stdout
        title, rows = describe_rows(b.bootstrap, group)
        assert "Stable" in title and "2 member(s)" in title, title
        assert sorted(int(r[2]) for r in rows) == [0, 1, 2, 3]
        assert len({r[6] for r in rows}) == 2, "two distinct consumers own the partitions"
        for r in rows:
            assert r[4] == "100", r  # log end offset
            if r[3] != "-":
                assert int(r[5]) == 100 - int(r[3]), r  # lag = end - committed

        # An active group can be neither deleted nor reset.
        refused = fjord_group(b.bootstrap, "delete", group, check=False)
        assert refused.returncode != 0 and "NonEmptyGroup" in refused.stderr, refused.stderr
        refused = fjord_group(b.bootstrap, "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute", check=False)
        assert refused.returncode != 0, refused.stdout
    finally:
        for c in consumers:
            c.close()

    # Dry run changes nothing; --execute does.
    fjord_group(b.bootstrap, "reset-offsets", group, "--topic", topic, "--to-offset", "42")
    _, rows = describe_rows(b.bootstrap, group)
    assert all(r[3] != "42" for r in rows)
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((base_ts + 200) / 1000)) + ".%03dZ" % ((base_ts + 200) % 1000)
    fjord_group(b.bootstrap, "reset-offsets", group, "--topic", topic, "--to-datetime", when, "--execute")
    probe = Consumer(consumer_conf(b.bootstrap, **{"group.id": group}))
    try:
        got = {tp.partition: tp.offset for tp in probe.committed([TopicPartition(topic, p) for p in range(4)], timeout=15)}
    finally:
        probe.close()
    # Record i (timestamp base_ts + i) sits in partition i % 4 at offset i // 4: the first at or
    # after base_ts + 200 is offset 50 in every partition.
    assert got == {0: 50, 1: 50, 2: 50, 3: 50}, got
    fjord_group(b.bootstrap, "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute")
    _, rows = describe_rows(b.bootstrap, group)
    assert [r[3] for r in rows] == ["0", "0", "0", "0"]

    fjord_group(b.bootstrap, "delete", group)
    assert group not in fjord_group(b.bootstrap, "list").stdout
    missing = fjord_group(b.bootstrap, "describe", group, check=False)
    assert missing.returncode != 0 and "does not exist" in missing.stderr
