//! Label sets: the identity of a series, kept sorted by label name so that
//! equal sets compare, hash and order the same way Prometheus's do.

use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// The label holding a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// A sorted set of label pairs. Empty values are never stored because
/// Prometheus treats an empty label as an absent one. The set is shared
/// (`Arc<[...]>`), so copying a series' labels into a result, which every
/// selector does for every series, costs one reference count and no
/// allocation; changing a copy rebuilds it. Names and values are shared
/// too (`Arc<str>`), so equal strings across series are stored once.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Arc<[(Arc<str>, Arc<str>)]>);

impl Default for Labels {
    fn default() -> Self {
        Labels(Arc::from([]))
    }
}

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
        let mut sorted: Vec<(Arc<str>, Arc<str>)> = Vec::new();
        for (name, value) in pairs {
            let (name, value): (String, String) = (name.into(), value.into());
            match sorted.binary_search_by(|(n, _)| n.as_ref().cmp(name.as_str())) {
                Ok(index) if value.is_empty() => {
                    sorted.remove(index);
                }
                Ok(index) => sorted[index].1 = Arc::from(value),
                Err(_) if value.is_empty() => {}
                Err(index) => sorted.insert(index, (Arc::from(name), Arc::from(value))),
            }
        }
        Labels(sorted.into())
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
                    self.remove_at(index);
                } else if &*self.0[index].1 != value {
                    let mut pairs = self.0.to_vec();
                    pairs[index].1 = Arc::from(value);
                    self.0 = pairs.into();
                }
            }
            Err(index) => {
                if !value.is_empty() {
                    let mut pairs = Vec::with_capacity(self.0.len() + 1);
                    pairs.extend_from_slice(&self.0[..index]);
                    pairs.push((Arc::from(name), Arc::from(value)));
                    pairs.extend_from_slice(&self.0[index..]);
                    self.0 = pairs.into();
                }
            }
        }
    }

    /// Removes `name` if present.
    pub fn remove(&mut self, name: &str) {
        if let Ok(index) = self.0.binary_search_by(|(n, _)| n.as_ref().cmp(name)) {
            self.remove_at(index);
        }
    }

    fn remove_at(&mut self, index: usize) {
        let mut pairs = Vec::with_capacity(self.0.len().saturating_sub(1));
        pairs.extend_from_slice(&self.0[..index]);
        pairs.extend_from_slice(&self.0[index + 1..]);
        self.0 = pairs.into();
    }

    /// A copy without the metric name.
    pub fn without_name(&self) -> Labels {
        let mut labels = self.clone();
        labels.remove(METRIC_NAME);
        labels
    }

    /// A copy keeping only the named labels.
    pub fn keep_only(&self, names: &[String]) -> Labels {
        if self
            .0
            .iter()
            .all(|(name, _)| names.iter().any(|kept| kept.as_str() == name.as_ref()))
        {
            return self.clone();
        }
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
        self.without_names(names, false)
    }

    /// A copy without the named labels and, when `and_metric_name`, the
    /// metric name too: one new set at most, none when nothing is removed
    /// (vector matching computes this for every sample on both sides).
    pub fn without_names(&self, names: &[String], and_metric_name: bool) -> Labels {
        let dropped = |name: &str| {
            (and_metric_name && name == METRIC_NAME)
                || names.iter().any(|dropped| dropped.as_str() == name)
        };
        if !self.0.iter().any(|(name, _)| dropped(name)) {
            return self.clone();
        }
        Labels(
            self.0
                .iter()
                .filter(|(name, _)| !dropped(name))
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

    /// Bytes of this set's own shared slice alone (its pairs and the
    /// reference counts): what a series' labels cost when names and values
    /// are shared with other series. Copies share the slice.
    pub fn shared_copy_bytes(&self) -> usize {
        self.0.len() * 32 + 16
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

/// Quotes a label value the way Go's `strconv.Quote` does: escapes for
/// quotes, backslashes and control characters, printable Unicode kept.
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
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            control if u32::from(control) < 0x20 || control == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", u32::from(control)));
            }
            control if control.is_control() => {
                out.push_str(&format!("\\u{:04x}", u32::from(control)));
            }
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
