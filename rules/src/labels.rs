//! Label sets: the identity of a series, kept sorted by label name so that
//! equal sets compare, hash and order the same way Prometheus's do.

use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// The label holding a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// A sorted set of label pairs. Empty values are never stored because
/// Prometheus treats an empty label as an absent one. Names and values are
/// shared (`Arc<str>`), so copying a series' labels into a result, which
/// every selector does for every series, costs no string copies.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<(Arc<str>, Arc<str>)>);

/// A fast hasher for maps keyed by labels inside one evaluation (FxHash's
/// multiply-rotate): keys come from the store, not from a network peer
/// choosing collisions, and SipHash dominated evaluation time.
#[derive(Clone, Copy, Debug, Default)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0_u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FastHasher>>;
/// `HashSet` with [`FastHasher`].
pub type FastSet<K> = std::collections::HashSet<K, BuildHasherDefault<FastHasher>>;

impl Labels {
    /// Builds a set from pairs in any order; a later duplicate name wins and
    /// empty values are dropped.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Labels {
        let mut labels = Labels::default();
        for (name, value) in pairs {
            labels.set(&name.into(), &value.into());
        }
        labels
    }

    /// The value of `name`, or `""` when absent (as in Prometheus).
    pub fn get(&self, name: &str) -> &str {
        match self.0.binary_search_by(|(n, _)| n.as_ref().cmp(name)) {
            Ok(index) => &self.0[index].1,
            Err(_) => "",
        }
    }

    /// Whether `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.0
            .binary_search_by(|(n, _)| n.as_ref().cmp(name))
            .is_ok()
    }

    /// Sets `name`; an empty value removes it.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|(n, _)| n.as_ref().cmp(name)) {
            Ok(index) => {
                if value.is_empty() {
                    self.0.remove(index);
                } else if &*self.0[index].1 != value {
                    self.0[index].1 = Arc::from(value);
                }
            }
            Err(index) => {
                if !value.is_empty() {
                    self.0.insert(index, (Arc::from(name), Arc::from(value)));
                }
            }
        }
    }

    /// Removes `name` if present.
    pub fn remove(&mut self, name: &str) {
        if let Ok(index) = self.0.binary_search_by(|(n, _)| n.as_ref().cmp(name)) {
            self.0.remove(index);
        }
    }

    /// A copy without the metric name.
    pub fn without_name(&self) -> Labels {
        let mut labels = self.clone();
        labels.remove(METRIC_NAME);
        labels
    }

    /// A copy keeping only the named labels.
    pub fn keep_only(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(name, _)| names.iter().any(|kept| kept.as_str() == name.as_ref()))
                .cloned()
                .collect(),
        )
    }

    /// A copy without the named labels.
    pub fn without(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(name, _)| {
                    !names
                        .iter()
                        .any(|dropped| dropped.as_str() == name.as_ref())
                })
                .cloned()
                .collect(),
        )
    }

    /// The metric name, or `""`.
    pub fn name(&self) -> &str {
        self.get(METRIC_NAME)
    }

    /// The pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(name, value)| (name.as_ref(), value.as_ref()))
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no label at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes held by the names and values (with their `Arc` headers) and
    /// by this set's own vector, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.0
            .iter()
            .map(|(name, value)| name.len() + value.len() + 2 * 16 + 32)
            .sum()
    }

    /// The same labels with every name and value passed through `intern`,
    /// so that equal strings across series share one allocation.
    pub fn interned(&self, mut intern: impl FnMut(&Arc<str>) -> Arc<str>) -> Labels {
        Labels(
            self.0
                .iter()
                .map(|(name, value)| (intern(name), intern(value)))
                .collect(),
        )
    }

    /// Bytes of this set's own vector alone: what a copy of the labels
    /// costs when names and values are shared.
    pub fn shared_copy_bytes(&self) -> usize {
        self.0.len() * 32 + 24
    }
}

impl fmt::Display for Labels {
    /// Formats like Prometheus's `labels.Labels.String()`: `{a="1", b="2"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (index, (name, value)) in self.0.iter().enumerate() {
            if index > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{name}={}", quote(value))?;
        }
        write!(f, "}}")
    }
}

/// Quotes a label value the way Go's `strconv.Quote` does for the
/// characters that matter in label values.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for character in value.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            other => out.push(other),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_and_empty_values_dropped() {
        let labels = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", "")]);
        assert_eq!(labels.to_string(), r#"{a="1", b="2"}"#);
        assert_eq!(labels.get("c"), "");
        assert!(!labels.has("c"));
    }
}
