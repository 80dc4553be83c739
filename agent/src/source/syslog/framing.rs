//! RFC 6587 framing of syslog over TCP: octet counting (`LEN SP MSG`,
//! chosen when a frame starts with a digit) and non-transparent framing
//! (messages ending with a newline), mixed freely on one connection as
//! rsyslog and syslog-ng accept them.
//!
//! [`Framer`] is pure: bytes in as they were read, frames out. It keeps at
//! most one partial frame (never more than the message cap plus its
//! length header), and skips an oversized frame without buffering it:
//! octet-counted frames by their announced length, newline frames up to
//! their newline.

/// Longest octet-count header looked at (`65536 ` is six bytes; more
/// digits than this is not a length).
const MAX_COUNT_DIGITS: usize = 9;

/// What came out of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// One message, without framing.
    Message(&'a [u8]),
    /// A message longer than the cap, skipped.
    Oversize,
    /// A frame that announced a length and then did not follow the format
    /// (`12x...`); skipped up to the next newline.
    Malformed,
}

/// What is being thrown away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Skip {
    /// Nothing.
    Nothing,
    /// This many more bytes of an oversized octet-counted frame.
    Bytes(usize),
    /// Everything up to and including the next newline.
    Line,
}

/// Splits one connection's bytes into frames.
#[derive(Debug)]
pub struct Framer {
    /// The unfinished frame carried over from the previous read.
    partial: Vec<u8>,
    /// Longest message accepted.
    max_message: usize,
    /// What is being skipped.
    skip: Skip,
}

impl Framer {
    /// A framer accepting messages of up to `max_message` bytes.
    pub fn new(max_message: usize) -> Framer {
        Framer {
            partial: Vec::new(),
            max_message,
            skip: Skip::Nothing,
        }
    }

    /// Takes the bytes of one read and calls `emit` for every complete frame.
    pub fn push(&mut self, input: &[u8], emit: &mut dyn FnMut(Frame<'_>)) {
        if self.partial.is_empty() {
            let consumed = self.split(input, emit);
            self.partial.extend_from_slice(&input[consumed..]);
        } else {
            let mut data = std::mem::take(&mut self.partial);
            data.extend_from_slice(input);
            let consumed = self.split(&data, emit);
            data.drain(..consumed);
            self.partial = data;
        }
    }

    /// The connection ended: a last newline frame without its newline is
    /// still a message; a cut octet-counted frame is malformed.
    pub fn finish(&mut self, emit: &mut dyn FnMut(Frame<'_>)) {
        let rest = std::mem::take(&mut self.partial);
        let rest = trim_line_end(&rest);
        if self.skip != Skip::Nothing || rest.is_empty() {
            return;
        }
        if rest[0].is_ascii_digit() {
            emit(Frame::Malformed);
        } else if rest.len() > self.max_message {
            emit(Frame::Oversize);
        } else {
            emit(Frame::Message(rest));
        }
    }

    /// Emits the complete frames of `data`; returns how many bytes were
    /// consumed. What is left is an unfinished frame shorter than the cap.
    fn split(&mut self, data: &[u8], emit: &mut dyn FnMut(Frame<'_>)) -> usize {
        let mut position = 0;
        loop {
            match self.skip {
                Skip::Bytes(count) => {
                    let available = data.len() - position;
                    if available < count {
                        self.skip = Skip::Bytes(count - available);
                        return data.len();
                    }
                    position += count;
                    self.skip = Skip::Nothing;
                }
                Skip::Line => match memchr::memchr(b'\n', &data[position..]) {
                    Some(end) => {
                        position += end + 1;
                        self.skip = Skip::Nothing;
                    }
                    None => return data.len(),
                },
                Skip::Nothing => {}
            }
            // Blank lines between frames are padding.
            while position < data.len() && matches!(data[position], b'\n' | b'\r' | b'\0') {
                position += 1;
            }
            let rest = &data[position..];
            let Some(first) = rest.first() else {
                return position;
            };
            if first.is_ascii_digit() {
                let Some(space) = rest
                    .iter()
                    .take(MAX_COUNT_DIGITS + 1)
                    .position(|b| *b == b' ')
                else {
                    if rest.len() > MAX_COUNT_DIGITS {
                        emit(Frame::Malformed);
                        self.skip = Skip::Line;
                        continue;
                    }
                    return position;
                };
                let length = std::str::from_utf8(&rest[..space])
                    .ok()
                    .and_then(|digits| digits.parse::<usize>().ok());
                let Some(length) = length.filter(|length| *length > 0) else {
                    emit(Frame::Malformed);
                    self.skip = Skip::Line;
                    continue;
                };
                let body = space + 1;
                if length > self.max_message {
                    emit(Frame::Oversize);
                    position += body;
                    self.skip = Skip::Bytes(length);
                    continue;
                }
                if rest.len() < body + length {
                    return position;
                }
                emit(Frame::Message(trim_line_end(&rest[body..body + length])));
                position += body + length;
            } else {
                match memchr::memchr(b'\n', rest) {
                    Some(end) => {
                        let line = trim_line_end(&rest[..end]);
                        if line.len() > self.max_message {
                            emit(Frame::Oversize);
                        } else {
                            emit(Frame::Message(line));
                        }
                        position += end + 1;
                    }
                    None if rest.len() > self.max_message => {
                        emit(Frame::Oversize);
                        self.skip = Skip::Line;
                        return data.len();
                    }
                    None => return position,
                }
            }
        }
    }
}

/// Without trailing `\r`, `\n` and NULs.
pub fn trim_line_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b'\n' | b'\r' | b'\0'))
        .map_or(0, |last| last + 1);
    &bytes[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `reads` one after the other, then ends the stream; returns
    /// the frames as text (`<oversize>`, `<malformed>`).
    fn frames(max: usize, reads: &[&[u8]]) -> Vec<String> {
        let mut framer = Framer::new(max);
        let mut out = Vec::new();
        let mut emit = |frame: Frame<'_>| {
            out.push(match frame {
                Frame::Message(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                Frame::Oversize => "<oversize>".into(),
                Frame::Malformed => "<malformed>".into(),
            })
        };
        for read in reads {
            framer.push(read, &mut emit);
            assert!(framer.partial.len() <= max + MAX_COUNT_DIGITS + 1 + read.len());
        }
        framer.finish(&mut emit);
        out
    }

    #[test]
    fn octet_counting_split_across_reads() {
        let stream = b"11 <13>hello a9 <13>hello5 <13>x";
        let whole = frames(100, &[stream]);
        assert_eq!(whole, vec!["<13>hello a", "<13>hello", "<13>x"]);
        // Every split point, including inside the length header.
        for cut in 0..stream.len() {
            let (first, second) = stream.split_at(cut);
            assert_eq!(frames(100, &[first, second]), whole, "cut at {cut}");
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(frames(100, &bytes), whole);
    }

    #[test]
    fn newline_framing_and_a_last_line_without_newline() {
        assert_eq!(
            frames(100, &[b"<13>one\r\n<13>tw", b"o\n\n<13>three"]),
            vec!["<13>one", "<13>two", "<13>three"]
        );
    }

    #[test]
    fn both_framings_on_one_connection() {
        assert_eq!(
            frames(100, &[b"<13>a\n6 <13>bc<13>d\n"]),
            vec!["<13>a", "<13>bc", "<13>d"]
        );
    }

    #[test]
    fn oversized_frames_are_skipped_and_the_stream_stays_in_sync() {
        let big = "x".repeat(50);
        let counted = format!("54 <13>{big}\n8 <13>next");
        assert_eq!(
            frames(20, &[&counted.as_bytes()[..10], &counted.as_bytes()[10..]]),
            vec!["<oversize>", "<13>next"]
        );
        let line = format!("<13>{big}\n<13>after\n");
        let reads: Vec<&[u8]> = line.as_bytes().chunks(7).collect();
        assert_eq!(frames(20, &reads), vec!["<oversize>", "<13>after"]);
    }

    #[test]
    fn a_bad_length_is_malformed_and_skipped_to_the_next_line() {
        assert_eq!(
            frames(100, &[b"12x <13>bad\n<13>good\n"]),
            vec!["<malformed>", "<13>good"]
        );
        assert_eq!(
            frames(100, &[b"1234567890123 <13>bad\n<13>good\n"]),
            vec!["<malformed>", "<13>good"]
        );
        assert_eq!(
            frames(100, &[b"0 \n<13>good\n"]),
            vec!["<malformed>", "<13>good"]
        );
        // A counted frame cut by the end of the connection.
        assert_eq!(frames(100, &[b"20 <13>short"]), vec!["<malformed>"]);
    }

    #[test]
    fn non_utf8_bytes_pass_through() {
        let mut framer = Framer::new(100);
        let mut out = Vec::new();
        framer.push(b"6 <13>\xff\xfe", &mut |frame| {
            if let Frame::Message(bytes) = frame {
                out.push(bytes.to_vec());
            }
        });
        assert_eq!(out, vec![b"<13>\xff\xfe".to_vec()]);
    }
}
