//! Batch validation and the header walk over arbitrary bytes: the produce path's checks.
#![no_main]

use fjord_protocol::batch::{Batches, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = validate(data);
    for item in Batches::new(data) {
        if let Ok((_, range)) = item {
            let _ = validate(&data[range]);
        }
    }
});
