"""Topic administration through confluent-kafka's AdminClient and kafka-python's KafkaAdminClient."""

import os

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, NewPartitions, NewTopic,
)
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType, KafkaAdminClient
from kafka.admin import NewPartitions as KpNewPartitions
from kafka.admin import NewTopic as KpNewTopic
from kafka.errors import InvalidPartitionsError, InvalidTopicError, TopicAlreadyExistsError

from kafka_clients import (
    Rec, admin, confluent_consume, confluent_produce, create_topic, kp_produce, producer_conf, unique, wait_until,
)

TOPIC_CONFIGS = {
    "cleanup.policy": "delete",
    "retention.ms": "3600000",
    "retention.bytes": "1073741824",
    "segment.bytes": "1048576",
    "segment.ms": "600000",
    "max.message.bytes": "200000",
    "message.timestamp.type": "LogAppendTime",
    "min.insync.replicas": "1",
    "compression.type": "producer",
}

KAFKA_DEFAULTS = {
    "cleanup.policy": "delete",
    "retention.ms": "604800000",
    "retention.bytes": "-1",
    "segment.bytes": "1073741824",
    "max.message.bytes": "1048588",
    "message.timestamp.type": "CreateTime",
    "min.insync.replicas": "1",
    "compression.type": "producer",
}


def confluent_configs(bootstrap, topic):
    res = ConfigResource("topic", topic)
    a = admin(bootstrap)  # keep the client alive until the future resolves
    return a.describe_configs([res], request_timeout=15)[res].result(timeout=20)


def confluent_error(excinfo) -> KafkaError:
    err = excinfo.value.args[0]
    assert isinstance(err, KafkaError), excinfo.value
    return err


def partitions_of(bootstrap, topic):
    md = admin(bootstrap).list_topics(topic=topic, timeout=10)
    t = md.topics[topic]
    assert t.error is None, t.error
    return len(t.partitions)


def kp_admin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)


def kp_describe_configs(client, topic) -> dict:
    [resp] = client.describe_configs([KpConfigResource(ConfigResourceType.TOPIC, topic)])
    [resource] = resp.resources
    error_code, _msg, _rtype, name, entries = resource[:5]
    assert error_code == 0 and name == topic, resource
    return {e[0]: e[1] for e in entries}


# ---- confluent-kafka ----------------------------------------------------------------------------

def test_confluent_create_describe_delete(broker):
    a = admin(broker.bootstrap)
    topic = unique("adm-c")
    fs = a.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1, config=TOPIC_CONFIGS)])
    fs[topic].result(timeout=20)

    md = a.list_topics(timeout=10)
    assert topic in md.topics and len(md.topics[topic].partitions) == 4
    assert len(md.brokers) == 1
    [b] = md.brokers.values()
    assert f"{b.host}:{b.port}" == broker.bootstrap, "advertised address is the bound address"
    for p in md.topics[topic].partitions.values():
        assert p.leader == b.id and p.replicas == [b.id] and p.isrs == [b.id]

    configs = confluent_configs(broker.bootstrap, topic)
    for name, value in TOPIC_CONFIGS.items():
        assert configs[name].value == value, f"{name}: {configs[name].value} != {value}"
        assert configs[name].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, f"{name} source"
        assert not configs[name].is_default

    fs = a.delete_topics([topic], operation_timeout=20)
    fs[topic].result(timeout=20)
    wait_until(lambda: topic not in a.list_topics(timeout=10).topics, 10, message="topic gone from metadata")
    # The name can be used again, and the new topic is empty.
    create_topic(broker.bootstrap, topic, partitions=2)
    assert confluent_consume(broker.bootstrap, topic, {0: 0, 1: 0}, count=None) == []


def test_confluent_default_configs(broker):
    topic = unique("adm-defaults")
    create_topic(broker.bootstrap, topic)
    configs = confluent_configs(broker.bootstrap, topic)
    for name, value in KAFKA_DEFAULTS.items():
        assert configs[name].value == value, f"default {name}: {configs[name].value} != {value}"
        assert configs[name].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value


def test_confluent_describe_topics_and_cluster(broker):
    from confluent_kafka import TopicCollection

    a = admin(broker.bootstrap)
    topic = unique("adm-desc")
    create_topic(broker.bootstrap, topic, partitions=3)
    desc = a.describe_topics(TopicCollection([topic]), request_timeout=15)[topic].result(timeout=20)
    assert desc.name == topic and len(desc.partitions) == 3
    assert [p.id for p in desc.partitions] == [0, 1, 2]
    cluster = a.describe_cluster(request_timeout=15).result(timeout=20)
    assert len(cluster.nodes) == 1
    assert f"{cluster.nodes[0].host}:{cluster.nodes[0].port}" == broker.bootstrap
    assert cluster.controller is not None and cluster.controller.id == cluster.nodes[0].id
    assert cluster.cluster_id, "DescribeCluster returned no cluster id"


def test_confluent_create_errors(broker):
    a = admin(broker.bootstrap)
    topic = unique("adm-dup")
    create_topic(broker.bootstrap, topic)

    with pytest.raises(KafkaException) as e:
        a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=20)
    assert confluent_error(e).code() == KafkaError.TOPIC_ALREADY_EXISTS

    for bad in ["bad/name", "with space", "..", "x" * 250, "star*"]:
        with pytest.raises(KafkaException) as e:
            a.create_topics([NewTopic(bad, num_partitions=1, replication_factor=1)])[bad].result(timeout=20)
        assert confluent_error(e).code() == KafkaError.TOPIC_EXCEPTION, f"{bad!r}: {confluent_error(e)}"

    bad_cfg = unique("adm-badcfg")
    for config in ({"segment.bytes": "10"}, {"cleanup.policy": "sometimes"}, {"no.such.config": "1"},
                   {"retention.ms": "soon"}, {"message.timestamp.type": "WallClock"}):
        with pytest.raises(KafkaException) as e:
            a.create_topics([NewTopic(bad_cfg, num_partitions=1, replication_factor=1, config=config)])[
                bad_cfg].result(timeout=20)
        assert confluent_error(e).code() == KafkaError.INVALID_CONFIG, f"{config}: {confluent_error(e)}"
    assert bad_cfg not in a.list_topics(timeout=10).topics

    zero = unique("adm-zero")
    with pytest.raises(KafkaException) as e:
        a.create_topics([NewTopic(zero, num_partitions=0, replication_factor=1)])[zero].result(timeout=20)
    assert confluent_error(e).code() == KafkaError.INVALID_PARTITIONS

    # validate_only creates nothing.
    vo = unique("adm-validate")
    a.create_topics([NewTopic(vo, num_partitions=2, replication_factor=1)], validate_only=True)[vo].result(timeout=20)
    assert vo not in a.list_topics(timeout=10).topics


def test_confluent_create_partitions(broker):
    a = admin(broker.bootstrap)
    topic = unique("adm-parts")
    create_topic(broker.bootstrap, topic, partitions=2)
    confluent_produce(broker.bootstrap, topic, [Rec(None, b"p0", partition=0), Rec(None, b"p1", partition=1)])
    a.create_partitions([NewPartitions(topic, 5)])[topic].result(timeout=20)
    wait_until(lambda: partitions_of(broker.bootstrap, topic) == 5, 10, message="5 partitions")
    # New partitions are usable; old data is untouched.
    acked = confluent_produce(broker.bootstrap, topic, [Rec(None, b"new", partition=4)])
    assert (acked[0].partition, acked[0].offset) == (4, 0)
    got = confluent_consume(broker.bootstrap, topic, {p: 0 for p in range(5)}, count=None)
    assert sorted((r.partition, r.value) for r in got) == [(0, b"p0"), (1, b"p1"), (4, b"new")]

    with pytest.raises(KafkaException) as e:
        a.create_partitions([NewPartitions(topic, 3)])[topic].result(timeout=20)
    assert confluent_error(e).code() == KafkaError.INVALID_PARTITIONS
    missing = unique("adm-missing")
    with pytest.raises(KafkaException) as e:
        a.create_partitions([NewPartitions(missing, 3)])[missing].result(timeout=20)
    assert confluent_error(e).code() == KafkaError.UNKNOWN_TOPIC_OR_PART


@pytest.mark.filterwarnings("ignore:alter_configs has been deprecated:DeprecationWarning")
def test_confluent_alter_configs(broker):
    a = admin(broker.bootstrap)
    topic = unique("adm-alter")
    create_topic(broker.bootstrap, topic, config={"retention.ms": "1000000"})

    res = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("retention.ms", "2000000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("max.message.bytes", "50000", incremental_operation=AlterConfigOpType.SET),
    ])
    a.incremental_alter_configs([res])[res].result(timeout=20)
    configs = confluent_configs(broker.bootstrap, topic)
    assert configs["retention.ms"].value == "2000000"
    assert configs["max.message.bytes"].value == "50000"

    res = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
    ])
    a.incremental_alter_configs([res])[res].result(timeout=20)
    configs = confluent_configs(broker.bootstrap, topic)
    assert configs["retention.ms"].value == KAFKA_DEFAULTS["retention.ms"], "DELETE restores the default"
    assert configs["max.message.bytes"].value == "50000", "incremental changes leave other keys alone"

    # Legacy AlterConfigs replaces the whole set of topic overrides.
    res = ConfigResource("topic", topic, set_config={"segment.bytes": "2097152"})
    a.alter_configs([res])[res].result(timeout=20)
    configs = confluent_configs(broker.bootstrap, topic)
    assert configs["segment.bytes"].value == "2097152"
    assert configs["max.message.bytes"].value == KAFKA_DEFAULTS["max.message.bytes"]

    # Invalid values are refused and change nothing.
    res = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("segment.bytes", "13", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as e:
        a.incremental_alter_configs([res])[res].result(timeout=20)
    assert confluent_error(e).code() == KafkaError.INVALID_CONFIG
    assert confluent_configs(broker.bootstrap, topic)["segment.bytes"].value == "2097152"

    # The new max.message.bytes is enforced at once.
    res = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("max.message.bytes", "1000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(timeout=20)
    p = Producer(producer_conf(broker.bootstrap, **{"message.max.bytes": 100000}))
    result = {}
    p.produce(topic, value=os.urandom(5000), on_delivery=lambda err, msg: result.update(err=err))
    assert p.flush(30) == 0
    assert result["err"] is not None and result["err"].code() == KafkaError.MSG_SIZE_TOO_LARGE, result["err"]


def test_configs_survive_restart(broker):
    topic = unique("adm-persist")
    create_topic(broker.bootstrap, topic, partitions=2, config={"retention.ms": "123456", "segment.bytes": "4096"})
    broker.restart()
    configs = confluent_configs(broker.bootstrap, topic)
    assert configs["retention.ms"].value == "123456" and configs["segment.bytes"].value == "4096"
    assert partitions_of(broker.bootstrap, topic) == 2


def test_num_partitions_default_and_auto_create(broker_factory):
    broker = broker_factory({"num.partitions": 4})
    a = admin(broker.bootstrap)
    explicit_default = unique("adm-default-parts")
    a.create_topics([NewTopic(explicit_default)])[explicit_default].result(timeout=20)  # -1 partitions
    assert partitions_of(broker.bootstrap, explicit_default) == 4
    # auto.create.topics.enable defaults to true: producing to a new topic creates it.
    auto = unique("adm-auto")
    kp_produce(broker.bootstrap, auto, [Rec(None, b"hello")])
    assert partitions_of(broker.bootstrap, auto) == 4


# ---- kafka-python ---------------------------------------------------------------------------------

def test_kafka_python_admin(broker):
    client = kp_admin(broker.bootstrap)
    try:
        topic = unique("adm-kp")
        client.create_topics([KpNewTopic(topic, num_partitions=3, replication_factor=1,
                                         topic_configs={"retention.ms": "7200000", "max.message.bytes": "300000"})])
        assert topic in client.list_topics()
        [desc] = client.describe_topics([topic])
        assert desc["topic"] == topic and desc["error_code"] == 0 and len(desc["partitions"]) == 3
        configs = kp_describe_configs(client, topic)
        assert configs["retention.ms"] == "7200000" and configs["max.message.bytes"] == "300000"
        assert configs["cleanup.policy"] == "delete"

        with pytest.raises(TopicAlreadyExistsError):
            client.create_topics([KpNewTopic(topic, num_partitions=1, replication_factor=1)])
        with pytest.raises(InvalidTopicError):
            client.create_topics([KpNewTopic("bad/name", num_partitions=1, replication_factor=1)])

        client.create_partitions({topic: KpNewPartitions(total_count=6)})
        wait_until(lambda: partitions_of(broker.bootstrap, topic) == 6, 10, message="6 partitions")
        with pytest.raises(InvalidPartitionsError):
            client.create_partitions({topic: KpNewPartitions(total_count=2)})

        resp = client.alter_configs([KpConfigResource(ConfigResourceType.TOPIC, topic,
                                                      configs={"retention.ms": "9000000"})])
        assert all(r[0] == 0 for r in resp.resources), resp
        assert kp_describe_configs(client, topic)["retention.ms"] == "9000000"

        cluster = client.describe_cluster()
        assert len(cluster["brokers"]) == 1 and cluster["controller_id"] == cluster["brokers"][0]["node_id"]

        client.delete_topics([topic])
        wait_until(lambda: topic not in client.list_topics(), 10, message="topic deleted")
    finally:
        client.close()
