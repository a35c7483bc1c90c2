//! Product-topic records to Arrow rows (sans-io): Confluent-framed Avro payloads decoded
//! straight into columns by `arrow-avro`, with the record's place and CloudEvents attributes as
//! four more columns.

use std::{collections::HashMap, sync::Arc};

use arrow_array::{
    builder::{StringBuilder, TimestampMillisecondBuilder},
    ArrayRef, Int32Array, Int64Array, RecordBatch,
};
use arrow_avro::{
    reader::{Decoder, ReaderBuilder},
    schema::{AvroSchema, Fingerprint, FingerprintAlgorithm, SchemaStore},
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::{Error, Result};
use crate::{codec::wire, contract::WriterSchema};

/// Column: the CloudEvents `time` of the event (UTC).
pub const EVENT_TIME: &str = "_event_time";
/// Column: the CloudEvents `id` of the event.
pub const EVENT_ID: &str = "_event_id";
/// Column: the product-topic partition the event was read from.
pub const PARTITION: &str = "_partition";
/// Column: its offset there.
pub const OFFSET: &str = "_offset";

/// Decoded records of one batch: the payload's columns, then [`EVENT_TIME`], [`EVENT_ID`],
/// [`PARTITION`], [`OFFSET`].
#[derive(Debug, Clone)]
pub struct Rows {
    /// The rows.
    pub batch: RecordBatch,
    /// Partition of each row.
    pub partitions: Vec<i32>,
    /// Offset of each row.
    pub offsets: Vec<i64>,
    /// Writer schema id of each row.
    pub schema_ids: Vec<u32>,
}

impl Rows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }
}

/// Why a record is left out of the snapshots (it is still in the product topic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The payload is not Confluent-framed Avro of a registered schema.
    Payload(String),
    /// The writer schema is not known yet: [`Decoding::finish`], fetch it,
    /// [`Decoding::add_schema`], push again.
    UnknownSchema(u32),
    /// The batch in progress is full, or has another writer schema: [`Decoding::finish`] and
    /// push again.
    Full,
}

/// Turns records into [`Rows`], one batch at a time.
pub struct Decoding {
    reader: AvroSchema,
    writers: HashMap<u32, (String, WriterSchema)>,
    decoder: Option<Decoder>,
    batch_size: usize,
    partitions: Vec<i32>,
    offsets: Vec<i64>,
    schema_ids: Vec<u32>,
    batch_schema: Option<u32>,
    times: TimestampMillisecondBuilder,
    ids: StringBuilder,
}

impl std::fmt::Debug for Decoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoding")
            .field("writers", &self.writers.keys())
            .finish_non_exhaustive()
    }
}

impl Decoding {
    /// Decodes into the columns of `reader` (the product's latest schema, as JSON) payloads
    /// written with `writers` (schema id → JSON), at most `batch_size` rows per batch.
    pub fn new(reader: &str, writers: &[(u32, String)], batch_size: usize) -> Result<Self> {
        let mut decoding = Self {
            reader: AvroSchema::new(reader.to_owned()),
            writers: HashMap::new(),
            decoder: None,
            batch_size,
            partitions: Vec::new(),
            offsets: Vec::new(),
            schema_ids: Vec::new(),
            batch_schema: None,
            times: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            ids: StringBuilder::new(),
        };
        for (id, json) in writers {
            decoding.insert(*id, json)?;
        }
        decoding.rebuild()?;
        Ok(decoding)
    }

    fn insert(&mut self, id: u32, json: &str) -> Result<()> {
        let avro = apache_avro::Schema::parse_str(json).map_err(|e| Error::Schema {
            id,
            message: e.to_string(),
        })?;
        self.writers
            .insert(id, (json.to_owned(), WriterSchema::new(Arc::new(avro))));
        Ok(())
    }

    fn rebuild(&mut self) -> Result<()> {
        let mut store = SchemaStore::new_with_type(FingerprintAlgorithm::Id);
        for (id, (json, _)) in &self.writers {
            store
                .set(Fingerprint::Id(*id), AvroSchema::new(json.clone()))
                .map_err(Error::arrow)?;
        }
        self.decoder = Some(
            ReaderBuilder::new()
                .with_batch_size(self.batch_size)
                .with_reader_schema(self.reader.clone())
                .with_writer_schema_store(store)
                .build_decoder()
                .map_err(Error::arrow)?,
        );
        Ok(())
    }

    /// Adds a writer schema; call it between batches.
    pub fn add_schema(&mut self, id: u32, json: &str) -> Result<()> {
        if self.pending() > 0 {
            return Err(Error::Unexpected(
                "a writer schema added with a batch in progress".into(),
            ));
        }
        self.insert(id, json)?;
        self.rebuild()
    }

    /// Rows pushed since the last [`Decoding::finish`].
    pub fn pending(&self) -> usize {
        self.offsets.len()
    }

    /// Whether the batch in progress is full.
    pub fn is_full(&self) -> bool {
        self.offsets.len() >= self.batch_size
    }

    /// Adds one record. A record whose payload does not decode is refused before it reaches the
    /// columns.
    pub fn push(
        &mut self,
        partition: i32,
        offset: i64,
        event_time: Option<i64>,
        event_id: Option<&str>,
        payload: &[u8],
    ) -> Result<(), Skip> {
        let (id, body) = wire::decode(payload).map_err(|e| Skip::Payload(e.to_string()))?;
        let (Some((_, writer)), Some(decoder)) = (self.writers.get(&id), self.decoder.as_mut())
        else {
            return Err(Skip::UnknownSchema(id));
        };
        if self.offsets.len() >= self.batch_size || self.batch_schema.is_some_and(|b| b != id) {
            return Err(Skip::Full);
        }
        writer
            .decode(body, Some(&[]))
            .map_err(|e| Skip::Payload(format!("payload does not decode with schema {id}: {e}")))?;
        match decoder.decode(payload) {
            Ok(n) if n == payload.len() => {}
            Ok(n) => {
                return Err(Skip::Payload(format!(
                    "decoded {n} of {} payload bytes",
                    payload.len()
                )))
            }
            Err(e) => return Err(Skip::Payload(e.to_string())),
        }
        self.partitions.push(partition);
        self.offsets.push(offset);
        self.schema_ids.push(id);
        self.batch_schema = Some(id);
        self.times.append_option(event_time);
        self.ids.append_option(event_id);
        Ok(())
    }

    /// The rows pushed since the last call.
    pub fn finish(&mut self) -> Result<Option<Rows>> {
        let Some(decoder) = self.decoder.as_mut() else {
            return Ok(None);
        };
        self.batch_schema = None;
        let Some(payload) = decoder.flush().map_err(Error::avro)? else {
            return Ok(None);
        };
        let times = self.times.finish();
        let partitions = std::mem::take(&mut self.partitions);
        let offsets = std::mem::take(&mut self.offsets);
        let schema_ids = std::mem::take(&mut self.schema_ids);
        let mut fields: Vec<Arc<Field>> = payload.schema().fields().iter().cloned().collect();
        fields.extend(meta_fields());
        let mut columns: Vec<ArrayRef> = payload.columns().to_vec();
        columns.push(Arc::new(times));
        columns.push(Arc::new(self.ids.finish()));
        columns.push(Arc::new(Int32Array::from(partitions.clone())));
        columns.push(Arc::new(Int64Array::from(offsets.clone())));
        let batch =
            RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(Error::arrow)?;
        Ok(Some(Rows {
            batch,
            partitions,
            offsets,
            schema_ids,
        }))
    }

    /// The schema of the rows.
    pub fn schema(&self) -> Option<SchemaRef> {
        let decoder = self.decoder.as_ref()?;
        let mut fields: Vec<Arc<Field>> = decoder.schema().fields().iter().cloned().collect();
        fields.extend(meta_fields());
        Some(Arc::new(Schema::new(fields)))
    }
}

fn meta_fields() -> [Arc<Field>; 4] {
    [
        Arc::new(Field::new(
            EVENT_TIME,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        )),
        Arc::new(Field::new(EVENT_ID, DataType::Utf8, true)),
        Arc::new(Field::new(PARTITION, DataType::Int32, false)),
        Arc::new(Field::new(OFFSET, DataType::Int64, false)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{codec::wire, demo::events::PlayEvent};
    use apache_avro::{writer::datum::GenericDatumWriter, AvroSchema as _};

    fn payload(id: u32, duration_ms: i64) -> Vec<u8> {
        let schema = PlayEvent::get_schema();
        let mut event = PlayEvent::random(&mut rand::rng(), chrono::Utc::now());
        event.duration_ms = duration_ms;
        let body = GenericDatumWriter::builder(&schema)
            .build()
            .and_then(|w| w.write_ser_to_vec(&event))
            .unwrap();
        wire::encode(id, &body)
    }

    #[test]
    fn bad_payloads_are_refused_without_spoiling_the_batch() {
        let json = serde_json::to_string(&PlayEvent::get_schema()).unwrap();
        let mut decoding = Decoding::new(&json, &[(1, json.clone())], 10).unwrap();
        decoding
            .push(0, 0, Some(1), Some("a"), &payload(1, 5))
            .unwrap();
        let mut cut = payload(1, 6);
        cut.truncate(cut.len() - 3);
        assert!(matches!(
            decoding.push(0, 1, None, None, &cut),
            Err(Skip::Payload(_))
        ));
        assert!(matches!(
            decoding.push(0, 2, None, None, b"not avro"),
            Err(Skip::Payload(_))
        ));
        assert_eq!(
            decoding.push(0, 3, None, None, &payload(9, 7)),
            Err(Skip::UnknownSchema(9))
        );
        decoding
            .push(0, 4, Some(2), Some("b"), &payload(1, 8))
            .unwrap();
        let rows = decoding.finish().unwrap().unwrap();
        assert_eq!(rows.offsets, [0, 4]);
        let durations = rows
            .batch
            .column_by_name("duration_ms")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .values()
            .to_vec();
        assert_eq!(durations, [5, 8]);
        assert_eq!(rows.batch.num_columns(), 10 + 4);

        // a second writer schema: the batch in progress is finished first
        decoding.add_schema(9, &json).unwrap();
        decoding.push(1, 0, None, None, &payload(1, 1)).unwrap();
        assert_eq!(
            decoding.push(1, 1, None, None, &payload(9, 2)),
            Err(Skip::Full)
        );
        assert_eq!(decoding.finish().unwrap().unwrap().len(), 1);
        decoding.push(1, 1, None, None, &payload(9, 2)).unwrap();
        assert_eq!(decoding.finish().unwrap().unwrap().schema_ids, [9]);
    }
}

#[cfg(test)]
mod mapping {
    use super::*;
    use apache_avro::{types::Value, Decimal, Schema};
    use arrow_schema::DataType;

    const SCHEMA: &str = r#"{"type": "record", "name": "Everything", "fields": [
        {"name": "address", "type": {"type": "record", "name": "Address", "fields": [
            {"name": "city", "type": "string"}, {"name": "zip", "type": ["null", "int"]}]}},
        {"name": "genres", "type": {"type": "array", "items": "string"}},
        {"name": "counts", "type": {"type": "map", "values": "long"}},
        {"name": "note", "type": ["null", "string"], "default": null},
        {"name": "tier", "type": {"type": "enum", "name": "Tier", "symbols": ["INDIE", "MAJOR"]}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}}
    ]}"#;

    #[test]
    fn avro_types_map_to_arrow_and_survive_parquet() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let value = Value::Record(vec![
            (
                "address".into(),
                Value::Record(vec![
                    ("city".into(), Value::String("Malmö".into())),
                    ("zip".into(), Value::Union(1, Box::new(Value::Int(21120)))),
                ]),
            ),
            (
                "genres".into(),
                Value::Array(vec![Value::String("jazz".into())]),
            ),
            (
                "counts".into(),
                Value::Map([("plays".to_owned(), Value::Long(3))].into_iter().collect()),
            ),
            ("note".into(), Value::Union(0, Box::new(Value::Null))),
            ("tier".into(), Value::Enum(1, "MAJOR".into())),
            ("at".into(), Value::TimestampMicros(1_795_600_000_000_000)),
            ("day".into(), Value::Date(20_000)),
            (
                "price".into(),
                Value::Decimal(Decimal::from(vec![0x04, 0xd2])),
            ),
            (
                "id".into(),
                Value::Uuid(uuid::Uuid::parse_str("8f0e2c9a-2b6f-4d4c-9a51-0d0d6f1c7b11").unwrap()),
            ),
        ]);
        let body = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
            .build()
            .and_then(|w| w.write_value_to_vec(value))
            .unwrap();
        let json = serde_json::to_string(&schema).unwrap();
        let mut decoding = Decoding::new(&json, &[(7, json.clone())], 16).unwrap();
        decoding
            .push(
                0,
                0,
                Some(0),
                Some("e"),
                &crate::codec::wire::encode(7, &body),
            )
            .unwrap();
        let rows = decoding.finish().unwrap().unwrap();
        let types: Vec<(String, DataType)> = rows
            .batch
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        let of = |name: &str| &types.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(matches!(of("address"), DataType::Struct(_)), "{types:?}");
        assert!(matches!(of("genres"), DataType::List(_)), "{types:?}");
        assert!(matches!(of("counts"), DataType::Map(..)), "{types:?}");
        assert_eq!(of("note"), &DataType::Utf8);
        assert!(matches!(of("tier"), DataType::Dictionary(..)), "{types:?}");
        assert!(
            matches!(of("at"), DataType::Timestamp(TimeUnit::Microsecond, _)),
            "{types:?}"
        );
        assert_eq!(of("day"), &DataType::Date32);
        assert!(
            matches!(
                of("price"),
                DataType::Decimal128(10, 2) | DataType::Decimal64(10, 2)
            ),
            "{types:?}"
        );
        assert!(
            matches!(of("id"), DataType::Utf8 | DataType::FixedSizeBinary(16)),
            "{types:?}"
        );
        let parquet = crate::snapshot::parquet::encode(
            rows.batch.schema(),
            std::slice::from_ref(&rows.batch),
        )
        .unwrap();
        let back = crate::snapshot::parquet::decode(parquet).unwrap();
        assert_eq!(back, vec![rows.batch]);
    }
}
