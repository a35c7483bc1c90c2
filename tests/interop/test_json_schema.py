"""JSON Schema subjects with Confluent's Python client and its JSON serializers, default
settings: the serializer registers its schema and frames documents with the schema id, the
deserializer fetches the schema by id and validates, and the registry checks evolution by the
JSON Schema rules."""

import json

import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError


def payment(required=("id",), closed=True, **extra):
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Payment",
        "type": "object",
        "properties": {"id": {"type": "string"}, "amount": {"type": "number"}, **extra},
        "required": list(required),
    }
    if closed:
        schema["additionalProperties"] = False
    return json.dumps(schema)


def test_the_json_serializer_registers_and_the_deserializer_reads_back(sr, unique):
    topic = f"payments-{unique}"
    context = SerializationContext(topic, MessageField.VALUE)
    serialize = JSONSerializer(payment(), sr)
    framed = serialize({"id": "p-1", "amount": 12.5}, context)
    # Confluent's framing: magic byte, schema id, the JSON document
    assert framed[0] == 0
    schema_id = int.from_bytes(framed[1:5], "big")
    assert json.loads(framed[5:]) == {"id": "p-1", "amount": 12.5}
    registered = sr.get_schema(schema_id)
    assert registered.schema_type == "JSON"
    assert json.loads(registered.schema_str)["title"] == "Payment"
    assert sr.get_latest_version(f"{topic}-value").schema_id == schema_id
    # the deserializer takes the writer's schema from the registry by id
    assert JSONDeserializer(None, schema_registry_client=sr)(framed, context) == {"id": "p-1", "amount": 12.5}
    # a document the schema refuses never leaves the serializer
    with pytest.raises(SerializationError):
        serialize({"amount": 3}, context)
    # the same schema again is the same id
    assert sr.register_schema(f"{topic}-value", Schema(payment(), "JSON")) == schema_id


def test_evolution_follows_the_json_schema_rules(sr, unique):
    subject = f"payments-{unique}-value"
    first = sr.register_schema(subject, Schema(payment(), "JSON"))
    # an optional property added to a closed content model: old documents still validate
    widened = Schema(payment(currency={"type": "string"}), "JSON")
    assert sr.test_compatibility(subject, widened) is True
    # a property made required: old documents without it would not
    narrowed = Schema(payment(required=("id", "amount")), "JSON")
    assert sr.test_compatibility(subject, narrowed) is False
    with pytest.raises(SchemaRegistryError) as refused:
        sr.register_schema(subject, narrowed)
    assert refused.value.http_status_code == 409
    assert "required properties added: amount" in refused.value.error_message
    assert sr.register_schema(subject, widened) != first
    # a subject keeps one schema type
    avro = Schema(json.dumps({"type": "record", "name": "Payment", "fields": [{"name": "id", "type": "string"}]}), "AVRO")
    assert sr.test_compatibility(subject, avro) is False
    # an invalid JSON Schema is refused with the reason
    with pytest.raises(SchemaRegistryError) as invalid:
        sr.register_schema(f"{subject}-bad", Schema('{"type": "strnig"}', "JSON"))
    assert invalid.value.http_status_code == 422
    assert "not a valid JSON Schema" in invalid.value.error_message
