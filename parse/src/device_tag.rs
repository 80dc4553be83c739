//! The tag network devices write before a message: Cisco/Ruijie
//! `%FACILITY-N-MNEMONIC:`, Huawei/H3C `%%NNMODULE/N/MNEMONIC:`. Both are
//! a module, a severity digit and a mnemonic with a vendor's separator;
//! each vendor's file says how its tag is marked and spelled, and this one
//! finds and splits it.

/// A vendor tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceTag<'a> {
    /// `SEC_LOGIN`, `SSH`, `IFNET`...: Cisco's facility, VRP's module.
    pub module: &'a str,
    /// The severity digit.
    pub severity: u8,
    /// `LOGIN_FAILED`, `SSH_USER_LOGIN_FAIL`, `UPDOWN`...
    pub mnemonic: &'a str,
    /// The vendor's separator: `-` for Cisco, `/` for VRP.
    separator: char,
}

impl DeviceTag<'_> {
    /// The tag as the device wrote it, for the `msg_id` field:
    /// `SYS-5-CONFIG_I`, `SHELL/5/CMDRECORD`.
    pub fn msg_id(&self) -> String {
        let separator = self.separator;
        format!(
            "{}{separator}{}{separator}{}",
            self.module, self.severity, self.mnemonic
        )
    }
}

/// Finds the first `marker` at the start of `text` or after a space where
/// `tag_at` reads a tag from the text after the marker; returns where the
/// marker starts, the tag, and the text after the tag (trimmed). Only the
/// start or a space counts, so a tag inside a word (a user name) does not.
pub fn find<'a>(
    text: &'a str,
    marker: &[u8],
    tag_at: impl Fn(&'a str) -> Option<(DeviceTag<'a>, &'a str)>,
) -> Option<(usize, DeviceTag<'a>, &'a str)> {
    let mut search = 0;
    while let Some(found) = memchr::memmem::find(&text.as_bytes()[search..], marker) {
        let start = search + found;
        search = start + marker.len();
        if start > 0 && text.as_bytes()[start - 1] != b' ' {
            continue;
        }
        if let Some((tag, rest)) = tag_at(&text[start + marker.len()..]) {
            return Some((start, tag, rest.trim()));
        }
    }
    None
}

/// Splits `MODULE<separator>N<separator>MNEMONIC`, where module and
/// mnemonic are non-empty runs of bytes `name_byte` accepts and N is a
/// severity digit 0-7.
pub fn split(head: &str, separator: char, name_byte: impl Fn(u8) -> bool) -> Option<DeviceTag<'_>> {
    let mut parts = head.splitn(3, separator);
    let module = parts.next()?;
    let severity = parts.next()?;
    let mnemonic = parts.next()?;
    let name = |part: &str| !part.is_empty() && part.bytes().all(&name_byte);
    if !name(module) || !name(mnemonic) {
        return None;
    }
    let severity = match severity.as_bytes() {
        [digit @ b'0'..=b'7'] => digit - b'0',
        _ => return None,
    };
    Some(DeviceTag {
        module,
        severity,
        mnemonic,
        separator,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upper(byte: u8) -> bool {
        byte.is_ascii_uppercase() || byte == b'_'
    }

    #[test]
    fn tags_split_and_print_as_written() {
        let tag = split("SYS-5-CONFIG_I", '-', upper).unwrap();
        assert_eq!(
            (tag.module, tag.severity, tag.mnemonic),
            ("SYS", 5, "CONFIG_I")
        );
        assert_eq!(tag.msg_id(), "SYS-5-CONFIG_I");
        for bad in ["SYS-8-X", "SYS-55-X", "-5-X", "SYS-5-", "SYS-5", "sys-5-X"] {
            assert_eq!(split(bad, '-', upper), None, "{bad}");
        }
    }

    #[test]
    fn a_marker_counts_at_the_start_or_after_a_space_only() {
        let tag_at = |text| {
            let (head, rest) = str::split_once(text, ':')?;
            Some((split(head, '-', upper)?, rest))
        };
        assert_eq!(find("%A-1-B: x", b"%", tag_at).map(|f| f.0), Some(0));
        assert_eq!(
            find("u%A-1-B: x %C-2-D: y", b"%", tag_at).map(|f| (f.0, f.2)),
            Some((11, "y"))
        );
        assert_eq!(find("no tag here", b"%", tag_at), None);
    }
}
