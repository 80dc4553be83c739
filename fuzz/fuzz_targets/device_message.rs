//! One received syslog message through the header parser (RFC 3164, RFC
//! 5424, vendor variants) and the Cisco/Ruijie, Huawei and H3C message
//! parsers, directly, so the fuzzer does not spend its time on framing.
#![no_main]

use countywatch_parse::{parse_device, syslog_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let header = syslog_header::parse(&text, 2026);
    let _ = parse_device(header.after_pri);
    let _ = parse_device(&text);
});
