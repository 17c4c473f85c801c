"""The registry's REST API as confluent-kafka's SchemaRegistryClient uses it: config, modes,
lookups, deletes, compatibility tests, references (with the Avro serdes), and a broker restart
under a running registry."""

from __future__ import annotations

import json

import pytest
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from kafka_clients import unique, wait_until
from test_schema_registry import fjord


def url(r) -> str:
    return f"http://{r.bootstrap}"


@pytest.fixture
def kafka(broker_factory):
    return broker_factory({"group.initial.rebalance.delay.ms": 0})


def record(name: str, *fields: dict) -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "api", "fields": list(fields)})


def test_config_modes_lookups_and_deletes_through_the_python_client(kafka, registry_factory):
    sr = registry_factory(kafka)
    client = SchemaRegistryClient({"url": url(sr)})
    assert client.get_schema_types() == ["JSON", "AVRO"]
    assert client.get_compatibility() == "BACKWARD"
    subject = unique("api") + "-value"
    v1 = Schema(record("R", {"name": "a", "type": "int"}), "AVRO")
    v2 = Schema(record("R", {"name": "a", "type": "int"}, {"name": "b", "type": "string", "default": ""}), "AVRO")
    id1 = client.register_schema(subject, v1)
    assert client.set_compatibility(subject, "FULL") == {"compatibility": "FULL"}
    assert client.get_compatibility(subject) == "FULL"
    assert client.test_compatibility(subject, v2)
    assert client.test_compatibility_all_versions(subject, v2)
    id2 = client.register_schema(subject, v2)

    found = client.lookup_schema(subject, v1)
    assert (found.schema_id, found.version, found.subject) == (id1, 1, subject)
    assert client.get_subjects_by_schema_id(id2) == [subject]
    assert [(v.subject, v.version) for v in client.get_schema_versions(id2)] == [(subject, 2)]

    # Modes: READONLY refuses registration with 42205.
    assert client.update_mode(subject, "READONLY") == "READONLY"
    assert client.get_mode(subject) == "READONLY"
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, Schema(record("R", {"name": "a", "type": "int"}, {"name": "c", "type": "int", "default": 0}), "AVRO"))
    assert (refused.value.http_status_code, refused.value.error_code) == (422, 42205)
    client.delete_mode(subject)
    assert client.get_global_mode() == "READWRITE"

    # Soft delete a version, then hard; then the subject.
    assert client.delete_version(subject, 1) == 1
    assert client.get_versions(subject) == [2]
    assert client.get_versions(subject, deleted=True) == [1, 2]
    assert client.delete_version(subject, 1, permanent=True) == 1
    assert client.get_versions(subject, deleted=True) == [2]
    assert client.delete_subject(subject) == [2]
    assert subject not in client.get_subjects()
    assert subject in client.get_subjects(deleted=True)
    assert client.delete_subject(subject, permanent=True) == [2]
    assert subject not in client.get_subjects(deleted=True)
    with pytest.raises(SchemaRegistryError) as gone:
        SchemaRegistryClient({"url": url(sr)}).get_schema(id2)
    assert gone.value.error_code == 40403


def test_references_with_the_avro_serdes(kafka, registry_factory):
    sr = registry_factory(kafka)
    client = SchemaRegistryClient({"url": url(sr)})
    address_subject = unique("address")
    address = json.dumps({"type": "record", "name": "Address", "namespace": "api",
                          "fields": [{"name": "city", "type": "string"}]})
    client.register_schema(address_subject, Schema(address, "AVRO"))
    person = Schema(json.dumps({"type": "record", "name": "Person", "namespace": "api",
                                "fields": [{"name": "name", "type": "string"},
                                           {"name": "home", "type": "api.Address"}]}),
                    "AVRO", [SchemaReference("api.Address", address_subject, 1)])
    topic = unique("people")
    person_id = client.register_schema(f"{topic}-value", person)
    assert client.get_referenced_by(address_subject, 1) == [person_id]
    with pytest.raises(SchemaRegistryError) as blocked:
        client.delete_version(address_subject, 1)
    assert blocked.value.error_code == 42206

    ctx = SerializationContext(topic, MessageField.VALUE)
    serializer = AvroSerializer(client, person, conf={"auto.register.schemas": False, "use.latest.version": True})
    value = {"name": "Ada", "home": {"city": "London"}}
    data = serializer(value, ctx)
    assert int.from_bytes(data[1:5], "big") == person_id
    fresh = SchemaRegistryClient({"url": url(sr)})
    assert AvroDeserializer(fresh)(data, ctx) == value
    # The Rust deserializer resolves the reference too.
    assert json.loads(fjord("registry", "decode", "--url", url(sr), data.hex())) == value
    fetched = fresh.get_schema(person_id)
    assert [(r.name, r.subject, r.version) for r in fetched.references] == [("api.Address", address_subject, 1)]


def test_the_registry_keeps_serving_across_a_broker_restart(kafka, registry_factory):
    sr = registry_factory(kafka)
    client = SchemaRegistryClient({"url": url(sr)})
    first = client.register_schema(unique("before"), Schema('"string"', "AVRO"))
    kafka.restart()

    def registered_after():
        try:
            return SchemaRegistryClient({"url": url(sr)}).register_schema(unique("after"), Schema('"int"', "AVRO"))
        except SchemaRegistryError as e:
            assert e.http_status_code == 500, e
            return None
    second = wait_until(registered_after, timeout=60, interval=0.5, message="a write after the broker restart")
    assert second == first + 1
    assert json.loads(SchemaRegistryClient({"url": url(sr)}).get_schema(first).schema_str) == "string"


def test_json_schema_serdes(kafka, registry_factory):
    from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer

    sr = registry_factory(kafka)
    client = SchemaRegistryClient({"url": url(sr)})
    topic = unique("json")
    ctx = SerializationContext(topic, MessageField.VALUE)
    v1 = json.dumps({"$schema": "http://json-schema.org/draft-07/schema#", "title": "Reading",
                     "type": "object", "additionalProperties": False,
                     "properties": {"sensor": {"type": "string"}, "value": {"type": "integer"}},
                     "required": ["sensor"]})
    data = JSONSerializer(v1, client)({"sensor": "t1", "value": 21}, ctx)
    schema_id = int.from_bytes(data[1:5], "big")
    fetched = SchemaRegistryClient({"url": url(sr)}).get_schema(schema_id)
    assert fetched.schema_type == "JSON"
    assert JSONDeserializer(v1)(data, ctx) == {"sensor": "t1", "value": 21}
    assert JSONDeserializer(None, schema_registry_client=SchemaRegistryClient({"url": url(sr)}))(data, ctx) == {
        "sensor": "t1", "value": 21}
    # Widening integer to number in a closed content model is BACKWARD compatible ...
    v2 = json.loads(v1)
    v2["properties"]["value"] = {"type": "number"}
    assert client.test_compatibility(f"{topic}-value", Schema(json.dumps(v2), "JSON"))
    # ... narrowing a property's type is not.
    v3 = json.loads(v1)
    v3["properties"]["sensor"] = {"type": "integer"}
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(f"{topic}-value", Schema(json.dumps(v3), "JSON"))
    assert refused.value.http_status_code == 409
