//! The on-disk formats the broker reads back: offset index, time index, checkpoint files.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fjord_broker::fuzzing::decode_log_files(data);
});
