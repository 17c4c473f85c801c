"""The schema registry against Confluent's own client code: confluent-kafka's
SchemaRegistryClient, AvroSerializer and AvroDeserializer (fastavro), with records going
through the Fjord broker; the Rust serdes (`fjord registry encode|decode`) against the
Python ones; restarts and two instances."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import fjord_bin
from kafka_clients import Rec, confluent_consume, confluent_produce, create_topic, unique, wait_until

ORDER_V1 = json.dumps({
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "id", "type": "long"}, {"name": "item", "type": "string"}],
})
# BACKWARD-compatible: a new field with a default.
ORDER_V2 = json.dumps({
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "id", "type": "long"}, {"name": "item", "type": "string"},
               {"name": "qty", "type": "int", "default": 1}],
})
# Incompatible: `item` changes type, `price` is required without a default.
ORDER_BAD = json.dumps({
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "id", "type": "long"}, {"name": "item", "type": "int"},
               {"name": "price", "type": "double"}],
})

REGISTRY_RE = re.compile(rb"schema registry listening on ([0-9.]+):(\d+)")


def url(r) -> str:
    return f"http://{r.bootstrap}"


@pytest.fixture
def kafka(broker_factory):
    # A lone registry need not wait group.initial.rebalance.delay.ms to elect itself.
    return broker_factory({"group.initial.rebalance.delay.ms": 0})


def serialize(client, schema, topic, value):
    return AvroSerializer(client, schema)(value, SerializationContext(topic, MessageField.VALUE))


def deserialize(client, data, topic, reader_schema=None):
    return AvroDeserializer(client, reader_schema)(data, SerializationContext(topic, MessageField.VALUE))


def test_avro_records_round_trip_through_the_broker(kafka, registry_factory):
    sr = registry_factory(kafka)
    client = SchemaRegistryClient({"url": url(sr)})
    topic = unique("orders")
    create_topic(kafka.bootstrap, topic)
    orders = [{"id": i, "item": f"item-{i}"} for i in range(20)]
    values = [serialize(client, ORDER_V1, topic, o) for o in orders]
    assert all(v[0] == 0 for v in values), "magic byte 0"
    confluent_produce(kafka.bootstrap, topic, [Rec(None, v, partition=0) for v in values])

    read = confluent_consume(kafka.bootstrap, topic, {0: 0}, count=len(orders))
    # A fresh client: the schema is fetched by id from the registry, not from a cache.
    reader = SchemaRegistryClient({"url": url(sr)})
    assert [deserialize(reader, r.value, topic) for r in read] == orders

    assert client.get_subjects() == [f"{topic}-value"]
    latest = client.get_latest_version(f"{topic}-value")
    assert (latest.version, latest.schema_id) == (1, int.from_bytes(values[0][1:5], "big"))
    assert json.loads(latest.schema.schema_str) == json.loads(ORDER_V1)


def test_backward_compatible_evolution_is_accepted_and_old_data_reads_with_the_new_schema(kafka, registry_factory):
    sr = registry_factory(kafka)
    client = SchemaRegistryClient({"url": url(sr)})
    topic = unique("evolve")
    create_topic(kafka.bootstrap, topic)
    old = serialize(client, ORDER_V1, topic, {"id": 1, "item": "tea"})
    assert client.test_compatibility(f"{topic}-value", Schema(ORDER_V2, "AVRO"))
    new = serialize(client, ORDER_V2, topic, {"id": 2, "item": "jam", "qty": 5})
    confluent_produce(kafka.bootstrap, topic, [Rec(None, old, partition=0), Rec(None, new, partition=0)])
    assert client.get_versions(f"{topic}-value") == [1, 2]

    read = confluent_consume(kafka.bootstrap, topic, {0: 0}, count=2)
    reader = SchemaRegistryClient({"url": url(sr)})
    assert [deserialize(reader, r.value, topic, ORDER_V2) for r in read] == [
        {"id": 1, "item": "tea", "qty": 1},  # written with v1: the default fills the new field
        {"id": 2, "item": "jam", "qty": 5},
    ]


def test_an_incompatible_schema_is_refused_with_409_and_reasons(kafka, registry_factory):
    sr = registry_factory(kafka)
    client = SchemaRegistryClient({"url": url(sr)})
    subject = unique("refuse") + "-value"
    client.register_schema(subject, Schema(ORDER_V1, "AVRO"))
    assert not client.test_compatibility(subject, Schema(ORDER_BAD, "AVRO"))
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, Schema(ORDER_BAD, "AVRO"))
    assert refused.value.http_status_code == 409
    assert refused.value.error_code == 409
    assert "TYPE_MISMATCH" in refused.value.error_message
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in refused.value.error_message
    assert client.get_versions(subject) == [1]

    with pytest.raises(SchemaRegistryError) as missing:
        client.get_latest_version(unique("nope"))
    assert (missing.value.http_status_code, missing.value.error_code) == (404, 40401)
    with pytest.raises(SchemaRegistryError) as no_id:
        SchemaRegistryClient({"url": url(sr)}).get_schema(424242)
    assert (no_id.value.http_status_code, no_id.value.error_code) == (404, 40403)


def fjord(*args, timeout=30) -> str:
    done = subprocess.run([fjord_bin(), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_rust_serdes_and_python_serdes_read_each_other(kafka, registry_factory):
    sr = registry_factory(kafka)
    client = SchemaRegistryClient({"url": url(sr)})
    topic = unique("mixed")
    create_topic(kafka.bootstrap, topic)
    value = {"id": 9_000_000_000, "item": "caf\u00e9 \u2615"}
    # Python writes through the broker, Rust reads.
    confluent_produce(kafka.bootstrap, topic, [Rec(None, serialize(client, ORDER_V1, topic, value), partition=0)])
    [record] = confluent_consume(kafka.bootstrap, topic, {0: 0}, count=1)
    assert json.loads(fjord("registry", "decode", "--url", url(sr), record.value.hex())) == value
    assert json.loads(fjord("registry", "decode", "--url", url(sr), "--reader-schema", ORDER_V2,
                            record.value.hex())) == {**value, "qty": 1}

    # Rust writes (and registers v2 under the same subject), through the broker; Python reads.
    encoded = bytes.fromhex(fjord("registry", "encode", "--url", url(sr), "--topic", topic,
                                  "--schema", ORDER_V2, "--value", json.dumps({**value, "qty": 3})))
    assert encoded[0] == 0
    assert int.from_bytes(encoded[1:5], "big") == client.get_latest_version(f"{topic}-value").schema_id
    confluent_produce(kafka.bootstrap, topic, [Rec(None, encoded, partition=0)])
    read = confluent_consume(kafka.bootstrap, topic, {0: 1}, count=1)
    assert deserialize(SchemaRegistryClient({"url": url(sr)}), read[0].value, topic) == {**value, "qty": 3}
    # The same bytes as the Python serializer writes for the same schema and value.
    assert encoded == serialize(client, ORDER_V2, topic, {**value, "qty": 3})


def test_a_restarted_registry_keeps_ids(kafka, registry_factory):
    sr = registry_factory(kafka)
    client = SchemaRegistryClient({"url": url(sr)})
    subjects = [unique("keep") + "-value" for _ in range(3)]
    ids = [client.register_schema(s, Schema(ORDER_V1 if i == 0 else json.dumps(
        {"type": "record", "name": f"R{i}", "fields": []}), "AVRO")) for i, s in enumerate(subjects)]
    client.register_schema(subjects[0], Schema(ORDER_V2, "AVRO"))
    assert sr.stop() == 0, sr.stderr_tail()
    # Restart the broker too: everything lives in the compacted _schemas topic.
    kafka.restart()
    again = registry_factory(kafka)
    fresh = SchemaRegistryClient({"url": url(again)})
    assert json.loads(fresh.get_schema(ids[0]).schema_str) == json.loads(ORDER_V1)
    assert fresh.register_schema(subjects[1], Schema(json.dumps({"type": "record", "name": "R1", "fields": []}), "AVRO")) == ids[1]
    assert fresh.get_versions(subjects[0]) == [1, 2]
    assert sorted(fresh.get_subjects()) == sorted(subjects)
    new_id = fresh.register_schema(unique("later"), Schema('"string"', "AVRO"))
    assert new_id > max(ids)


def test_two_instances_agree_and_the_survivor_takes_over_writes(kafka, registry_factory):
    first = registry_factory(kafka)
    second = registry_factory(kafka)
    c1 = SchemaRegistryClient({"url": url(first)})
    c2 = SchemaRegistryClient({"url": url(second)})
    subjects = [unique("pair") + "-value" for _ in range(4)]
    ids = []
    for i, subject in enumerate(subjects):
        writer = c1 if i % 2 == 0 else c2  # writes through the follower are forwarded
        ids.append(writer.register_schema(subject, Schema(json.dumps(
            {"type": "record", "name": f"P{i}", "fields": [{"name": "a", "type": "int"}]}), "AVRO")))
    assert len(set(ids)) == 4
    for i, subject in enumerate(subjects):
        a = SchemaRegistryClient({"url": url(first)}).get_latest_version(subject)
        b = SchemaRegistryClient({"url": url(second)}).get_latest_version(subject)
        assert (a.schema_id, a.version, a.schema.schema_str) == (b.schema_id, b.version, b.schema.schema_str)
        assert a.schema_id == ids[i]
    assert sorted(c1.get_subjects()) == sorted(c2.get_subjects())

    # The first instance was elected when alone and kept the lead through the rebalance.
    def last_election(r):
        lines = [l for l in r.stderr_tail(20000).splitlines() if "registry leader elected" in l]
        return lines[-1] if lines else ""
    assert "is_self=true" in last_election(first), last_election(first)
    assert "is_self=false" in last_election(second), last_election(second)
    # Kill the leader without warning: the survivor takes over once its session expires.
    first.kill9()

    def survivor_writes():
        try:
            return SchemaRegistryClient({"url": url(second)}).register_schema(
                unique("after") + "-value", Schema('"long"', "AVRO"))
        except SchemaRegistryError as e:
            assert e.http_status_code == 500, e  # forwarding to the dead leader, or no leader yet
            return None
    new_id = wait_until(survivor_writes, timeout=60, interval=0.5, message="the survivor to take over writes")
    assert new_id not in ids
    assert "is_self=true" in last_election(second), last_election(second)


def test_fjord_dev_serves_the_registry_beside_the_broker(broker_factory):
    dev = broker_factory(command="dev", extra_args=["--registry-addr", "127.0.0.1:0",
                                                    "--connect-addr", "127.0.0.1:0"])

    def registry_line():
        return REGISTRY_RE.search(dev.stdout_path.read_bytes())
    m = wait_until(registry_line, timeout=30, message="the registry's ready line")
    base = f"http://{m.group(1).decode()}:{int(m.group(2))}"
    client = SchemaRegistryClient({"url": base})
    topic = unique("dev")
    value = serialize(client, ORDER_V1, topic, {"id": 1, "item": "x"})
    confluent_produce(dev.bootstrap, topic, [Rec(None, value, partition=0)])  # auto-created
    [r] = confluent_consume(dev.bootstrap, topic, {0: 0}, count=1)
    assert deserialize(SchemaRegistryClient({"url": base}), r.value, topic) == {"id": 1, "item": "x"}
    assert dev.stop(sig=signal.SIGTERM) == 0, dev.stderr_tail()
