//! Gorilla-compressed sample chunks (Facebook's Gorilla paper, as
//! Prometheus's XOR chunks): timestamps as delta-of-delta in variable-width
//! bit fields, values XORed with the previous one with leading and
//! trailing zeros elided. Regular scrapes of a steady gauge cost about two
//! bits a sample; a counter rising by a constant a few bytes at most.
//!
//! A chunk is appended to in place (it stays compressed while open) and
//! read by decoding from its start; series keep chunks of
//! [`SAMPLES_PER_CHUNK`] samples so that a read decodes little.

use super::Millis;

/// Samples per chunk before a new one is started (Prometheus uses 120).
pub const SAMPLES_PER_CHUNK: u16 = 120;

/// One chunk of a series' samples.
#[derive(Clone, Debug, Default)]
pub struct Chunk {
    /// The bit stream.
    bytes: Vec<u8>,
    /// Bits used in the last byte (0 means a new byte is needed).
    bit_in_byte: u8,
    /// Samples in the chunk.
    count: u16,
    /// First sample's timestamp.
    first_t: Millis,
    /// Last sample's timestamp and value, for appends and quick reads.
    last_t: Millis,
    last_value: f64,
    /// Last timestamp delta, for the next delta-of-delta.
    last_delta: Millis,
    /// Leading and trailing zeros of the last XOR written with a new window
    /// (`leading == 0xff` before the first).
    leading: u8,
    trailing: u8,
}

impl Chunk {
    /// An empty chunk.
    pub fn new() -> Chunk {
        Chunk {
            leading: 0xff,
            ..Chunk::default()
        }
    }

    /// Samples held.
    pub fn len(&self) -> u16 {
        self.count
    }

    /// Whether the chunk holds nothing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether the chunk is full.
    pub fn is_full(&self) -> bool {
        self.count >= SAMPLES_PER_CHUNK
    }

    /// First and last timestamps.
    pub fn bounds(&self) -> (Millis, Millis) {
        (self.first_t, self.last_t)
    }

    /// The newest sample.
    pub fn last(&self) -> Option<(Millis, f64)> {
        (self.count > 0).then_some((self.last_t, self.last_value))
    }

    /// Bytes used by the bit stream.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Releases spare capacity once the chunk is full.
    pub fn seal(&mut self) {
        self.bytes.shrink_to_fit();
    }

    /// Appends a sample; `t` must be after the last one.
    pub fn push(&mut self, t: Millis, value: f64) {
        match self.count {
            0 => {
                self.write_bits(t as u64, 64);
                self.write_bits(value.to_bits(), 64);
                self.first_t = t;
            }
            _ => {
                let delta = t.wrapping_sub(self.last_t);
                let delta_of_delta = delta.wrapping_sub(self.last_delta);
                self.write_timestamp(delta_of_delta);
                self.write_value(value);
                self.last_delta = delta;
            }
        }
        self.last_t = t;
        self.last_value = value;
        self.count += 1;
    }

    /// Every sample, in order.
    pub fn iter(&self) -> ChunkIter<'_> {
        ChunkIter {
            chunk: self,
            reader: BitReader {
                bytes: &self.bytes,
                position: 0,
            },
            read: 0,
            t: 0,
            delta: 0,
            value_bits: 0,
            leading: 0,
            trailing: 0,
        }
    }

    fn write_timestamp(&mut self, delta_of_delta: Millis) {
        // Buckets as Prometheus's XOR chunk: 0, 14, 17, 20 bits, or 64.
        if delta_of_delta == 0 {
            self.write_bits(0, 1);
        } else if fits(delta_of_delta, 14) {
            self.write_bits(0b10, 2);
            self.write_bits(delta_of_delta as u64, 14);
        } else if fits(delta_of_delta, 17) {
            self.write_bits(0b110, 3);
            self.write_bits(delta_of_delta as u64, 17);
        } else if fits(delta_of_delta, 20) {
            self.write_bits(0b1110, 4);
            self.write_bits(delta_of_delta as u64, 20);
        } else {
            self.write_bits(0b1111, 4);
            self.write_bits(delta_of_delta as u64, 64);
        }
    }

    fn write_value(&mut self, value: f64) {
        let xor = value.to_bits() ^ self.last_value.to_bits();
        if xor == 0 {
            self.write_bits(0, 1);
            return;
        }
        self.write_bits(1, 1);
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            // The XOR fits in the previous window.
            self.write_bits(0, 1);
            let width = 64 - self.leading - self.trailing;
            self.write_bits(xor >> self.trailing, width);
        } else {
            self.leading = leading;
            self.trailing = trailing;
            let width = 64 - leading - trailing;
            self.write_bits(1, 1);
            self.write_bits(u64::from(leading), 5);
            // A width of 64 is written as 0: six bits hold 0 to 63.
            self.write_bits(u64::from(width & 63), 6);
            self.write_bits(xor >> trailing, width);
        }
    }

    /// Writes the low `width` bits of `value`, most significant first.
    fn write_bits(&mut self, value: u64, width: u8) {
        let mut remaining = width;
        while remaining > 0 {
            if self.bit_in_byte == 0 {
                self.bytes.push(0);
            }
            let free = 8 - self.bit_in_byte;
            let take = free.min(remaining);
            let shift = remaining - take;
            let bits = ((value >> shift) & ((1_u64 << take) - 1)) as u8;
            if let Some(last) = self.bytes.last_mut() {
                *last |= bits << (free - take);
            }
            self.bit_in_byte = (self.bit_in_byte + take) % 8;
            remaining -= take;
        }
    }
}

/// Whether `value` fits a signed field of `bits` bits.
fn fits(value: Millis, bits: u32) -> bool {
    let limit = 1_i64 << (bits - 1);
    -limit <= value && value < limit
}

/// Reads bits most significant first.
struct BitReader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl BitReader<'_> {
    /// Reads `width` (1 to 64) bits, most significant first; past the end
    /// reads zeros. One unaligned 8-byte load per call instead of a loop
    /// per byte: decoding is most of what range selectors cost.
    #[inline]
    fn read(&mut self, width: u8) -> u64 {
        let width = u32::from(width);
        let offset = (self.position % 8) as u32;
        if width == 0 {
            return 0;
        }
        if width + offset > 64 {
            // Only 58- to 64-bit reads at an unaligned position get here.
            let high = self.read(32);
            let low = self.read((width - 32) as u8);
            return (high << (width - 32)) | low;
        }
        let window = self.window(self.position / 8);
        self.position += width as usize;
        (window << offset) >> (64 - width)
    }

    /// The next `width` (1 to 57) bits without consuming them.
    #[inline]
    fn peek(&self, width: u32) -> u64 {
        let offset = (self.position % 8) as u32;
        (self.window(self.position / 8) << offset) >> (64 - width)
    }

    /// Consumes `width` bits already looked at with [`BitReader::peek`].
    #[inline]
    fn skip(&mut self, width: u32) {
        self.position += width as usize;
    }

    /// The 8 bytes from `index`, big-endian, zero-padded past the end.
    #[inline]
    fn window(&self, index: usize) -> u64 {
        match self.bytes.get(index..index + 8) {
            Some(eight) => {
                let mut word = [0_u8; 8];
                word.copy_from_slice(eight);
                u64::from_be_bytes(word)
            }
            None => {
                let mut word = [0_u8; 8];
                let tail = self.bytes.get(index..).unwrap_or(&[]);
                word[..tail.len()].copy_from_slice(tail);
                u64::from_be_bytes(word)
            }
        }
    }

    #[inline]
    fn read_signed(&mut self, width: u8) -> Millis {
        let raw = self.read(width);
        // Sign-extend the field.
        let shift = 64 - u32::from(width);
        ((raw << shift) as i64) >> shift
    }
}

/// Decodes a chunk's samples in order.
pub struct ChunkIter<'a> {
    chunk: &'a Chunk,
    reader: BitReader<'a>,
    read: u16,
    t: Millis,
    delta: Millis,
    value_bits: u64,
    leading: u8,
    trailing: u8,
}

impl Iterator for ChunkIter<'_> {
    type Item = (Millis, f64);

    fn next(&mut self) -> Option<(Millis, f64)> {
        if self.read >= self.chunk.count {
            return None;
        }
        if self.read == 0 {
            self.t = self.reader.read(64) as i64;
            self.value_bits = self.reader.read(64);
        } else {
            // The delta-of-delta's prefix (0, 10, 110, 1110, 1111) and the
            // value's control bits are looked at together, not bit by bit.
            let prefix = self.reader.peek(4);
            let delta_of_delta = if prefix & 0b1000 == 0 {
                self.reader.skip(1);
                0
            } else if prefix & 0b0100 == 0 {
                self.reader.skip(2);
                self.reader.read_signed(14)
            } else if prefix & 0b0010 == 0 {
                self.reader.skip(3);
                self.reader.read_signed(17)
            } else if prefix & 0b0001 == 0 {
                self.reader.skip(4);
                self.reader.read_signed(20)
            } else {
                self.reader.skip(4);
                self.reader.read(64) as i64
            };
            self.delta = self.delta.wrapping_add(delta_of_delta);
            self.t = self.t.wrapping_add(self.delta);
            let control = self.reader.peek(2);
            if control & 0b10 == 0 {
                self.reader.skip(1);
            } else {
                self.reader.skip(2);
                if control & 0b01 == 1 {
                    self.leading = self.reader.read(5) as u8;
                    let width = self.reader.read(6) as u8;
                    let width = if width == 0 { 64 } else { width };
                    self.trailing = 64 - self.leading - width;
                }
                let width = 64 - self.leading - self.trailing;
                let xor = self.reader.read(width) << self.trailing;
                self.value_bits ^= xor;
            }
        }
        self.read += 1;
        Some((self.t, f64::from_bits(self.value_bits)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(samples: &[(Millis, f64)]) -> usize {
        let mut chunk = Chunk::new();
        for (t, v) in samples {
            chunk.push(*t, *v);
        }
        let decoded: Vec<(Millis, f64)> = chunk.iter().collect();
        assert_eq!(decoded.len(), samples.len());
        for (got, want) in decoded.iter().zip(samples) {
            assert_eq!(got.0, want.0);
            assert_eq!(got.1.to_bits(), want.1.to_bits(), "at {}", want.0);
        }
        chunk.byte_len()
    }

    #[test]
    fn regular_samples_compress_well() {
        let steady: Vec<(Millis, f64)> = (0..120).map(|i| (i * 15_000, 42.0)).collect();
        assert!(round_trip(&steady) <= 50, "{}", round_trip(&steady));
        let counter: Vec<(Millis, f64)> = (0..120).map(|i| (i * 15_000, i as f64 * 13.5)).collect();
        assert!(round_trip(&counter) <= 240, "{}", round_trip(&counter));
    }

    #[test]
    fn awkward_values_and_times_round_trip_exactly() {
        let values = [
            0.0,
            -0.0,
            f64::NAN,
            f64::from_bits(0x7ff0_0000_0000_0002),
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::MAX,
            -1e-300,
            1.0,
            1.0 + f64::EPSILON,
        ];
        let mut samples = Vec::new();
        let mut t: Millis = -5_000_000_000_000;
        let mut state: u64 = 7;
        for index in 0..400 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            t += match index % 5 {
                0 => 15_000,
                1 => 1,
                2 => (state % 1_000_000) as i64 + 1,
                3 => (state % 10_000_000_000) as i64 + 1,
                _ => 15_000,
            };
            let value = if index % 3 == 0 {
                values[index % values.len()]
            } else {
                f64::from_bits(state)
            };
            samples.push((t, value));
        }
        round_trip(&samples);
        round_trip(&samples[..1]);
        round_trip(&[]);
    }
}
