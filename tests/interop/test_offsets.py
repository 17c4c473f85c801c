"""Committed offsets through the real clients: commits from `assign()` consumers with a group id,
read back by both Python clients, and kept across restarts (issue 3, first part)."""

from confluent_kafka import Consumer, TopicPartition
from kafka import TopicPartition as KpTopicPartition
from kafka.structs import OffsetAndMetadata

from kafka_clients import Rec, confluent_consume, confluent_produce, consumer_conf, create_topic, kp_consumer, unique


def confluent_committed(bootstrap, group, topic, partitions):
    c = Consumer(consumer_conf(bootstrap, **{"group.id": group}))
    try:
        got = c.committed([TopicPartition(topic, p) for p in partitions], timeout=15)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def test_confluent_commit_survives_restart_and_kafka_python_reads_it(broker):
    topic = unique("offsets")
    group = unique("group")
    create_topic(broker.bootstrap, topic, partitions=2)
    confluent_produce(broker.bootstrap, topic, [Rec(None, b"v%d" % i, partition=i % 2) for i in range(40)])
    c = Consumer(consumer_conf(broker.bootstrap, **{"group.id": group, "enable.auto.commit": False, "enable.partition.eof": False}))
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        seen = 0
        while seen < 5:
            m = c.poll(10)
            assert m is not None, "no record within 10 s"
            assert m.error() is None, m.error()
            seen += 1
        c.commit(offsets=[TopicPartition(topic, 0, m.offset() + 1)], asynchronous=False)
    finally:
        c.close()
    assert confluent_committed(broker.bootstrap, group, topic, [0, 1]) == {0: 5, 1: -1001}
    broker.restart()
    assert confluent_committed(broker.bootstrap, group, topic, [0, 1]) == {0: 5, 1: -1001}
    kp = kp_consumer(broker.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        assert kp.committed(KpTopicPartition(topic, 0)) == 5
        assert kp.committed(KpTopicPartition(topic, 1)) is None
    finally:
        kp.close()


def test_kafka_python_commit_is_read_by_confluent_and_resumes_there(broker):
    topic = unique("offsets")
    group = unique("group")
    create_topic(broker.bootstrap, topic, partitions=1)
    confluent_produce(broker.bootstrap, topic, [Rec(None, b"v%d" % i, partition=0) for i in range(20)])
    kp = kp_consumer(broker.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        tp = KpTopicPartition(topic, 0)
        kp.assign([tp])
        kp.commit({tp: OffsetAndMetadata(12, "", -1)})
    finally:
        kp.close()
    assert confluent_committed(broker.bootstrap, group, topic, [0]) == {0: 12}
    # A consumer assigned without an explicit offset resumes at the committed one.
    c = Consumer(consumer_conf(broker.bootstrap, **{"group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest", "enable.partition.eof": False}))
    try:
        c.assign([TopicPartition(topic, 0)])
        m = None
        for _ in range(20):
            m = c.poll(1)
            if m is not None:
                break
        assert m is not None and m.error() is None
        assert m.offset() == 12 and m.value() == b"v12"
    finally:
        c.close()
