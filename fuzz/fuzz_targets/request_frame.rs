//! Any request frame decodes or is refused; nothing panics. The broker runs this exact code on
//! every frame it reads.
#![no_main]

use fjord_protocol::messages::ApiKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fjord_protocol::request::decode_request(bytes::Bytes::copy_from_slice(data), |key: ApiKey| {
        Some(key.valid_versions())
    });
});
