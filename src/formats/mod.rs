//! Products whose events are JSON Schema or Protobuf rather than Avro, as Confluent's serializers
//! write them: each format's schema has an Avro **field model** (`codec::json_schema` for JSON
//! Schema, [`protobuf`] for a Protobuf message), which quality rules, views and snapshots read
//! whatever the format, and a decoder of its events into values of that model (JSON by
//! validation, Protobuf by reflection).

use std::{path::Path, sync::Arc};

use crate::{
    contract::WriterSchema,
    product::{Catalog, Errors, ProductId, SchemaFormat},
    registry::{
        api::{SchemaBody, VersionId},
        client::{self, Client},
    },
};

pub mod json;
pub mod protobuf;

/// Every product under `dir`, Protobuf products compiled (the loader every command uses).
pub fn load_catalog(dir: &Path) -> Result<Catalog, Errors> {
    Catalog::load_with(dir, Some(protobuf::fields))
}

/// The writer schema registered under `id`, for events of `product`: an Avro schema as it is,
/// a JSON Schema or a Protobuf schema with its field model and decoder. `message` is the
/// Protobuf message of the product's events (absent: the schema's first).
pub async fn writer_schema(
    client: &Client,
    id: u32,
    product: &str,
    message: Option<&str>,
) -> client::Result<WriterSchema> {
    // an Avro schema this client has read before: no I/O
    if let Some(schema) = client.cached_schema(id) {
        return Ok(WriterSchema::new(schema));
    }
    let body = client.schema_body(id).await?;
    let invalid = |message: String| client::Error::Unexpected {
        url: client.url().to_owned(),
        message: format!("schema id {id}: {message}"),
    };
    match SchemaFormat::of_schema_type(body.schema_type.as_deref()) {
        Some(SchemaFormat::Avro) => Ok(WriterSchema::new(client.avro(id, &body).await?)),
        Some(SchemaFormat::Json) => {
            json::writer_schema(&body.schema, ProductId(product).name()).map_err(invalid)
        }
        Some(SchemaFormat::Protobuf) => {
            let references = client.referenced(&body).await?;
            protobuf::writer_schema(&body.schema, &references, message).map_err(invalid)
        }
        None => Err(invalid(format!(
            "schema type {:?} is not one meshline reads",
            body.schema_type
        ))),
    }
}

/// The writer schema of `subject`'s latest version, and its id.
pub async fn latest(
    client: &Client,
    subject: &str,
    product: &str,
) -> client::Result<(u32, Arc<WriterSchema>)> {
    let body = client.version(subject, VersionId::Latest).await?;
    let id = body.id.unwrap_or_default();
    let message = message_of(&body);
    let schema = writer_schema(client, id, product, message.as_deref()).await?;
    Ok((id, Arc::new(schema)))
}

/// The Protobuf message a registered version's contract names, if any.
pub fn message_of(body: &SchemaBody) -> Option<String> {
    body.metadata
        .as_ref()?
        .get("properties")?
        .get(crate::registry::contract::MESSAGE_PROPERTY)?
        .as_str()
        .map(str::to_owned)
}
