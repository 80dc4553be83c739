//! Metric families gathered by name as a probe meets them, for collectors
//! whose family names come from the files they find (hwmon's sensor
//! attributes, a power supply's properties) rather than from a fixed list.
//!
//! node_exporter merges such metrics into one family per name when it is
//! scraped; [`FamilySet`] does the same before the batch is built: one
//! family per name, in name order, the first help text and type winning,
//! and a label set that repeats (two chips deriving the same name) kept
//! once, so the batch never carries a duplicate series.

use std::collections::BTreeMap;

use countywatch_wire::{MetricFamily, MetricKind};

/// Families keyed by name.
#[derive(Debug, Default)]
pub struct FamilySet {
    /// The families so far.
    families: BTreeMap<String, MetricFamily>,
}

impl FamilySet {
    /// Adds one sample to the family `name`, creating it with `help` and
    /// `kind` if it is new. A sample whose labels the family already has
    /// is dropped: the first one stays.
    pub fn push(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricKind,
        labels: &[(&'static str, &str)],
        value: f64,
    ) {
        let family = self
            .families
            .entry(name.to_string())
            .or_insert_with(|| MetricFamily::new(name.to_string(), help.to_string(), kind));
        let repeated = family.samples.iter().any(|sample| {
            sample.labels.len() == labels.len()
                && sample.labels.iter().zip(labels).all(
                    |((name, value), (other_name, other_value))| {
                        name == other_name && value == other_value
                    },
                )
        });
        if !repeated {
            family.push(labels, value);
        }
    }

    /// The families, in name order.
    pub fn into_families(self) -> Vec<MetricFamily> {
        self.families.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_family_per_name_and_a_repeated_series_kept_once() {
        let mut set = FamilySet::default();
        set.push("b", "first", MetricKind::Gauge, &[("chip", "x")], 1.0);
        set.push("a", "help", MetricKind::Counter, &[], 2.0);
        set.push("b", "second", MetricKind::Counter, &[("chip", "y")], 3.0);
        set.push("b", "second", MetricKind::Gauge, &[("chip", "x")], 4.0);
        let families = set.into_families();
        assert_eq!(families.len(), 2);
        assert_eq!(families[0].name, "a");
        assert_eq!(families[1].help, "first");
        assert_eq!(families[1].kind, MetricKind::Gauge);
        let values: Vec<f64> = families[1].samples.iter().map(|s| s.value).collect();
        assert_eq!(values, vec![1.0, 3.0]);
    }
}
