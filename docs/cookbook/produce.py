"""Publish a data product's events from Python with Confluent's own Avro serializer.

The serializer keeps its default settings: its default subject naming finds the product's
schema from the ingress topic's name, and it registers nothing new when the schema is the
product's. The CloudEvents attributes travel as Kafka headers (binary mode), written by the
`cloudevents` package; meshline's gateway checks them, the schema and the product's rules, then
forwards the event to the product topic or dead-letters it with the reason.

    publish = Publisher("localhost:9092", "http://localhost:8081", "player.play-events",
                        schema_str, "com.example.player.track.played", "/player/web",
                        registry_conf={"basic.auth.user.info": f"player:{PLAYER_TOKEN}"})
    event_id = publish({...the event's fields...}, key="user-312")
    publish.flush()
"""

import uuid
from datetime import datetime, timezone

from cloudevents.core.bindings.kafka import to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


class Publisher:
    """Sends events of one product to its ingress topic, `<product>.ingress`."""

    def __init__(self, bootstrap, registry_url, product, schema_str, event_type, source,
                 serializer_conf=None, registry_conf=None, serializer=None,
                 content_type="application/avro"):
        """`serializer`, given a registry client, answers another of Confluent's serializers,
        for a product in JSON Schema or Protobuf, whose `content_type` is `application/json` or
        `application/protobuf`."""
        self.topic = f"{product}.ingress"
        self.event_type = event_type
        self.source = source
        self.content_type = content_type
        # the registry lets a domain's token register its own products' schemas (the
        # serializer's default `auto.register.schemas` registers, or finds, the schema it writes)
        registry = SchemaRegistryClient({"url": registry_url, **(registry_conf or {})})
        # schema_str may be None with {"use.latest.version": True, "auto.register.schemas": False}
        self.serializer = (serializer(registry) if serializer
                           else AvroSerializer(registry, schema_str, conf=serializer_conf))
        self.producer = Producer({"bootstrap.servers": bootstrap})

    def __call__(self, data, key, event_id=None, event_type=None, source=None, framed=None):
        """Sends one event; answers its CloudEvents id (the gateway drops repeats of an id).
        `framed` sends those bytes as the payload instead of serializing `data`."""
        value = framed if framed is not None else self.serializer(
            data, SerializationContext(self.topic, MessageField.VALUE))
        event = CloudEvent(
            attributes={
                "id": event_id or str(uuid.uuid4()),
                "source": source or self.source,
                "type": event_type or self.event_type,
                "time": datetime.now(timezone.utc),
                "datacontenttype": self.content_type,
                "subject": key,
                "partitionkey": key,
            },
            data=value,
        )
        message = to_binary(event, JSONFormat())
        self.producer.produce(
            self.topic,
            key=message.key,
            value=message.value,
            headers=list(message.headers.items()),
        )
        self.producer.poll(0)
        return event.get_id()

    def flush(self, timeout=30.0):
        """Waits until every event sent is acknowledged; answers how many are not."""
        return self.producer.flush(timeout)
