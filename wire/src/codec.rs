//! Encoding a batch for the request body, and decoding it defensively.
//!
//! The collector decodes bodies from the network, so decoding caps the
//! decompressed size (a gzip bomb is refused, not inflated) and never panics.

use std::io::Read;

use flate2::read::GzDecoder;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};

use crate::batch::{Batch, BatchError};

/// Where agents POST batches.
pub const INGEST_PATH: &str = "/v1/batches";

/// The `Content-Encoding` value of a compressed body.
pub const CONTENT_ENCODING_GZIP: &str = "gzip";

/// Why a request body could not be turned into a batch.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body's content encoding is not one we speak.
    #[error("unsupported content encoding {0:?}")]
    Encoding(String),
    /// The body inflates past the cap.
    #[error("decompressed body exceeds {0} bytes")]
    TooLarge(usize),
    /// The gzip stream is corrupt or truncated.
    #[error("corrupt gzip body: {0}")]
    Gzip(std::io::Error),
    /// The JSON does not describe a batch.
    #[error("invalid batch JSON: {0}")]
    Json(serde_json::Error),
    /// The caller's budget for decompressed bytes refused room for this
    /// many bytes of buffer (see [`decode_batch_within`]).
    #[error("no room to decompress {0} bytes now")]
    NoRoom(usize),
    /// The batch is well-formed but breaks a rule.
    #[error("invalid batch: {0}")]
    Invalid(#[from] BatchError),
}

impl DecodeError {
    /// Whether the error is about size, which HTTP answers with 413.
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            DecodeError::TooLarge(_) | DecodeError::Invalid(BatchError::TooLarge(_))
        )
    }
}

/// Serialises and gzips a batch for the request body.
///
/// An agent encodes one batch a second, so the buffers are kept between
/// calls ([`EncoderState`]): building a fresh deflate state (about 300 KB,
/// zeroed) and growing the JSON buffer from nothing were a fifth of the
/// encoding's CPU (docs/benchmarks.md, agent_footprint). At most one state
/// is kept, however many threads encode; a thread that finds it taken
/// builds its own for that call.
pub fn encode_batch(batch: &Batch) -> Vec<u8> {
    let mut state = ENCODER
        .lock()
        .ok()
        .and_then(|mut kept| kept.take())
        .unwrap_or_default();
    let body = state.encode(batch);
    if let Ok(mut kept) = ENCODER.lock()
        && kept.is_none()
    {
        *kept = Some(state);
    }
    body
}

/// The encoder state kept between [`encode_batch`] calls.
static ENCODER: std::sync::Mutex<Option<EncoderState>> = std::sync::Mutex::new(None);

/// Buffers reused from one batch to the next.
struct EncoderState {
    /// The raw deflate compressor, reset before each batch.
    deflate: Compress,
    /// The JSON text of the last batch; keeps its capacity.
    json: Vec<u8>,
    /// The size of the last body, the first guess for the next one.
    last_body: usize,
}

impl Default for EncoderState {
    fn default() -> Self {
        EncoderState {
            // Raw deflate: the gzip header and trailer are written here.
            deflate: Compress::new(Compression::fast(), false),
            json: Vec::new(),
            last_body: 0,
        }
    }
}

/// A gzip member header: deflate, no name, no time, unknown OS (RFC 1952).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

impl EncoderState {
    /// One batch's gzip body; empty if the deflater fails, which it cannot
    /// on a buffer in memory (the caller sends nothing rather than panic).
    fn encode(&mut self, batch: &Batch) -> Vec<u8> {
        // Serialise first and compress in one call: serde_json writes in
        // tiny pieces, and feeding those to the deflater one by one is
        // ~20x slower. Serialising these types cannot fail (no maps with
        // non-string keys), and writing into a Vec cannot either.
        self.json.clear();
        if serde_json::to_writer(&mut self.json, batch).is_err() {
            return Vec::new();
        }
        let mut crc = Crc::new();
        crc.update(&self.json);
        let mut body =
            Vec::with_capacity(GZIP_HEADER.len() + self.last_body.max(self.json.len() / 4) + 8);
        body.extend_from_slice(&GZIP_HEADER);
        self.deflate.reset();
        loop {
            let consumed = usize::try_from(self.deflate.total_in()).unwrap_or(usize::MAX);
            let Some(rest) = self.json.get(consumed..) else {
                return Vec::new();
            };
            match self
                .deflate
                .compress_vec(rest, &mut body, FlushCompress::Finish)
            {
                Ok(Status::StreamEnd) => break,
                Ok(Status::Ok | Status::BufError) => body.reserve(body.capacity().max(4096)),
                Err(_) => return Vec::new(),
            }
        }
        body.extend_from_slice(&crc.sum().to_le_bytes());
        body.extend_from_slice(&crc.amount().to_le_bytes());
        self.last_body = body.len();
        body
    }
}

/// Decodes and validates a request body. `content_encoding` is the header
/// value (`None` for identity); `max_decompressed` caps the inflated size.
pub fn decode_batch(
    body: &[u8],
    content_encoding: Option<&str>,
    max_decompressed: usize,
) -> Result<Batch, DecodeError> {
    decode_batch_within(body, content_encoding, max_decompressed, &mut |_| true)
}

/// [`decode_batch`], asking `reserve` for every byte of the buffer the body
/// inflates into before that buffer grows: first the size the gzip trailer
/// claims (a hint only: the sender wrote it), then, if the body inflates
/// past that, the rest up to the cap. When
/// `reserve` refuses, decoding stops with [`DecodeError::NoRoom`] and what
/// was inflated is freed; what `reserve` granted is the caller's to release.
/// The sum granted is at least the buffer's largest size.
pub fn decode_batch_within(
    body: &[u8],
    content_encoding: Option<&str>,
    max_decompressed: usize,
    reserve: &mut dyn FnMut(usize) -> bool,
) -> Result<Batch, DecodeError> {
    let json = match content_encoding.map(str::trim) {
        None | Some("") | Some("identity") => {
            if body.len() > max_decompressed {
                return Err(DecodeError::TooLarge(max_decompressed));
            }
            if !reserve(body.len()) {
                return Err(DecodeError::NoRoom(body.len()));
            }
            body.to_vec()
        }
        Some(encoding) if encoding.eq_ignore_ascii_case(CONTENT_ENCODING_GZIP) => {
            inflate(body, max_decompressed, reserve)?
        }
        Some(other) => return Err(DecodeError::Encoding(other.to_string())),
    };
    let batch: Batch = serde_json::from_slice(&json).map_err(DecodeError::Json)?;
    batch.validate()?;
    Ok(batch)
}

/// The smallest first reservation (a body whose trailer claims nothing
/// still gets a useful buffer) and the size of each read from the decoder.
const MIN_GROWTH: usize = 64 * 1024;

/// Inflates a gzip body into a buffer whose every byte `reserve` granted,
/// reading one byte past the cap to tell "exactly at the cap" from "over".
fn inflate(
    body: &[u8],
    max_decompressed: usize,
    reserve: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<u8>, DecodeError> {
    let limit = max_decompressed.saturating_add(1);
    // ISIZE, the last four bytes: the uncompressed size modulo 2^32 as the
    // sender claims it. An honest agent's claim is exact, so its batch
    // takes one reservation and one allocation.
    let claimed = body
        .len()
        .checked_sub(4)
        .and_then(|start| body.get(start..))
        .and_then(|tail| <[u8; 4]>::try_from(tail).ok())
        .map_or(0, |tail| u32::from_le_bytes(tail) as usize);
    let mut granted = claimed.clamp(MIN_GROWTH.min(limit), limit);
    if !reserve(granted) {
        return Err(DecodeError::NoRoom(granted));
    }
    let mut inflated: Vec<u8> = Vec::with_capacity(granted);
    let mut decoder = GzDecoder::new(body).take(limit as u64);
    let mut chunk = vec![0u8; MIN_GROWTH];
    loop {
        let read = decoder.read(&mut chunk).map_err(DecodeError::Gzip)?;
        if read == 0 {
            break;
        }
        if inflated.len() + read > granted {
            // The trailer lied (or the body is several gzip members): take
            // room up to the cap at once rather than doubling. Small
            // doubling steps would each be a separate allocation, which
            // the allocator keeps resident after it is freed; one buffer
            // of the cap's size is mapped on its own and returned whole.
            if !reserve(limit - granted) {
                return Err(DecodeError::NoRoom(limit));
            }
            granted = limit;
            inflated.reserve_exact(granted - inflated.len());
        }
        inflated.extend_from_slice(&chunk[..read]);
    }
    if inflated.len() > max_decompressed {
        return Err(DecodeError::TooLarge(max_decompressed));
    }
    Ok(inflated)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;

    use super::*;
    use crate::batch::WIRE_VERSION;
    use crate::metric::{MetricFamily, MetricKind};

    fn batch() -> Batch {
        Batch {
            version: WIRE_VERSION,
            agent: "a".to_string(),
            seq: 7,
            collected_at_ms: 1,
            metrics: vec![MetricFamily::single("up", "h", MetricKind::Gauge, 1.0)],
            events: Vec::new(),
        }
    }

    #[test]
    fn round_trip() {
        let body = encode_batch(&batch());
        let decoded = decode_batch(&body, Some("gzip"), 1 << 20).unwrap();
        assert_eq!(decoded, batch());
    }

    #[test]
    fn a_kept_encoder_encodes_each_batch_of_any_size_on_its_own() {
        // Small, large (past the first guess of the body's size, and
        // barely compressible), then small again: the state kept between
        // calls must not leak one batch into the next.
        let mut large = batch();
        large.seq = 8;
        let mut family = MetricFamily::new("big", "h", MetricKind::Gauge);
        let mut noise = 0x2545_f491_u64;
        for index in 0..20_000 {
            noise ^= noise << 13;
            noise ^= noise >> 7;
            noise ^= noise << 17;
            family.push(&[("i", &format!("{index}-{noise:x}"))], f64::from(index));
        }
        large.metrics.push(family);
        for expected in [batch(), large, batch()] {
            let body = encode_batch(&expected);
            let mut json = Vec::new();
            // Any gzip reader takes the body, not only ours.
            GzDecoder::new(body.as_slice())
                .read_to_end(&mut json)
                .unwrap();
            let read = serde_json::from_slice::<Batch>(&json).unwrap();
            assert!(
                read == expected,
                "batch {} changed on the way",
                expected.seq
            );
            let decoded = decode_batch(&body, Some("gzip"), 1 << 24).unwrap();
            assert!(decoded == expected, "batch {} decoded wrong", expected.seq);
        }
    }

    #[test]
    fn gzip_bomb_is_refused_by_the_cap() {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![b' '; 1 << 20];
        for _ in 0..64 {
            encoder.write_all(&zeros).unwrap();
        }
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 1 << 20, "bomb should be small: {}", bomb.len());
        let error = decode_batch(&bomb, Some("gzip"), 8 << 20).unwrap_err();
        assert!(error.is_too_large(), "{error}");
    }

    /// Every byte the buffer holds was granted first, whatever the trailer
    /// claims, and a refusal stops the inflation.
    #[test]
    fn the_buffer_never_outgrows_what_was_granted() {
        let mut padded = serde_json::to_vec(&batch()).unwrap();
        padded.extend(std::iter::repeat_n(b' ', 3 << 20));
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&padded).unwrap();
        let honest = encoder.finish().unwrap();
        // A second, empty gzip member after the first: the decoder reads
        // only the first, but the trailer at the end now claims 0 bytes.
        let mut lying = honest.clone();
        lying.extend(
            GzEncoder::new(Vec::new(), Compression::best())
                .finish()
                .unwrap(),
        );
        for body in [&honest, &lying] {
            let mut granted = 0;
            let decoded = decode_batch_within(body, Some("gzip"), 4 << 20, &mut |bytes| {
                granted += bytes;
                true
            })
            .unwrap();
            assert_eq!(decoded, batch());
            assert!(granted >= padded.len(), "{granted}");
            assert!(granted <= (4 << 20) + 1, "{granted}");
            let mut budget = 1 << 20;
            let error = decode_batch_within(body, Some("gzip"), 4 << 20, &mut |bytes| {
                let room = bytes <= budget;
                budget = budget.saturating_sub(bytes);
                room
            })
            .unwrap_err();
            assert!(matches!(error, DecodeError::NoRoom(_)), "{error}");
        }
        let mut asked = Vec::new();
        decode_batch_within(&honest, Some("gzip"), 4 << 20, &mut |bytes| {
            asked.push(bytes);
            true
        })
        .unwrap();
        assert_eq!(
            asked,
            [padded.len()],
            "an honest trailer is one reservation"
        );
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let error = decode_batch(b"\x1f\x8bgarbage", Some("gzip"), 1 << 20).unwrap_err();
        assert!(matches!(error, DecodeError::Gzip(_)), "{error}");
        let error = decode_batch(b"{\"version\":1", None, 1 << 20).unwrap_err();
        assert!(matches!(error, DecodeError::Json(_)), "{error}");
        let error = decode_batch(b"{}", Some("br"), 1 << 20).unwrap_err();
        assert_eq!(error.to_string(), "unsupported content encoding \"br\"");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let error = decode_batch(
            br#"{"version":1,"agent":"a","seq":1,"collected_at_ms":0,"extra":1}"#,
            None,
            1 << 20,
        )
        .unwrap_err();
        assert!(error.to_string().contains("extra"), "{error}");
    }
}
