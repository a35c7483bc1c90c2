"""Read a data product (or its dead letters) from Python with Confluent's Avro deserializer.

Each record is the event's data, decoded with the schema its id names, and its CloudEvents
attributes from the `ce_*` headers. Dead letters carry the refused event unchanged, plus
headers saying why (`meshline_reason`, `meshline_rule`, `meshline_message`).

    for attributes, data, headers in read("localhost:9092", "http://localhost:8081",
                                          "player.play-events", group="analytics"):
        ...
"""

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def read(bootstrap, registry_url, topic, group, reader_schema=None, idle_seconds=5.0,
         registry_conf=None):
    """Yields (attributes, data, headers) for each record of `topic` from its beginning, until
    no record came for `idle_seconds`. Reads of the registry need no credentials unless it is
    told so (`--registry-auth-reads`): then pass `{"basic.auth.user.info": "DOMAIN:TOKEN"}`."""
    registry = SchemaRegistryClient({"url": registry_url, **(registry_conf or {})})
    deserializer = AvroDeserializer(registry, reader_schema)
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        # the gateway writes transactionally when given a transactional id
        "isolation.level": "read_committed",
    })
    consumer.subscribe([topic])
    try:
        while True:
            message = consumer.poll(idle_seconds)
            if message is None:
                return
            if message.error():
                raise RuntimeError(message.error())
            headers = {k: v.decode() for k, v in (message.headers() or [])}
            attributes = {k[3:]: v for k, v in headers.items() if k.startswith("ce_")}
            data = deserializer(message.value(), SerializationContext(topic, MessageField.VALUE))
            yield attributes, data, headers
    finally:
        consumer.close()
