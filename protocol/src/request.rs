//! Decoding request frames and encoding response frames, without I/O.
//!
//! A request frame (after the 4-byte size) is `api_key: i16, api_version: i16,
//! correlation_id: i32, ...header rest, body`. The header's own version depends on the API and
//! its version, so the key and version are read first.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable, VersionRange};

use crate::ErrorCode;
use crate::frame::PREFIX_LEN;

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    /// The API called.
    pub api_key: ApiKey,
    /// The request header (version, correlation id, client id).
    pub header: RequestHeader,
    /// The decoded body.
    pub body: RequestKind,
}

/// Why a request frame cannot be answered normally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Fewer bytes than the fixed start of a request header.
    #[error("request of {len} bytes is too short for a request header")]
    Short { len: usize },
    /// An API key this server does not serve.
    #[error("unknown or unsupported API key {key}")]
    UnknownApi { key: i16 },
    /// A version outside the served range. ApiVersions answers this (KIP-511); other APIs
    /// close the connection.
    #[error("unsupported version {version} of {key:?}")]
    UnsupportedVersion {
        key: ApiKey,
        version: i16,
        correlation_id: i32,
    },
    /// The header or body does not decode at the version given.
    #[error("malformed {key:?} v{version} request: {reason}")]
    Malformed {
        key: ApiKey,
        version: i16,
        reason: String,
    },
}

/// Decodes one request frame. `served` gives the versions served for an API, `None` when the
/// API is not served at all.
pub fn decode_request(
    mut frame: Bytes,
    served: impl Fn(ApiKey) -> Option<VersionRange>,
) -> Result<Request, RequestError> {
    if frame.len() < 8 {
        return Err(RequestError::Short { len: frame.len() });
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key =
        ApiKey::try_from(raw_key).map_err(|_| RequestError::UnknownApi { key: raw_key })?;
    let range = served(api_key).ok_or(RequestError::UnknownApi { key: raw_key })?;
    if version < range.min || version > range.max {
        return Err(RequestError::UnsupportedVersion {
            key: api_key,
            version,
            correlation_id,
        });
    }
    let malformed = |e: &dyn std::fmt::Display| RequestError::Malformed {
        key: api_key,
        version,
        reason: e.to_string(),
    };
    let header = RequestHeader::decode(&mut frame, api_key.request_header_version(version))
        .map_err(|e| malformed(&e))?;
    // Bytes after the body are ignored, as Kafka's parser does.
    let body = RequestKind::decode(api_key, &mut frame, version).map_err(|e| malformed(&e))?;
    Ok(Request {
        api_key,
        header,
        body,
    })
}

/// A response that could not be encoded at the version asked: a server bug (a field set that
/// the version cannot carry), never a client fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not encode the {key:?} v{version} response: {reason}")]
pub struct EncodeError {
    pub key: ApiKey,
    pub version: i16,
    pub reason: String,
}

/// Encodes a whole response frame, size prefix included.
pub fn encode_response(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<BytesMut, EncodeError> {
    let fail = |e: &dyn std::fmt::Display| EncodeError {
        key,
        version,
        reason: e.to_string(),
    };
    let mut out = BytesMut::with_capacity(256);
    out.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, key.response_header_version(version))
        .map_err(|e| fail(&e))?;
    body.encode(&mut out, version).map_err(|e| fail(&e))?;
    let len = (out.len() - PREFIX_LEN) as i32;
    out[..PREFIX_LEN].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

/// The KIP-511 answer to an ApiVersions request of an unknown version: a v0 response with
/// UNSUPPORTED_VERSION and the served APIs, so the client retries with a version it shares.
pub fn unsupported_api_versions(
    correlation_id: i32,
    api_keys: Vec<kafka_protocol::messages::api_versions_response::ApiVersion>,
) -> Result<BytesMut, EncodeError> {
    let body = ApiVersionsResponse::default()
        .with_error_code(ErrorCode::UnsupportedVersion.code())
        .with_api_keys(api_keys);
    encode_response(
        ApiKey::ApiVersions,
        0,
        correlation_id,
        &ResponseKind::ApiVersions(body),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;
    use kafka_protocol::messages::MetadataRequest;
    use proptest::prelude::*;

    fn all(key: ApiKey) -> Option<VersionRange> {
        Some(key.valid_versions())
    }

    fn frame(key: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
        let mut out = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .encode(&mut out, key.request_header_version(version))
            .expect("header");
        body.encode(&mut out, version).expect("body");
        out.freeze()
    }

    #[test]
    fn decodes_a_request_at_old_and_flexible_versions() {
        for version in [1, 12] {
            let request = decode_request(
                frame(ApiKey::Metadata, version, &MetadataRequest::default()),
                all,
            )
            .expect("decodes");
            assert_eq!(request.api_key, ApiKey::Metadata);
            assert_eq!(request.header.correlation_id, 7);
            assert!(matches!(request.body, RequestKind::Metadata(_)));
        }
    }

    #[test]
    fn classifies_bad_frames() {
        assert_eq!(
            decode_request(Bytes::from_static(&[0, 3]), all).unwrap_err(),
            RequestError::Short { len: 2 }
        );
        let unknown = Bytes::from_static(&[0x7f, 0x7f, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            decode_request(unknown, all).unwrap_err(),
            RequestError::UnknownApi { key: 0x7f7f }
        );
        let too_new = Bytes::from_static(&[0, 18, 0, 99, 0, 0, 0, 5]);
        assert_eq!(
            decode_request(too_new, all).unwrap_err(),
            RequestError::UnsupportedVersion {
                key: ApiKey::ApiVersions,
                version: 99,
                correlation_id: 5
            }
        );
        let mut truncated = frame(ApiKey::Metadata, 12, &MetadataRequest::default()).to_vec();
        truncated.truncate(truncated.len() - 1);
        assert!(matches!(
            decode_request(truncated.into(), all),
            Err(RequestError::Malformed { .. })
        ));
    }

    #[test]
    fn unsupported_api_versions_answer_is_v0() {
        let mut out = unsupported_api_versions(9, Vec::new())
            .expect("encodes")
            .freeze();
        out.advance(PREFIX_LEN);
        assert_eq!(out.get_i32(), 9, "correlation id, header v0");
        assert_eq!(out.get_i16(), ErrorCode::UnsupportedVersion.code());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        /// Any frame, valid key and version or not, decodes or is refused: it never panics.
        #[test]
        fn arbitrary_frames_never_panic(key in 0i16..100, version in -1i16..20, body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut bytes = BytesMut::new();
            bytes.put_i16(key);
            bytes.put_i16(version);
            bytes.put_i32(1);
            bytes.extend_from_slice(&body);
            let _ = decode_request(bytes.freeze(), all);
        }
    }
}
