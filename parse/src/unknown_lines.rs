//! The lines no parser understood, counted by their shape, so that a
//! county running `countywatch-agent replay` over its own logs can report
//! which formats are missing without sending whole logs. A shape is the
//! program and the first words of the message, with every word holding a
//! digit (addresses, ports, counts, ids) replaced by `<N>`.

use std::collections::BTreeMap;

/// Most distinct shapes kept; later new shapes are counted under
/// [`OTHER_SHAPES`], so a log of random text costs bounded memory.
pub const MAX_SHAPES: usize = 10_000;
/// The shape that counts lines past [`MAX_SHAPES`].
pub const OTHER_SHAPES: &str = "(other shapes)";
/// The shape of lines without a syslog prefix.
pub const NO_PREFIX: &str = "(no syslog prefix)";
/// Words of the message kept in a shape.
const SHAPE_WORDS: usize = 5;
/// Longest sample line kept, in bytes.
const MAX_SAMPLE_BYTES: usize = 300;

/// Not-understood lines by shape, with up to `max_samples` examples each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnknownLines {
    /// Lines and samples by shape.
    pub shapes: BTreeMap<String, UnknownShape>,
    /// Examples kept per shape.
    max_samples: usize,
}

/// One shape's count and examples.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnknownShape {
    /// Lines of this shape.
    pub lines: u64,
    /// The first lines of this shape, cut at 300 bytes.
    pub samples: Vec<String>,
}

impl UnknownLines {
    /// Counts shapes, keeping up to `max_samples` examples of each.
    pub fn new(max_samples: usize) -> UnknownLines {
        UnknownLines {
            shapes: BTreeMap::new(),
            max_samples,
        }
    }

    /// Counts one line: `program` and `message` when it had a syslog
    /// prefix (`None` when not), `line` the whole (escaped) line.
    pub fn record(&mut self, prefix: Option<(&str, &str)>, line: &str) {
        let mut key = match prefix {
            Some((program, message)) => shape(program, message),
            None => NO_PREFIX.to_string(),
        };
        if !self.shapes.contains_key(&key) && self.shapes.len() >= MAX_SHAPES {
            key = OTHER_SHAPES.to_string();
        }
        let entry = self.shapes.entry(key).or_default();
        entry.lines += 1;
        if entry.samples.len() < self.max_samples {
            entry
                .samples
                .push(crate::sanitize::cap(line, MAX_SAMPLE_BYTES).to_string());
        }
    }

    /// Shapes, most lines first (ties by shape).
    pub fn by_count(&self) -> Vec<(&str, &UnknownShape)> {
        let mut shapes: Vec<(&str, &UnknownShape)> = self
            .shapes
            .iter()
            .map(|(shape, found)| (shape.as_str(), found))
            .collect();
        shapes.sort_by(|a, b| b.1.lines.cmp(&a.1.lines).then(a.0.cmp(b.0)));
        shapes
    }
}

/// `program: first words`, digits-holding words as `<N>`.
pub fn shape(program: &str, message: &str) -> String {
    let mut shape = String::with_capacity(64);
    shape.push_str(crate::sanitize::cap(program, 64));
    shape.push(':');
    for word in message.split_whitespace().take(SHAPE_WORDS) {
        shape.push(' ');
        if word.bytes().any(|byte| byte.is_ascii_digit()) {
            shape.push_str("<N>");
        } else {
            shape.push_str(crate::sanitize::cap(word, 32));
        }
    }
    shape
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_hide_numbers_and_keep_the_first_words() {
        assert_eq!(
            shape(
                "sshd",
                "Bad protocol version identification 'GET / HTTP/1.1' from 192.0.2.1 port 5"
            ),
            "sshd: Bad protocol version identification 'GET"
        );
        assert_eq!(
            shape("ntpd", "adjust time server 10.0.0.1 offset 0.01 sec"),
            "ntpd: adjust time server <N> offset"
        );
    }

    #[test]
    fn counts_samples_and_caps_the_shapes() {
        let mut unknown = UnknownLines::new(1);
        unknown.record(Some(("x", "a 1")), "line one");
        unknown.record(Some(("x", "a 2")), "line two");
        unknown.record(None, "garbage");
        let by_count = unknown.by_count();
        assert_eq!(by_count[0].0, "x: a <N>");
        assert_eq!(by_count[0].1.lines, 2);
        assert_eq!(by_count[0].1.samples, vec!["line one".to_string()]);
        assert_eq!(by_count[1].0, NO_PREFIX);
        for index in 0..MAX_SHAPES + 5 {
            unknown.record(Some((&format!("p{index}"), "")), "x");
        }
        assert_eq!(unknown.shapes.len(), MAX_SHAPES + 1);
        assert!(unknown.shapes[OTHER_SHAPES].lines >= 5);
    }
}
