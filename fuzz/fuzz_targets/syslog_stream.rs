//! Bytes a syslog sender puts on a TCP connection (RFC 6587 octet counting
//! and newline framing, mixed), cut into reads at places the input picks,
//! then every frame through the RFC 3164/5424 header parser, the device
//! parsers and the event builder the listener uses.
#![no_main]

use countywatch_agent::source::syslog::framing::{Frame, Framer};
use countywatch_parse::syslog_message::message_to_event;
use libfuzzer_sys::fuzz_target;

/// The cap the listener uses by default is larger; a small one reaches the
/// oversize paths more often.
const MAX_MESSAGE: usize = 2048;

fuzz_target!(|data: &[u8]| {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut framer = Framer::new(MAX_MESSAGE);
    let mut messages: Vec<Vec<u8>> = Vec::new();
    let mut emit = |frame: Frame<'_>| {
        if let Frame::Message(bytes) = frame {
            assert!(bytes.len() <= MAX_MESSAGE, "a frame over the cap");
            messages.push(bytes.to_vec());
        }
    };
    for read in stream.chunks(step) {
        framer.push(read, &mut emit);
    }
    framer.finish(&mut emit);
    for (index, message) in messages.iter().enumerate() {
        let (event, _) =
            message_to_event(message, "192.0.2.1", 1_764_288_000_000, 1_764_288_000_000);
        // Whatever a sender writes, the event passes the collector's checks.
        assert!(event.validate(index).is_ok(), "{event:?}");
    }
});
