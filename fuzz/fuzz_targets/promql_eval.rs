//! PromQL text through the parser and the evaluator, over generated series
//! with awkward values (NaN, infinities, stale markers, resets).
#![no_main]

use std::sync::OnceLock;

use countywatch_labels::labels::Labels;
use countywatch_rules::promql::{Evaluator, parse_expr};
use countywatch_rules::storage::{Storage, stale_marker};
use libfuzzer_sys::fuzz_target;

fn store() -> &'static Storage {
    static STORE: OnceLock<Storage> = OnceLock::new();
    STORE.get_or_init(|| {
        let mut storage = Storage::new(10_000);
        let values = [1.0, f64::NAN, f64::INFINITY, stale_marker(), 0.0, -3.0, 1e308, 5.0];
        for (index, a) in ["1", "2", "3"].iter().enumerate() {
            for name in ["m", "n", "le_bucket"] {
                let labels = Labels::from_pairs([("__name__", name), ("a", a), ("le", a)]);
                for step in 0..80_i64 {
                    let value = values[(step as usize * 3 + index) % values.len()];
                    let _ = storage.append(&labels, step * 15_000, value);
                }
            }
        }
        storage
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(expr) = parse_expr(text) {
        let evaluator = Evaluator::new(store());
        for t in [0, 300_000, 1_200_000] {
            let _ = evaluator.instant(&expr, t);
        }
    }
});
