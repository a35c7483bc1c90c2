"""Protobuf subjects with Confluent's Python client and its Protobuf serializers, default
settings: the serializer registers its message's file (a base64 descriptor) and frames messages
with the schema id and message indexes, the deserializer reads them back, and the registry checks
evolution by the Protobuf rules."""

import base64

import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def order_file(unique, id_type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING):
    """An `Order` message in a file of its own, as protoc would describe it."""
    file = descriptor_pb2.FileDescriptorProto(name=f"orders_{unique}.proto", package=f"shop{unique}", syntax="proto3")
    order = file.message_type.add(name="Order")
    order.field.add(name="id", number=1, type=id_type, label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    order.field.add(name="qty", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
                    label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    return file


def order_class(file):
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{file.package}.Order"))


def test_the_protobuf_serializer_registers_and_the_deserializer_reads_back(sr, unique):
    Order = order_class(order_file(unique))
    topic = f"orders-{unique}"
    context = SerializationContext(topic, MessageField.VALUE)
    framed = ProtobufSerializer(Order, sr, {"use.deprecated.format": False})(Order(id="o-1", qty=3), context)
    assert framed[0] == 0
    schema_id = int.from_bytes(framed[1:5], "big")
    registered = sr.get_schema(schema_id)
    assert registered.schema_type == "PROTOBUF"
    assert sr.get_latest_version(f"{topic}-value").schema_id == schema_id
    read = ProtobufDeserializer(Order, {"use.deprecated.format": False})(framed, context)
    assert (read.id, read.qty) == ("o-1", 3)


def test_evolution_follows_the_protobuf_rules(sr, unique):
    subject = f"orders-{unique}-value"
    encoded = lambda file: base64.standard_b64encode(file.SerializeToString()).decode("ascii")
    sr.register_schema(subject, Schema(encoded(order_file(unique)), "PROTOBUF"))
    # a field's type changed outside its wire-compatible group
    changed = Schema(encoded(order_file(unique, descriptor_pb2.FieldDescriptorProto.TYPE_INT64)), "PROTOBUF")
    assert sr.test_compatibility(subject, changed) is False
    with pytest.raises(SchemaRegistryError) as refused:
        sr.register_schema(subject, changed)
    assert refused.value.http_status_code == 409
    assert "type changed" in refused.value.error_message
    # a field added is compatible, and .proto text works as well
    text = f'syntax = "proto3";\npackage shop{unique};\nmessage Order {{ string id = 1; int32 qty = 2; string note = 3; }}'
    assert sr.test_compatibility(subject, Schema(text, "PROTOBUF")) is True
    assert sr.register_schema(subject, Schema(text, "PROTOBUF")) > 0
