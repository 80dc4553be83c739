//! Encoding and decoding a realistic batch (a host's full probe output), the
//! per-batch cost both ends pay. No peer: this is the baseline later
//! transport benchmarks build on.

use std::time::Instant;

use countywatch_wire::{Batch, MetricFamily, MetricKind, WIRE_VERSION, decode_batch, encode_batch};

use super::{Benchmark, Figure};

/// Registration.
pub const BENCHMARK: Benchmark = Benchmark {
    name: "wire_codec",
    about: "encode and decode a 400-sample batch (gzip JSON)",
    run,
};

fn batch() -> Batch {
    let mut families = Vec::new();
    for family_index in 0..40 {
        let mut family = MetricFamily::new(
            format!("node_metric_{family_index}_total"),
            "help",
            MetricKind::Counter,
        );
        for device in 0..10 {
            family.push(
                &[("device", &format!("eth{device}"))],
                f64::from(device) * 1234.5,
            );
        }
        families.push(family);
    }
    Batch {
        version: WIRE_VERSION,
        agent: "bench-host".to_string(),
        seq: 1,
        collected_at_ms: 0,
        metrics: families,
        events: Vec::new(),
    }
}

fn run() -> Vec<Figure> {
    let batch = batch();
    let iterations = 2_000;
    let started = Instant::now();
    let mut body = Vec::new();
    for _ in 0..iterations {
        body = encode_batch(&batch);
    }
    let encode = started.elapsed().as_secs_f64() / f64::from(iterations);
    let started = Instant::now();
    for _ in 0..iterations {
        let decoded = decode_batch(&body, Some("gzip"), 64 << 20);
        assert!(decoded.is_ok());
    }
    let decode = started.elapsed().as_secs_f64() / f64::from(iterations);
    vec![
        Figure::new("wire_encode_batch", encode * 1e6, "us"),
        Figure::new("wire_decode_batch", decode * 1e6, "us"),
        Figure::new("wire_batch_size", body.len() as f64, "bytes"),
    ]
}
