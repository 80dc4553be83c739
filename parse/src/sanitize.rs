//! What every event built from attacker-written text goes through before
//! it leaves a parser: control characters escaped, so nothing in an event
//! can drive an analyst's terminal or fake a line break, and string fields
//! cut to the wire's caps on a character boundary.

use std::borrow::Cow;

use countywatch_wire::MAX_FIELD_BYTES;

/// Replaces control characters (ANSI escapes, carriage returns, NULs...)
/// with visible escapes such as `\x1b`, so nothing in an event can drive a
/// terminal or fake a line break when an analyst prints it.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    // Fast path over bytes: C0 controls and DEL are single bytes; C1
    // controls start with 0xC2 and U+2028/U+2029 with 0xE2, so a line
    // without those bytes needs no character-by-character look.
    if !may_hold_controls(text.as_bytes()) || !text.chars().any(is_escaped) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_escaped(c) {
            escaped.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// Whether `bytes` may hold a byte below 0x20 or one of 0x7F, 0xC2, 0xE2.
/// Eight bytes at a time with word arithmetic (fast at any optimisation
/// level); it may answer yes wrongly, never no wrongly.
fn may_hold_controls(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero_byte = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS != 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = <[u8; 8]>::try_from(chunk).map_or(0, u64::from_le_bytes);
        let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0;
        if below_space
            || has_zero_byte(word ^ (ONES * 0x7f))
            || has_zero_byte(word ^ (ONES * 0xc2))
            || has_zero_byte(word ^ (ONES * 0xe2))
        {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|byte| *byte < 0x20 || matches!(*byte, 0x7f | 0xc2 | 0xe2))
}

fn is_escaped(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// The longest prefix of `text` of at most `limit` bytes ending on a
/// character boundary.
pub fn cap(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Cuts every string field to the wire's cap, setting `truncated` when one was cut.
pub fn cap_fields(fields: &mut countywatch_wire::EventFields) {
    for value in [
        &mut fields.user,
        &mut fields.target_user,
        &mut fields.group,
        &mut fields.src_host,
        &mut fields.method,
        &mut fields.tty,
        &mut fields.command,
        &mut fields.cwd,
        &mut fields.service,
        &mut fields.reason,
        &mut fields.key_fingerprint,
        &mut fields.process,
        &mut fields.home,
        &mut fields.shell,
        &mut fields.path,
        &mut fields.device,
        &mut fields.interface,
        &mut fields.app_name,
        &mut fields.msg_id,
        &mut fields.message,
    ]
    .into_iter()
    .flatten()
    {
        if value.len() > MAX_FIELD_BYTES {
            let kept = cap(value, MAX_FIELD_BYTES).len();
            value.truncate(kept);
            fields.truncated = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_byte_scan_never_misses_one() {
        for position in 0..20 {
            for byte in (0u8..0x20).chain([0x7f, 0xc2, 0xe2]) {
                let mut line = vec![b'a'; 20];
                line[position] = byte;
                assert!(may_hold_controls(&line), "{byte:#x} at {position}");
            }
        }
        assert!(!may_hold_controls(
            b"Nov 28 01:00:00 web-01 sshd[1]: Invalid user x"
        ));
        assert_eq!(escape_controls("caf\u{e9} \u{85}x"), "caf\u{e9} \\x85x");
    }
}
