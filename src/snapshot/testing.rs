//! Rows for the snapshotter's unit tests: the demo's plays, decoded as the worker decodes them.

use apache_avro::{writer::datum::GenericDatumWriter, AvroSchema as _};

use super::rows::{Decoding, Rows};
use crate::{
    codec::wire,
    demo::events::{Device, PlayEvent},
};

/// One play: its partition, offset, event time (ms) and user; `duration_ms` is the offset.
pub(crate) type Play<'a> = (i32, i64, i64, &'a str);

/// The rows of `plays`, in the given order, as one batch.
pub(crate) fn rows(plays: &[Play<'_>]) -> Rows {
    let schema = PlayEvent::get_schema();
    let json = serde_json::to_string(&schema).unwrap();
    let mut decoding = Decoding::new(&json, &[(1, json.clone())], plays.len().max(1)).unwrap();
    let writer = GenericDatumWriter::builder(&schema).build().unwrap();
    for &(partition, offset, time, user) in plays {
        let event = PlayEvent {
            play_id: format!("p{partition}-{offset}"),
            user_id: user.into(),
            track_id: "t".into(),
            artist_id: "a".into(),
            device: Device::Web,
            country: "SE".into(),
            started_at: time,
            duration_ms: offset,
            completed: true,
            context: None,
        };
        let payload = wire::encode(1, &writer.write_ser_to_vec(&event).unwrap());
        decoding
            .push(partition, offset, Some(time), None, &payload)
            .unwrap();
    }
    decoding.finish().unwrap().unwrap()
}

/// The columns of the plays' rows.
pub(crate) fn schema() -> arrow_schema::SchemaRef {
    rows(&[(0, 0, 0, "")]).batch.schema()
}
