//! Authentication log lines, as an attacker can shape them through a user
//! name or a client version string, through every auth parser.
#![no_main]

use countywatch_parse::auth_line::LineParser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parser = LineParser::default();
    let mut events = Vec::new();
    for line in text.split('\n') {
        parser.parse_line(line, false, 1_764_288_000_000, &mut events);
    }
    for (index, event) in events.iter().enumerate() {
        // Whatever was parsed must pass the collector's own validation.
        assert!(event.validate(index).is_ok(), "{event:?}");
    }
});
