//! Detection rule files (YAML, conditions, field paths, regexes, globs, IP
//! blocks, calendars) through loading and validation.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = countywatch_detect::rulefmt::parse(Path::new("fuzz.yaml"), &text);
});
