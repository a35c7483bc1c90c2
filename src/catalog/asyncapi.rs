//! A product as an AsyncAPI 3.0 document: the Kafka cluster as the server (with the schema
//! registry in its binding), the product, ingress and dead-letter topics as channels, the
//! event as a message (its Avro schema as the payload, its CloudEvents attributes as headers,
//! the schema id in the payload in Confluent's framing), and what a consumer, a producer and an
//! operator do as operations.

use serde_json::{json, Value};

use crate::{
    binding::kafka::{CONTENT_TYPE_HEADER, SPEC_VERSION_HEADER, TRACEPARENT_HEADER},
    contract::record::Reason,
    outputs::headers,
    product::{Product, SchemaFormat},
};

/// The AsyncAPI version written.
const ASYNCAPI: &str = "3.0.0";
/// The Kafka bindings' version.
const KAFKA_BINDING: &str = "0.5.0";
/// The Avro schema format name.
const AVRO_FORMAT: &str = "application/vnd.apache.avro+json;version=1.9.0";
/// The JSON Schema format name (a draft AsyncAPI names).
const JSON_SCHEMA_FORMAT: &str = "application/schema+json;version=draft-07";
/// The Protobuf schema format name: the schema is the `.proto` text.
const PROTOBUF_FORMAT: &str = "application/vnd.google.protobuf;version=3";

/// A message's payload: its schema in the product's own language.
fn payload(product: &Product, avro: Value) -> Value {
    match product.format {
        SchemaFormat::Avro => json!({ "schemaFormat": AVRO_FORMAT, "schema": avro }),
        SchemaFormat::Json => json!({
            "schemaFormat": JSON_SCHEMA_FORMAT,
            "schema": serde_json::from_str::<Value>(&product.schema_text).unwrap_or(Value::Null),
        }),
        SchemaFormat::Protobuf => {
            json!({ "schemaFormat": PROTOBUF_FORMAT, "schema": product.schema_text })
        }
    }
}

/// Where the product is served.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints<'a> {
    /// The Kafka cluster's bootstrap servers.
    pub bootstrap: &'a str,
    /// The schema registry's URL.
    pub registry: &'a str,
    /// The product's catalog address.
    pub catalog: &'a str,
}

/// The AsyncAPI document of `product`.
pub fn document(product: &Product, at: Endpoints<'_>) -> Value {
    let d = &product.descriptor;
    let topics = product.topics();
    let avro: Value = product.avro_json();
    let message = message_name(&avro, &d.id);
    let topic_binding = |topic: &str| {
        json!({ "kafka": {
            "topic": topic,
            "partitions": d.partitions,
            "topicConfiguration": {
                "cleanup.policy": ["delete"],
                "retention.ms": d.retention.as_retention_ms(),
            },
            "bindingVersion": KAFKA_BINDING,
        }})
    };
    let message_ref = format!("#/components/messages/{message}");
    json!({
        "asyncapi": ASYNCAPI,
        "id": format!("urn:meshline:product:{}", d.id),
        "info": {
            "title": d.id,
            "version": "1.0.0",
            "description": d.description,
            "contact": { "name": d.owner.team, "email": d.owner.email },
            "tags": [{ "name": d.domain, "description": "the owning domain" }],
            "externalDocs": { "description": "the product in the catalog", "url": at.catalog },
        },
        "defaultContentType": product.format.content_type(),
        "servers": {
            "kafka": {
                "host": at.bootstrap,
                "protocol": "kafka",
                "description": "the Kafka cluster serving the product",
                "bindings": { "kafka": {
                    "schemaRegistryUrl": at.registry,
                    "schemaRegistryVendor": "confluent",
                    "bindingVersion": KAFKA_BINDING,
                }},
            },
        },
        "channels": {
            "product": {
                "address": topics.product,
                "title": "Product",
                "description": "Events that passed the product's contract, in order per key.",
                "messages": { message.as_str(): { "$ref": message_ref } },
                "bindings": topic_binding(&topics.product),
            },
            "ingress": {
                "address": topics.ingress,
                "title": "Ingress",
                "description": "Where producers write; the gateway checks each event against the contract and forwards it to the product topic or the dead-letter topic.",
                "messages": { message.as_str(): { "$ref": message_ref } },
                "bindings": topic_binding(&topics.ingress),
            },
            "deadLetters": {
                "address": topics.dlq,
                "title": "Dead letters",
                "description": "Events the contract refused, as sent, with the reason in their headers.",
                "messages": { "DeadLetter": { "$ref": "#/components/messages/DeadLetter" } },
                "bindings": topic_binding(&topics.dlq),
            },
        },
        "operations": {
            "consume": {
                "action": "receive",
                "channel": { "$ref": "#/channels/product" },
                "summary": format!("Read {} (any Kafka client; read_committed for exactly once)", d.id),
                "messages": [{ "$ref": format!("#/channels/product/messages/{message}") }],
            },
            "produce": {
                "action": "send",
                "channel": { "$ref": "#/channels/ingress" },
                "summary": format!("Publish to {} (the owning domain)", d.id),
                "messages": [{ "$ref": format!("#/channels/ingress/messages/{message}") }],
            },
            "readDeadLetters": {
                "action": "receive",
                "channel": { "$ref": "#/channels/deadLetters" },
                "summary": "Read refused events and why (`meshline tail --dlq`, `meshline dlq replay`)",
                "messages": [{ "$ref": "#/channels/deadLetters/messages/DeadLetter" }],
            },
        },
        "components": {
            "messages": {
                message.as_str(): {
                    "name": message,
                    "title": avro["name"].as_str().unwrap_or(&d.id),
                    "summary": avro["doc"].as_str().unwrap_or(&d.description),
                    "contentType": product.format.content_type(),
                    "headers": { "$ref": "#/components/schemas/CloudEventsHeaders" },
                    "payload": payload(product, avro),
                    "correlationId": { "location": "$message.header#/ce_id" },
                    "bindings": { "kafka": {
                        "key": { "type": "string", "description": "the event's partition key (CloudEvents partitionkey)" },
                        "schemaIdLocation": "payload",
                        "schemaIdPayloadEncoding": "confluent",
                        "schemaLookupStrategy": "TopicNameStrategy",
                        "bindingVersion": KAFKA_BINDING,
                    }},
                },
                "DeadLetter": {
                    "name": "DeadLetter",
                    "title": "A refused event",
                    "summary": "The record as sent to the ingress topic, with why it was refused.",
                    "contentType": "application/octet-stream",
                    "headers": dead_letter_headers(),
                    "payload": { "type": "string", "format": "binary", "description": "the record's value as sent" },
                },
            },
            "schemas": {
                "CloudEventsHeaders": cloudevents_headers(product),
            },
        },
    })
}

/// A message name from the Avro record's name (`PlayEvent`).
fn message_name(avro: &Value, id: &str) -> String {
    avro["name"]
        .as_str()
        .and_then(|n| n.rsplit('.').next())
        .map(str::to_owned)
        .unwrap_or_else(|| id.replace(['.', '-'], "_"))
}

/// The CloudEvents attributes of the product's events, as Kafka headers (binary mode).
fn cloudevents_headers(product: &Product) -> Value {
    let d = &product.descriptor;
    json!({
        "type": "object",
        "description": "CloudEvents 1.0 attributes in Kafka binary mode",
        "required": [SPEC_VERSION_HEADER, "ce_id", "ce_source", "ce_type", CONTENT_TYPE_HEADER],
        "properties": {
            SPEC_VERSION_HEADER: { "type": "string", "const": "1.0" },
            "ce_id": { "type": "string", "description": "unique per source; the gateway drops a repeated id" },
            "ce_source": { "type": "string", "description": format!("under {}, which the {} domain owns", d.cloudevents.source, d.domain) },
            "ce_type": { "type": "string", "enum": d.cloudevents.types },
            "ce_time": { "type": "string", "format": "date-time", "description": "the event time the snapshots' windows use" },
            "ce_subject": { "type": "string" },
            TRACEPARENT_HEADER: { "type": "string", "description": "W3C trace context" },
            "traceparent": { "type": "string", "description": "W3C trace context, for OpenTelemetry's Kafka instrumentation" },
            CONTENT_TYPE_HEADER: { "type": "string", "const": "application/avro" },
        },
    })
}

/// The headers the gateway adds to a dead letter.
fn dead_letter_headers() -> Value {
    let codes: Vec<&str> = Reason::ALL
        .iter()
        .map(|r| r.code())
        .chain([headers::LATE_EVENT])
        .collect();
    json!({
        "type": "object",
        "required": [headers::REASON, headers::MESSAGE, headers::SOURCE_TOPIC, headers::SOURCE_PARTITION, headers::SOURCE_OFFSET],
        "properties": {
            headers::REASON: { "type": "string", "enum": codes },
            headers::RULE: { "type": "string", "description": "the failed rule, for rule_failed and rule_error" },
            headers::MESSAGE: { "type": "string", "description": "what is wrong and what to do" },
            headers::SOURCE_TOPIC: { "type": "string" },
            headers::SOURCE_PARTITION: { "type": "string" },
            headers::SOURCE_OFFSET: { "type": "string" },
            headers::CONTRACT_VERSION: { "type": "string", "description": "the subject version whose contract refused it" },
        },
    })
}
