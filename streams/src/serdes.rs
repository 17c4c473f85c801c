//! Serdes: how keys and values turn into bytes and back.
//!
//! A [`Serde`] reads `Option<&[u8]>` (Kafka keys and values may be null) and writes
//! `Option<Bytes>`. The plain serdes refuse null; wrap one in [`Nullable`] to read null as
//! `None`, or use [`Unit`] for keys that are always null.

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::SerdeError;

/// Converts values of `T` to and from record bytes.
pub trait Serde<T>: Send + Sync + 'static {
    /// Bytes for `value` (`None`: a null key or value).
    fn serialize(&self, value: &T) -> Result<Option<Bytes>, SerdeError>;
    /// A value from bytes (`None`: the key or value was null).
    fn deserialize(&self, data: Option<&[u8]>) -> Result<T, SerdeError>;
}

/// A shared serde.
pub type SerdeRef<T> = Arc<dyn Serde<T>>;

/// Constructors for the built-in serdes.
#[derive(Debug, Clone, Copy)]
pub struct Serdes;

impl Serdes {
    /// Raw bytes.
    pub fn bytes() -> SerdeRef<Bytes> {
        Arc::new(BytesSerde)
    }
    /// UTF-8 strings.
    pub fn string() -> SerdeRef<String> {
        Arc::new(StringSerde)
    }
    /// Big-endian 64-bit integers (Kafka's `LongSerializer`).
    pub fn i64() -> SerdeRef<i64> {
        Arc::new(I64Serde)
    }
    /// Big-endian 32-bit integers (Kafka's `IntegerSerializer`).
    pub fn i32() -> SerdeRef<i32> {
        Arc::new(I32Serde)
    }
    /// Big-endian IEEE 754 doubles (Kafka's `DoubleSerializer`).
    pub fn f64() -> SerdeRef<f64> {
        Arc::new(F64Serde)
    }
    /// JSON through serde.
    pub fn json<T>() -> SerdeRef<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        Arc::new(JsonSerde(PhantomData))
    }
    /// Always null (for keyless records).
    pub fn unit() -> SerdeRef<()> {
        Arc::new(Unit)
    }
    /// `inner`, with null read as `None` and `None` written as null.
    pub fn nullable<T: 'static>(inner: SerdeRef<T>) -> SerdeRef<Option<T>> {
        Arc::new(Nullable(inner))
    }
}

fn need<'a>(data: Option<&'a [u8]>, expected: &'static str) -> Result<&'a [u8], SerdeError> {
    data.ok_or(SerdeError::Null { expected })
}

fn fixed<const N: usize>(
    data: Option<&[u8]>,
    expected: &'static str,
) -> Result<[u8; N], SerdeError> {
    let data = need(data, expected)?;
    data.try_into().map_err(|_| SerdeError::Length {
        expected,
        len: data.len(),
        needs: N,
    })
}

/// Raw bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerde;

impl Serde<Bytes> for BytesSerde {
    fn serialize(&self, value: &Bytes) -> Result<Option<Bytes>, SerdeError> {
        Ok(Some(value.clone()))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<Bytes, SerdeError> {
        Ok(Bytes::copy_from_slice(need(data, "bytes")?))
    }
}

/// UTF-8 strings.
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerde;

impl Serde<String> for StringSerde {
    fn serialize(&self, value: &String) -> Result<Option<Bytes>, SerdeError> {
        Ok(Some(Bytes::copy_from_slice(value.as_bytes())))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<String, SerdeError> {
        let text = std::str::from_utf8(need(data, "string")?).map_err(SerdeError::Utf8)?;
        Ok(text.to_string())
    }
}

/// Big-endian `i64`.
#[derive(Debug, Clone, Copy, Default)]
pub struct I64Serde;

impl Serde<i64> for I64Serde {
    fn serialize(&self, value: &i64) -> Result<Option<Bytes>, SerdeError> {
        Ok(Some(Bytes::copy_from_slice(&value.to_be_bytes())))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<i64, SerdeError> {
        Ok(i64::from_be_bytes(fixed(data, "i64")?))
    }
}

/// Big-endian `i32`.
#[derive(Debug, Clone, Copy, Default)]
pub struct I32Serde;

impl Serde<i32> for I32Serde {
    fn serialize(&self, value: &i32) -> Result<Option<Bytes>, SerdeError> {
        Ok(Some(Bytes::copy_from_slice(&value.to_be_bytes())))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<i32, SerdeError> {
        Ok(i32::from_be_bytes(fixed(data, "i32")?))
    }
}

/// Big-endian `f64`.
#[derive(Debug, Clone, Copy, Default)]
pub struct F64Serde;

impl Serde<f64> for F64Serde {
    fn serialize(&self, value: &f64) -> Result<Option<Bytes>, SerdeError> {
        Ok(Some(Bytes::copy_from_slice(&value.to_be_bytes())))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<f64, SerdeError> {
        Ok(f64::from_be_bytes(fixed(data, "f64")?))
    }
}

/// JSON through serde.
pub struct JsonSerde<T>(PhantomData<fn() -> T>);

impl<T> std::fmt::Debug for JsonSerde<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonSerde")
    }
}

impl<T> Serde<T> for JsonSerde<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    fn serialize(&self, value: &T) -> Result<Option<Bytes>, SerdeError> {
        serde_json::to_vec(value)
            .map(|v| Some(Bytes::from(v)))
            .map_err(SerdeError::Json)
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<T, SerdeError> {
        serde_json::from_slice(need(data, "JSON document")?).map_err(SerdeError::Json)
    }
}

/// Always null.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unit;

impl Serde<()> for Unit {
    fn serialize(&self, _: &()) -> Result<Option<Bytes>, SerdeError> {
        Ok(None)
    }
    fn deserialize(&self, _: Option<&[u8]>) -> Result<(), SerdeError> {
        Ok(())
    }
}

/// Null as `None`.
pub struct Nullable<T>(SerdeRef<T>);

impl<T> std::fmt::Debug for Nullable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nullable")
    }
}

impl<T: 'static> Serde<Option<T>> for Nullable<T> {
    fn serialize(&self, value: &Option<T>) -> Result<Option<Bytes>, SerdeError> {
        match value {
            Some(v) => self.0.serialize(v),
            None => Ok(None),
        }
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<Option<T>, SerdeError> {
        match data {
            Some(_) => self.0.deserialize(data).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_big_endian_like_kafkas_serializers() {
        let bytes = Serdes::i64().serialize(&258).unwrap().unwrap();
        assert_eq!(&bytes[..], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(Serdes::i64().deserialize(Some(&bytes)).unwrap(), 258);
        let err = Serdes::i32().deserialize(Some(&[1, 2])).unwrap_err();
        assert!(
            matches!(
                err,
                SerdeError::Length {
                    len: 2,
                    needs: 4,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn null_is_refused_unless_nullable() {
        assert!(Serdes::string().deserialize(None).is_err());
        let nullable = Serdes::nullable(Serdes::string());
        assert_eq!(nullable.deserialize(None).unwrap(), None);
        assert_eq!(nullable.deserialize(Some(b"a")).unwrap(), Some("a".into()));
        assert_eq!(nullable.serialize(&None).unwrap(), None);
    }

    #[test]
    fn json_round_trips() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Click {
            user: String,
            page: u32,
        }
        let serde = Serdes::json::<Click>();
        let click = Click {
            user: "u".into(),
            page: 3,
        };
        let bytes = serde.serialize(&click).unwrap();
        assert_eq!(serde.deserialize(bytes.as_deref()).unwrap(), click);
        assert!(serde.deserialize(Some(b"{")).is_err());
    }
}
