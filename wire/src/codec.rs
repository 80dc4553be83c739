//! Encoding a batch for the request body, and decoding it defensively.
//!
//! The collector decodes bodies from the network, so decoding caps the
//! decompressed size (a gzip bomb is refused, not inflated) and never panics.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

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
pub fn encode_batch(batch: &Batch) -> Vec<u8> {
    // Serialise first and compress in one write: serde_json writes in tiny
    // pieces, and feeding those to the deflater one by one is ~20x slower.
    // Serialising these types cannot fail (no maps with non-string keys),
    // and writing into a Vec cannot either; both still avoid a panic.
    let Ok(json) = serde_json::to_vec(batch) else {
        return Vec::new();
    };
    let mut encoder = GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::fast());
    if encoder.write_all(&json).is_err() {
        return Vec::new();
    }
    encoder.finish().unwrap_or_default()
}

/// Decodes and validates a request body. `content_encoding` is the header
/// value (`None` for identity); `max_decompressed` caps the inflated size.
pub fn decode_batch(
    body: &[u8],
    content_encoding: Option<&str>,
    max_decompressed: usize,
) -> Result<Batch, DecodeError> {
    let json = match content_encoding.map(str::trim) {
        None | Some("") | Some("identity") => {
            if body.len() > max_decompressed {
                return Err(DecodeError::TooLarge(max_decompressed));
            }
            body.to_vec()
        }
        Some(encoding) if encoding.eq_ignore_ascii_case(CONTENT_ENCODING_GZIP) => {
            let mut inflated = Vec::new();
            // Read one byte past the cap to tell "exactly at the cap" from "over".
            let limit = u64::try_from(max_decompressed)
                .unwrap_or(u64::MAX)
                .saturating_add(1);
            GzDecoder::new(body)
                .take(limit)
                .read_to_end(&mut inflated)
                .map_err(DecodeError::Gzip)?;
            if inflated.len() > max_decompressed {
                return Err(DecodeError::TooLarge(max_decompressed));
            }
            inflated
        }
        Some(other) => return Err(DecodeError::Encoding(other.to_string())),
    };
    let batch: Batch = serde_json::from_slice(&json).map_err(DecodeError::Json)?;
    batch.validate()?;
    Ok(batch)
}

#[cfg(test)]
mod tests {
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
