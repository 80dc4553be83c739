//! The collector's ingest body decoder, raw and gzip: never a panic, never
//! more than the decompression cap (gzip bombs are refused).
#![no_main]

use std::io::Write;

use countywatch_wire::decode_batch;
use libfuzzer_sys::fuzz_target;

const CAP: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let _ = decode_batch(data, None, CAP);
    let _ = decode_batch(data, Some("gzip"), CAP);
    // The same bytes as a valid gzip stream, so the JSON decoder behind
    // the decompressor is reached too.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    if encoder.write_all(data).is_ok()
        && let Ok(gzipped) = encoder.finish()
    {
        let _ = decode_batch(&gzipped, Some("gzip"), CAP);
    }
});
