//! Annotation and label templates (the Go-template subset), parsed and
//! rendered with odd label values and numbers.
#![no_main]

use std::collections::BTreeMap;

use countywatch_labels::labels::Labels;
use countywatch_labels::template::{Data, Template};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(template) = Template::parse(&text) {
        let labels = Labels::from_pairs([("instance", "web-01"), ("job", "{{ $value }}")]);
        let external = BTreeMap::from([("county".to_string(), "示例县".to_string())]);
        for value in [0.0, -1.5, f64::NAN, f64::INFINITY, 1e300, 12345.678] {
            let _ = template.render(&Data {
                labels: &labels,
                external_labels: &external,
                value,
            });
        }
    }
});
