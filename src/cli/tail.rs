//! `meshline tail PRODUCT`: a product's events as JSON lines.

use std::{collections::HashMap, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Args;
use cloudevents::AttributesReader;
use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    Message, Offset, TopicPartitionList,
};
use serde_json::{json, Map, Value};

use super::{ConfigArgs, DEFAULT_KAFKA, DEFAULT_REGISTRY_URL};
use crate::{
    binding::kafka::Record,
    broker,
    codec::{json::to_json, wire},
    contract::WriterSchema,
    formats,
    product::SchemaFormat,
    registry::client::Client,
};
use meshline_sdk::kafka::RecordExt as _;

/// Arguments of `meshline tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Product id, e.g. `player.play-events`.
    pub product: String,
    /// Kafka bootstrap servers.
    #[arg(long, default_value = DEFAULT_KAFKA, env = "MESHLINE_BOOTSTRAP")]
    pub bootstrap: String,
    /// Start from the oldest event kept instead of new events only.
    #[arg(long)]
    pub from_beginning: bool,
    /// Tail the product's dead-letter topic instead.
    #[arg(long)]
    pub dlq: bool,
    /// Exit after this many events.
    #[arg(long)]
    pub max_events: Option<u64>,
    /// Schema registry that resolves the schema id of each payload.
    #[arg(long, default_value = DEFAULT_REGISTRY_URL, env = "MESHLINE_REGISTRY")]
    pub registry: String,
    /// Descriptors.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Prints events until interrupted (or `--max-events`).
pub(super) async fn run(args: TailArgs) -> anyhow::Result<ExitCode> {
    let catalog = args.config.load()?;
    let product = catalog.require(&args.product)?;
    let topic = if args.dlq {
        product.topics().dlq
    } else {
        product.topics().product
    };
    broker::check_reachable(&args.bootstrap, Duration::from_secs(10)).await?;
    let consumer: StreamConsumer = broker::client_config(&args.bootstrap)
        .set("group.id", "meshline-tail")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .context("creating the consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .context("reading topic metadata")?;
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    if partitions == 0 {
        anyhow::bail!("topic `{topic}` does not exist yet; start `meshline up` first");
    }
    let start = if args.from_beginning {
        Offset::Beginning
    } else {
        Offset::End
    };
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(&topic, i32::try_from(p)?, start)?;
    }
    consumer.assign(&assignment)?;
    let registry = Client::new(&args.registry);
    // writer schemas by id: Avro, JSON Schema or Protobuf (its product's first message)
    let mut schemas: HashMap<u32, Result<Arc<WriterSchema>, String>> = HashMap::new();
    let product = topic
        .trim_end_matches(".ingress")
        .trim_end_matches(".dlq")
        .to_owned();
    let mut printed = 0u64;
    while args.max_events.is_none_or(|max| printed < max) {
        let message = consumer.recv().await?;
        let record = Record::from_message(&message);
        let schema = match record.payload.as_deref().map(wire::decode) {
            Some(Ok((id, _))) => {
                if let std::collections::hash_map::Entry::Vacant(entry) = schemas.entry(id) {
                    let fetched = formats::writer_schema(&registry, id, &product, None)
                        .await
                        .map(Arc::new)
                        .map_err(|e| e.to_string());
                    entry.insert(fetched);
                }
                schemas.get(&id).cloned()
            }
            _ => None,
        };
        let mut line = render(&record, schema);
        if let Value::Object(map) = &mut line {
            map.insert("partition".into(), json!(message.partition()));
            map.insert("offset".into(), json!(message.offset()));
        }
        println!("{line}");
        printed += 1;
    }
    Ok(ExitCode::SUCCESS)
}

/// One event as JSON: its CloudEvents attributes, schema id and payload decoded with `schema`
/// (the registry's schema for that id, in any schema language), or the reason it could not be
/// decoded (the raw headers are then shown).
fn render(record: &Record, schema: Option<Result<Arc<WriterSchema>, String>>) -> Value {
    let mut out = Map::new();
    match record.to_event() {
        Ok(event) => {
            let attributes: Map<String, Value> = event
                .iter()
                .map(|(k, v)| (k.to_owned(), Value::String(v.to_string())))
                .collect();
            out.insert("attributes".into(), Value::Object(attributes));
            let known = [
                SchemaFormat::Avro,
                SchemaFormat::Json,
                SchemaFormat::Protobuf,
            ];
            let content_type = event.datacontenttype().unwrap_or_default();
            if !known.iter().any(|f| f.accepts(content_type)) {
                out.insert(
                    "error".into(),
                    json!(format!(
                        "content type {:?} is not application/avro, application/json or application/protobuf",
                        event.datacontenttype()
                    )),
                );
            }
        }
        Err(e) => {
            out.insert("error".into(), json!(e.to_string()));
            let headers: Map<String, Value> = record
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), json!(String::from_utf8_lossy(v))))
                .collect();
            out.insert("headers".into(), Value::Object(headers));
        }
    }
    match record.payload.as_deref().map(wire::decode) {
        Some(Ok((id, body))) => {
            out.insert("schema_id".into(), json!(id));
            let decoded = match schema {
                Some(Ok(schema)) => schema.decode(body, None).map(to_json),
                Some(Err(e)) => Err(e),
                None => Err(format!("no schema for id {id}")),
            };
            match decoded {
                Ok(data) => {
                    out.insert("data".into(), data);
                }
                Err(e) => {
                    out.insert("error".into(), json!(e));
                }
            }
        }
        Some(Err(e)) => {
            out.insert("error".into(), json!(e.to_string()));
        }
        None => {}
    }
    Value::Object(out)
}
