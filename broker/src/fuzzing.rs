//! Entry points for the cargo-fuzz targets in `fuzz/`: the decoders of on-disk files that
//! recovery trusts only after validating. Not a public API.

/// Feeds arbitrary bytes to every on-disk format decoder.
pub fn decode_log_files(data: &[u8]) {
    crate::log::fuzz_decoders(data);
}
