//! The fields a product's rules read, taken from a typed event while serde walks it: the SDK's
//! rule input without decoding the payload it has just encoded. Only the wanted fields are
//! serialized (by `apache-avro`, then typed by the record's schema, as [`super::payload`] types
//! what it decodes); the others are skipped.

use std::fmt;

use apache_avro::{types::Value, Schema};
use serde::ser::{self, Impossible, Serialize, Serializer};

use super::payload::typed_by;

/// The top-level `fields` of `event`, typed by `schema` (a record): the record
/// [`super::Contract::check_rules`] needs. `None` when this cannot be done (the event does not
/// serialize as a struct, lacks a wanted field, or a value does not fit its field's type): the
/// caller decodes the encoded payload instead, which says why.
pub(super) fn fields<T: Serialize + ?Sized>(
    event: &T,
    fields: &[String],
    schema: &Schema,
) -> Option<Value> {
    let Schema::Record(record) = schema else {
        return None;
    };
    let kept = event
        .serialize(Fields {
            wanted: fields,
            kept: Vec::with_capacity(fields.len()),
        })
        .ok()?;
    let present = fields
        .iter()
        .filter(|f| record.lookup.contains_key(f.as_str()))
        .count();
    if kept.len() != present {
        return None;
    }
    let mut typed = Vec::with_capacity(kept.len());
    for (name, value) in kept {
        let field = record
            .lookup
            .get(name)
            .and_then(|i| record.fields.get(*i))?;
        typed.push((name.to_owned(), typed_by(value, &field.schema, schema)?));
    }
    Some(Value::Record(typed))
}

/// Why capturing stopped; the caller falls back to decoding either way.
#[derive(Debug)]
struct Stop(String);

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<M: fmt::Display>(message: M) -> Self {
        Self(message.to_string())
    }
}

fn not_a_record<T>() -> Result<T, Stop> {
    Err(Stop("the event is not a struct".into()))
}

/// A serializer that accepts one struct and keeps the values of its `wanted` fields.
struct Fields<'w> {
    wanted: &'w [String],
    kept: Vec<(&'static str, Value)>,
}

type Kept = Vec<(&'static str, Value)>;

impl ser::SerializeStruct for Fields<'_> {
    type Ok = Kept;
    type Error = Stop;

    fn serialize_field<V: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &V,
    ) -> Result<(), Stop> {
        if self.wanted.iter().any(|w| w == key) {
            let value = apache_avro::to_value(value).map_err(|e| Stop(e.to_string()))?;
            self.kept.push((key, value));
        }
        Ok(())
    }

    fn end(self) -> Result<Kept, Stop> {
        Ok(self.kept)
    }
}

impl Serializer for Fields<'_> {
    type Ok = Kept;
    type Error = Stop;
    type SerializeSeq = Impossible<Kept, Stop>;
    type SerializeTuple = Impossible<Kept, Stop>;
    type SerializeTupleStruct = Impossible<Kept, Stop>;
    type SerializeTupleVariant = Impossible<Kept, Stop>;
    type SerializeMap = Impossible<Kept, Stop>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<Kept, Stop>;

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Stop> {
        Ok(self)
    }

    fn serialize_newtype_struct<V: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &V,
    ) -> Result<Kept, Stop> {
        value.serialize(self)
    }

    fn serialize_bool(self, _: bool) -> Result<Kept, Stop> {
        not_a_record()
    }
    fn serialize_i8(self, _: i8) -> Result<Kept, Stop> {
        not_a_record()
    }
    fn serialize_i16(self, _: i16) -> Result<Kept, Stop> {
        not_a_record()
    }
    fn serialize_i32(self, _: i32) -> Result<Kept, Stop> {
        not_a_record()
    }
    fn serialize_i64(self, _: i64) -> Result<Kept, Stop> {
        not_a_record()
    }
    fn serialize_u8(self, _: u8) -> Result<Kept, Stop> {
        not_a_record()
    }
    fn serialize_u16(self, _: u16) -> Result<Kept, Stop> {
        not_a_record()
    }
    fn serialize_u32(self, _: u32) -> Result<Kept, Stop> {
        not_a_record()
    }
    fn serialize_u64(self, _: u64) -> Result<Kept, Stop> {
        not_a_record()
    }
    fn serialize_f32(self, _: f32) -> Result<Kept, Stop> {
        not_a_record()
    }
    fn serialize_f64(self, _: f64) -> Result<Kept, Stop> {
        not_a_record()
    }
    fn serialize_char(self, _: char) -> Result<Kept, Stop> {
        not_a_record()
    }
    fn serialize_str(self, _: &str) -> Result<Kept, Stop> {
        not_a_record()
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<Kept, Stop> {
        not_a_record()
    }
    fn serialize_none(self) -> Result<Kept, Stop> {
        not_a_record()
    }
    fn serialize_some<V: Serialize + ?Sized>(self, _: &V) -> Result<Kept, Stop> {
        not_a_record()
    }
    fn serialize_unit(self) -> Result<Kept, Stop> {
        not_a_record()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Kept, Stop> {
        not_a_record()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<Kept, Stop> {
        not_a_record()
    }
    fn serialize_newtype_variant<V: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &V,
    ) -> Result<Kept, Stop> {
        not_a_record()
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Stop> {
        not_a_record()
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Stop> {
        not_a_record()
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Stop> {
        not_a_record()
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Stop> {
        not_a_record()
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Stop> {
        not_a_record()
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Stop> {
        not_a_record()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rand::{rngs::StdRng, RngExt, SeedableRng};

    use super::*;
    use crate::{
        contract::{payload::WriterSchema, Contract},
        product::Catalog,
    };

    /// `player.play-events`' record as a producer's serde type would be.
    #[derive(serde::Serialize)]
    struct PlayEvent {
        play_id: String,
        user_id: String,
        track_id: String,
        artist_id: String,
        device: &'static str,
        country: &'static str,
        started_at: i64,
        duration_ms: i64,
        completed: bool,
        context: Option<String>,
    }

    impl PlayEvent {
        fn random(rng: &mut StdRng) -> Self {
            let devices = ["MOBILE", "DESKTOP", "WEB", "SPEAKER", "CAR"];
            let countries = ["SE", "US", "GB", "DE", "BR", "JP", "FR", "NG", "??"];
            Self {
                play_id: format!("p-{}", rng.random::<u32>()),
                user_id: format!("user-{}", rng.random_range(0..500)),
                track_id: format!("track-{}", rng.random_range(1..2000)),
                artist_id: format!("artist-{}", rng.random_range(1..100)),
                device: devices[rng.random_range(0..devices.len())],
                country: countries[rng.random_range(0..countries.len())],
                started_at: rng.random_range(1_700_000_000_000..1_800_000_000_000),
                duration_ms: rng.random_range(-10..400_000),
                completed: rng.random_bool(0.7),
                context: rng.random_bool(0.5).then(|| "playlist-1".to_owned()),
            }
        }
    }

    #[test]
    fn the_captured_fields_are_those_the_encoded_payload_decodes_to() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/products/player");
        let catalog = Catalog::load(&dir).unwrap();
        let product = catalog.get("player.play-events").unwrap();
        let contract = Contract::from_product(product).unwrap();
        let schema = WriterSchema::new(Arc::new(product.schema.clone()));
        let wanted = contract.fields_read.clone().unwrap();
        assert!(!wanted.is_empty());
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..500 {
            let event = PlayEvent::random(&mut rng);
            let mut body = Vec::new();
            schema.encode(&event, &mut body).unwrap();
            let decoded = contract.rule_input(&schema, &body).unwrap();
            let captured = fields(&event, &wanted, &schema.avro).unwrap();
            assert_eq!(captured, decoded);
        }
    }

    #[test]
    fn what_is_not_a_struct_or_lacks_a_wanted_field_is_left_to_decoding() {
        let schema: Schema = Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"b","type":"string","default":""}]}"#,
        )
        .unwrap();
        #[derive(serde::Serialize)]
        struct OnlyA {
            a: i64,
        }
        let wanted = ["a".to_owned(), "b".to_owned()];
        assert_eq!(fields(&OnlyA { a: 1 }, &wanted, &schema), None);
        assert_eq!(fields(&5i64, &wanted, &schema), None);
        assert_eq!(
            fields(&OnlyA { a: 1 }, &wanted[..1], &schema),
            Some(Value::Record(vec![("a".into(), Value::Long(1))]))
        );
    }
}
