//! Splitting a byte stream into lines with a cap on line length, so a
//! megabyte "line" (or binary garbage without newlines) costs at most the
//! cap in memory: the first `max_line` bytes are kept and marked truncated,
//! the rest is skipped up to the next newline.

/// Splits bytes into capped lines. It holds no bytes itself: the caller
/// keeps what [`LineSplitter::split`] did not consume and offers it again
/// with more data, which is how the tailer's offset stays exact.
#[derive(Clone, Debug)]
pub struct LineSplitter {
    /// Longest line kept, in bytes.
    max_line: usize,
    /// Whether we are inside an over-long line whose kept part was already
    /// emitted, discarding bytes until its newline.
    pub skipping: bool,
}

impl LineSplitter {
    /// A splitter keeping at most `max_line` bytes of a line (at least 1).
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            max_line: max_line.max(1),
            skipping: false,
        }
    }

    /// Emits every complete line of `data` as `emit(line, truncated)`
    /// without its newline (and without a `\r` before it), and returns how
    /// many bytes were consumed. An incomplete last line is left unconsumed
    /// unless it is already longer than the cap. `emit` returns whether to
    /// go on; when it says stop, the bytes after that line are unconsumed.
    pub fn split(&mut self, data: &[u8], emit: &mut impl FnMut(&[u8], bool) -> bool) -> usize {
        let mut start = 0;
        if self.skipping {
            match memchr::memchr(b'\n', data) {
                Some(index) => {
                    start = index + 1;
                    self.skipping = false;
                }
                None => return data.len(),
            }
        }
        while start < data.len() {
            match memchr::memchr(b'\n', &data[start..]) {
                Some(length) => {
                    let mut line = &data[start..start + length];
                    start += length + 1;
                    if let [rest @ .., b'\r'] = line {
                        line = rest;
                    }
                    let go_on = if line.len() > self.max_line {
                        emit(&line[..self.max_line], true)
                    } else {
                        emit(line, false)
                    };
                    if !go_on {
                        return start;
                    }
                }
                None => {
                    if data.len() - start > self.max_line {
                        emit(&data[start..start + self.max_line], true);
                        self.skipping = true;
                        return data.len();
                    }
                    return start;
                }
            }
        }
        start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(splitter: &mut LineSplitter, data: &[u8]) -> (Vec<(String, bool)>, usize) {
        let mut lines = Vec::new();
        let consumed = splitter.split(data, &mut |line, truncated| {
            lines.push((String::from_utf8_lossy(line).into_owned(), truncated));
            true
        });
        (lines, consumed)
    }

    #[test]
    fn complete_lines_are_emitted_and_partial_ones_left() {
        let mut splitter = LineSplitter::new(100);
        let (lines, consumed) = split_all(&mut splitter, b"one\ntwo\r\nthr");
        assert_eq!(
            lines,
            vec![("one".to_string(), false), ("two".to_string(), false)]
        );
        assert_eq!(consumed, 9);
    }

    #[test]
    fn long_lines_are_cut_and_the_rest_skipped() {
        let mut splitter = LineSplitter::new(4);
        let (lines, consumed) = split_all(&mut splitter, b"abcdefgh\nxy\n");
        assert_eq!(
            lines,
            vec![("abcd".to_string(), true), ("xy".to_string(), false)]
        );
        assert_eq!(consumed, 12);
        // A long line without a newline yet: cut now, skip across calls.
        let (lines, consumed) = split_all(&mut splitter, b"0123456789");
        assert_eq!(lines, vec![("0123".to_string(), true)]);
        assert_eq!(consumed, 10);
        assert!(splitter.skipping);
        let (lines, consumed) = split_all(&mut splitter, b"more garbage");
        assert!(lines.is_empty());
        assert_eq!(consumed, 12);
        let (lines, _) = split_all(&mut splitter, b"end\nok\n");
        assert_eq!(lines, vec![("ok".to_string(), false)]);
    }

    #[test]
    fn emit_can_stop_the_split() {
        let mut splitter = LineSplitter::new(100);
        let mut seen = 0;
        let consumed = splitter.split(b"a\nb\nc\n", &mut |_, _| {
            seen += 1;
            seen < 2
        });
        assert_eq!((seen, consumed), (2, 4));
    }
}
