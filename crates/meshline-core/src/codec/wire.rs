//! The Confluent Schema Registry wire format (sans-io): magic byte `0`, the 4-byte big-endian
//! schema id, then the Avro binary encoding of the value.

/// The only magic byte defined by Confluent.
pub const MAGIC: u8 = 0;
/// Bytes before the Avro body.
pub const HEADER_LEN: usize = 5;

/// Errors reading a framed payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fewer than 5 bytes.
    #[error("payload of {0} bytes is too short for the Confluent wire format (magic byte + 4-byte schema id)")]
    Truncated(usize),
    /// First byte is not 0.
    #[error("wrong magic byte {0:#04x}: the payload is not in the Confluent wire format (expected 0x00)")]
    Magic(u8),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Splits a framed payload into its schema id and Avro body.
pub fn decode(payload: &[u8]) -> Result<(u32, &[u8])> {
    if payload.len() < HEADER_LEN {
        return Err(Error::Truncated(payload.len()));
    }
    if payload[0] != MAGIC {
        return Err(Error::Magic(payload[0]));
    }
    let id = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]);
    Ok((id, &payload[HEADER_LEN..]))
}

/// Writes the frame header for `schema_id` into `out` (the Avro body follows).
pub fn encode_header(schema_id: u32, out: &mut Vec<u8>) {
    out.push(MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

/// Frames an Avro body.
pub fn encode(schema_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    encode_header(schema_id, &mut out);
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_magic_then_big_endian_id_then_body() {
        let framed = encode(0x0102_0304, &[9, 8]);
        assert_eq!(framed, [0, 1, 2, 3, 4, 9, 8]);
        assert_eq!(decode(&framed), Ok((0x0102_0304, &[9u8, 8][..])));
    }

    #[test]
    fn short_and_foreign_payloads_are_refused() {
        assert_eq!(decode(&[0, 0, 0]), Err(Error::Truncated(3)));
        assert_eq!(decode(b"{\"json\":1}"), Err(Error::Magic(b'{')));
    }
}
