//! Confluent's wire format for Kafka record keys and values: magic byte `0`, the schema id as
//! a 4-byte big-endian integer, then the Avro binary encoding of the datum.
//!
//! - [`RegistryClient`]: a small REST client with schema caches (by id, by subject + schema).
//! - [`SubjectNameStrategy`]: TopicName (`<topic>-key|value`), RecordName (`<full name>`),
//!   TopicRecordName (`<topic>-<full name>`).
//! - [`AvroSerializer`] and [`AvroDeserializer`].
//!
//! ```no_run
//! # async fn run() -> Result<(), fjord_schema_registry::Error> {
//! use std::sync::Arc;
//! use fjord_schema_registry::serdes::{AvroDeserializer, AvroSerializer, RegistryClient, SubjectNameStrategy};
//! let client = Arc::new(RegistryClient::new("http://127.0.0.1:8081"));
//! let schema = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}"#;
//! let serializer = AvroSerializer::new(client.clone(), schema, SubjectNameStrategy::TopicName, false)?;
//! let bytes = serializer.serialize_json("users", &serde_json::json!({"id": 7})).await?;
//! let value = AvroDeserializer::new(client).deserialize_json(&bytes).await?;
//! assert_eq!(value["id"], 7);
//! # Ok(()) }
//! ```

mod avro;
mod client;
mod strategy;

pub use self::avro::{AvroDeserializer, AvroSerializer};
pub use self::client::RegistryClient;
pub use self::strategy::SubjectNameStrategy;

use crate::error::{Error, Result};

/// The wire format's magic byte.
pub const MAGIC_BYTE: u8 = 0;

/// Prefixes `payload` with the magic byte and the schema id.
pub fn encode(id: i32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits a wire-format message into its schema id and payload.
pub fn decode(bytes: &[u8]) -> Result<(i32, &[u8])> {
    let Some((header, payload)) = bytes.split_first_chunk::<5>() else {
        return Err(Error::ShortPayload(bytes.len()));
    };
    let [magic, id @ ..] = *header;
    if magic != MAGIC_BYTE {
        return Err(Error::UnknownMagicByte(magic));
    }
    Ok((i32::from_be_bytes(id), payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_bad_input() {
        let bytes = encode(0x0102_0304, b"xy");
        assert_eq!(bytes, [0, 1, 2, 3, 4, b'x', b'y']);
        assert_eq!(decode(&bytes).unwrap(), (0x0102_0304, &b"xy"[..]));
        assert!(matches!(decode(&[0, 0, 0]), Err(Error::ShortPayload(3))));
        assert!(matches!(
            decode(&[1, 0, 0, 0, 1]),
            Err(Error::UnknownMagicByte(1))
        ));
        assert_eq!(decode(&[0, 0, 0, 0, 9]).unwrap(), (9, &b""[..]));
    }

    proptest::proptest! {
        #[test]
        fn wire_format_round_trips(id: i32, payload in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let bytes = encode(id, &payload);
            proptest::prop_assert_eq!(decode(&bytes).unwrap(), (id, &payload[..]));
        }

        #[test]
        fn arbitrary_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..16)) {
            match decode(&bytes) {
                Ok((_, payload)) => proptest::prop_assert_eq!(payload.len() + 5, bytes.len()),
                Err(_) => proptest::prop_assert!(bytes.len() < 5 || bytes[0] != 0),
            }
        }
    }
}
