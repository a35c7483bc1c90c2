"""Products in JSON Schema and Protobuf, end to end with Confluent's serializers and their
default settings: `labels.releases` (JSONSerializer) and `artists.follows` (ProtobufSerializer)
produced into the ingress topics with CloudEvents headers, checked by the gateway (the schema,
then the product's CEL rule over the same field model as Avro), forwarded once to the product
topic or dead-lettered with the reason, and read back with JSONDeserializer and
ProtobufDeserializer."""

import json
import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from conftest import REPO, credentials

import produce

PROTOBUF_CONF = {"use.deprecated.format": False}


def read(bootstrap, topic, wanted, id_of, also=frozenset(), timeout=90.0):
    """Every record of `topic` whose id (by `id_of(record)`) is in `wanted` or `also` (ids that
    must not be there), from the beginning, until every id in `wanted` was seen and 3 s more
    passed (so a repeat would show)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"interop-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    seen = {}
    deadline = time.monotonic() + timeout
    done_at = None
    try:
        while time.monotonic() < deadline and (done_at is None or time.monotonic() < done_at + 3):
            record = consumer.poll(0.5)
            if record is None or record.error():
                continue
            key = id_of(record)
            if key in wanted or key in also:
                seen.setdefault(key, []).append(record)
            if done_at is None and set(seen) >= set(wanted):
                done_at = time.monotonic()
    finally:
        consumer.close()
    return seen


def headers_of(record):
    return {k: v.decode() for k, v in (record.headers() or [])}


def test_json_schema_product_valid_events_forwarded_invalid_ones_dead_lettered(
        bootstrap, registry_url, tokens, unique):
    product = "labels.releases"
    schema_str = (REPO / "schemas" / "labels" / "release-announced.schema.json").read_text()
    publish = produce.Publisher(
        bootstrap, registry_url, product, None, "com.example.labels.release.announced",
        "/labels/interop", registry_conf=credentials(tokens, "labels"),
        serializer=lambda registry: JSONSerializer(schema_str, registry),
        content_type="application/json")

    def release(n, tracks=10, **extra):
        doc = {"release_id": f"{unique}-{n}", "label_id": "label-1", "title": f"Release {n}",
               "format": "EP", "tracks": tracks, "release_date": "2026-12-01"}
        doc.update(extra)
        return doc

    valid = {f"{unique}-{n}": release(n, tracks=n + 1) for n in range(10)}
    for doc in valid.values():
        publish(doc, key=doc["label_id"])
    # valid under the JSON Schema, refused by the product's rule
    no_tracks = release("none", tracks=0)
    publish(no_tracks, key="label-1")
    # a client that does not validate: a document without its title, framed as the serializer
    # would frame it (the schema id is the one the serializer registered or found)
    serialized = publish.serializer(release("x"), SerializationContext(publish.topic, MessageField.VALUE))
    untitled = release("untitled")
    del untitled["title"]
    publish(None, key="label-1", framed=serialized[:5] + json.dumps(untitled).encode())
    assert publish.flush() == 0

    context = SerializationContext(product, MessageField.VALUE)
    deserialize = JSONDeserializer(schema_str)
    forwarded = read(bootstrap, product, set(valid),
                     lambda r: json.loads(r.value()[5:])["release_id"],
                     also={no_tracks["release_id"], untitled["release_id"]})
    assert set(forwarded) == set(valid), "the valid releases only"
    for release_id, records in forwarded.items():
        assert len(records) == 1, f"{release_id} forwarded {len(records)} times"
        assert deserialize(records[0].value(), context) == valid[release_id]
        assert headers_of(records[0])["content-type"] == "application/json"

    letters = read(bootstrap, f"{product}.dlq", {no_tracks["release_id"], untitled["release_id"]},
                   lambda r: json.loads(r.value()[5:])["release_id"])
    rule = headers_of(letters[no_tracks["release_id"]][0])
    assert (rule["meshline_reason"], rule["meshline_rule"]) == ("rule_failed", "has_tracks")
    schema = headers_of(letters[untitled["release_id"]][0])
    assert schema["meshline_reason"] == "bad_payload"
    assert "title" in schema["meshline_message"], schema["meshline_message"]
    assert all(len(records) == 1 for records in letters.values())


def follow_class():
    """`ArtistFollowed` as protoc describes `schemas/artists/artist-followed.proto`."""
    file = descriptor_pb2.FileDescriptorProto(
        name="artist-followed.proto", package="com.example.artists", syntax="proto3")
    message = file.message_type.add(name="ArtistFollowed")
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    string = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
    for number, name in enumerate(["follow_id", "user_id", "artist_id"], start=1):
        message.field.add(name=name, number=number, type=string, label=optional)
    message.field.add(name="origin", number=4, label=optional,
                      type=descriptor_pb2.FieldDescriptorProto.TYPE_ENUM,
                      type_name=".com.example.artists.ArtistFollowed.Origin")
    message.field.add(name="notifications", number=5, label=optional,
                      type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL)
    origin = message.enum_type.add(name="Origin")
    for number, name in enumerate(["ORIGIN_UNSPECIFIED", "SEARCH", "PROFILE", "RECOMMENDATION"]):
        origin.value.add(name=name, number=number)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("com.example.artists.ArtistFollowed"))


def test_protobuf_product_valid_events_forwarded_invalid_ones_dead_lettered(
        bootstrap, registry_url, tokens, unique):
    product = "artists.follows"
    ArtistFollowed = follow_class()
    publish = produce.Publisher(
        bootstrap, registry_url, product, None, "com.example.artists.artist.followed",
        "/artists/interop", registry_conf=credentials(tokens, "artists"),
        serializer=lambda registry: ProtobufSerializer(ArtistFollowed, registry, PROTOBUF_CONF),
        content_type="application/protobuf")
    valid = {}
    for n in range(10):
        follow = ArtistFollowed(follow_id=f"{unique}-{n}", user_id=f"user-{n}",
                                artist_id=f"artist-{n % 3}", origin=n % 4, notifications=n % 2 == 0)
        valid[follow.follow_id] = follow
        publish(follow, key=follow.user_id)
    # refused by the product's rule: no artist
    anonymous = ArtistFollowed(follow_id=f"{unique}-anonymous", user_id="user-1")
    publish(anonymous, key="user-1")
    # not a Protobuf message at all, after a valid frame
    serialized = publish.serializer(anonymous, SerializationContext(publish.topic, MessageField.VALUE))
    broken_id = str(uuid.uuid4())
    publish(None, key="user-1", event_id=broken_id, framed=serialized[:6] + b"\xff\xff\xff")
    assert publish.flush() == 0

    context = SerializationContext(product, MessageField.VALUE)
    deserialize = ProtobufDeserializer(ArtistFollowed, PROTOBUF_CONF)
    forwarded = read(bootstrap, product, set(valid),
                     lambda r: deserialize(r.value(), context).follow_id, also={anonymous.follow_id})
    assert set(forwarded) == set(valid), "the valid follows only"
    for follow_id, records in forwarded.items():
        assert len(records) == 1, f"{follow_id} forwarded {len(records)} times"
        assert deserialize(records[0].value(), context) == valid[follow_id]
        assert headers_of(records[0])["content-type"] == "application/protobuf"

    letters = read(bootstrap, f"{product}.dlq", {anonymous.follow_id, broken_id},
                   lambda r: headers_of(r).get("ce_id") if r.value().endswith(b"\xff\xff\xff")
                   else deserialize(r.value(), context).follow_id)
    rule = headers_of(letters[anonymous.follow_id][0])
    assert (rule["meshline_reason"], rule["meshline_rule"]) == ("rule_failed", "artist_named")
    broken = headers_of(letters[broken_id][0])
    assert broken["meshline_reason"] == "bad_payload", broken
    assert "ArtistFollowed" in broken["meshline_message"], broken["meshline_message"]
    assert all(len(records) == 1 for records in letters.values())
