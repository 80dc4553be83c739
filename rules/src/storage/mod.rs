//! The in-memory series store that rules read: recent samples per series,
//! indexed by metric name, bounded in age and in series count.
//!
//! - [`chunk`]: Gorilla-compressed chunks, which hold every sample.
//!
//! Each series is a queue of chunks of 120 samples; the newest is appended
//! to in place, still compressed, and old chunks are dropped whole once all
//! their samples are older than the retention.

pub mod chunk;

use std::collections::{BTreeMap, VecDeque};

use chunk::Chunk;

use std::sync::Arc;

use countywatch_labels::labels::{FastMap, FastSet, Labels};

/// Milliseconds since the Unix epoch, as Prometheus timestamps are.
pub type Millis = i64;

/// The NaN bit pattern Prometheus writes as a staleness marker.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `value` is Prometheus's staleness marker.
pub fn is_stale(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// The staleness marker as a value.
pub fn stale_marker() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// One stored series.
#[derive(Clone, Debug, Default)]
pub struct Series {
    /// Chunks in time order; only the last one takes appends.
    chunks: VecDeque<Chunk>,
}

/// Why a sample was not stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The store already holds its cap of series and this one is new.
    #[error("series limit of {0} reached: new series refused")]
    SeriesLimit(usize),
    /// The sample is older than the series' newest one.
    #[error("out-of-order sample")]
    OutOfOrder,
}

/// Series in creation order, indexed by labels and by metric name.
/// Creation order is the order Prometheus's head returns unsorted series
/// in, so evaluation order (`topk` ties, which duplicate an error names)
/// is the same as promtool's.
#[derive(Debug)]
pub struct Storage {
    /// Series grouped by metric name, each group keyed by creation number:
    /// a selector naming its metric (nearly all do) walks one group in
    /// order without a lookup per series.
    by_name: FastMap<Arc<str>, BTreeMap<u64, (Labels, Series)>>,
    /// Labels to creation number (the labels share the group's copy).
    ids: FastMap<Labels, u64>,
    /// The next creation number.
    next_id: u64,
    /// Every label name and value held, each stored once.
    strings: FastSet<Arc<str>>,
    /// Most series kept; a new series beyond it is refused, never an OOM.
    max_series: usize,
    /// Samples refused because of `max_series`, for the operator to see.
    pub refused_samples: u64,
}

impl Default for Storage {
    fn default() -> Self {
        Storage::new(usize::MAX)
    }
}

impl Storage {
    /// An empty store holding at most `max_series` series.
    pub fn new(max_series: usize) -> Storage {
        Storage {
            by_name: FastMap::default(),
            ids: FastMap::default(),
            next_id: 0,
            strings: FastSet::default(),
            max_series,
            refused_samples: 0,
        }
    }

    /// Appends one sample. A sample at the same timestamp as the newest
    /// replaces it; an older one is refused.
    pub fn append(&mut self, labels: &Labels, t: Millis, value: f64) -> Result<(), AppendError> {
        let id = match self.ids.get(labels) {
            Some(id) => *id,
            None => {
                if self.ids.len() >= self.max_series {
                    self.refused_samples += 1;
                    return Err(AppendError::SeriesLimit(self.max_series));
                }
                let id = self.next_id;
                self.next_id += 1;
                // Label names and most values repeat across series
                // (`instance`, `job`, `mode="idle"`); store each string once.
                let strings = &mut self.strings;
                let mut intern = |text: &Arc<str>| match strings.get(text) {
                    Some(shared) => Arc::clone(shared),
                    None => {
                        strings.insert(Arc::clone(text));
                        Arc::clone(text)
                    }
                };
                let labels = labels.interned(&mut intern);
                let name = intern(&Arc::from(labels.name()));
                self.ids.insert(labels.clone(), id);
                self.by_name
                    .entry(name)
                    .or_default()
                    .insert(id, (labels, Series::default()));
                id
            }
        };
        let Some((_, series)) = self
            .by_name
            .get_mut(labels.name())
            .and_then(|group| group.get_mut(&id))
        else {
            return Ok(());
        };
        series.append(t, value)
    }

    /// Drops samples older than `before` and series left empty.
    pub fn trim(&mut self, before: Millis) {
        let mut removed_any = false;
        for group in self.by_name.values_mut() {
            group.retain(|_, (labels, series)| {
                series.trim(before);
                if series.chunks.is_empty() {
                    self.ids.remove(labels);
                    removed_any = true;
                    return false;
                }
                true
            });
        }
        if removed_any {
            self.by_name.retain(|_, group| !group.is_empty());
            // Strings only the set still holds belonged to removed series.
            self.strings.retain(|text| Arc::strong_count(text) > 1);
        }
    }

    /// Series whose metric name is `name` (every series when `None`), in
    /// creation order.
    pub fn candidates<'a>(
        &'a self,
        name: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = (&'a Labels, &'a Series)> + 'a> {
        match name {
            Some(name) => match self.by_name.get(name) {
                Some(group) => Box::new(group.values().map(|(labels, series)| (labels, series))),
                None => Box::new(std::iter::empty()),
            },
            None => {
                // Rare (`{job="x"}`): merge the groups back into creation order.
                let mut all: Vec<(u64, &'a Labels, &'a Series)> = self
                    .by_name
                    .values()
                    .flat_map(|group| group.iter())
                    .map(|(id, (labels, series))| (*id, labels, series))
                    .collect();
                all.sort_unstable_by_key(|(id, _, _)| *id);
                Box::new(all.into_iter().map(|(_, labels, series)| (labels, series)))
            }
        }
    }

    fn all_series(&self) -> impl Iterator<Item = &(Labels, Series)> {
        self.by_name.values().flat_map(|group| group.values())
    }

    /// Number of series held.
    pub fn series_count(&self) -> usize {
        self.ids.len()
    }

    /// Number of samples held.
    pub fn sample_count(&self) -> usize {
        self.all_series().map(|(_, series)| series.len()).sum()
    }

    /// Bytes of compressed sample data alone (the chunks' bit streams).
    pub fn chunk_bytes(&self) -> usize {
        self.all_series()
            .flat_map(|(_, series)| series.chunks.iter())
            .map(Chunk::byte_len)
            .sum()
    }

    /// Approximate bytes held, for the memory figures the benchmark prints.
    pub fn approximate_bytes(&self) -> usize {
        // Each distinct string once (with its Arc header and set slot),
        // then per series: its shared labels slice (the index holds another
        // reference to it), its chunks, and the map entries' overhead.
        let strings: usize = self.strings.iter().map(|text| text.len() + 16 + 16).sum();
        let series: usize = self
            .all_series()
            .map(|(labels, series)| labels.shared_copy_bytes() + series.heap_bytes() + 128)
            .sum();
        strings + series
    }
}

impl Series {
    /// Appends a sample. A sample at the newest timestamp replaces it when
    /// the newest chunk is still open; an older one is refused.
    fn append(&mut self, t: Millis, value: f64) -> Result<(), AppendError> {
        if let Some((last_t, last_value)) = self.chunks.back().and_then(Chunk::last) {
            if t < last_t {
                return Err(AppendError::OutOfOrder);
            }
            if t == last_t {
                // Re-ingesting the same batch is common and harmless; a
                // different value at the same instant is rare and the first
                // one is kept (rewriting a compressed sample is not cheap).
                let _ = last_value;
                return Ok(());
            }
        }
        if self.chunks.back().is_none_or(Chunk::is_full) {
            if let Some(full) = self.chunks.back_mut() {
                full.seal();
            }
            self.chunks.push_back(Chunk::new());
        }
        if let Some(open) = self.chunks.back_mut() {
            open.push(t, value);
        }
        Ok(())
    }

    /// Drops chunks whose samples are all older than `before`.
    fn trim(&mut self, before: Millis) {
        while self
            .chunks
            .front()
            .is_some_and(|chunk| chunk.is_empty() || chunk.bounds().1 < before)
        {
            self.chunks.pop_front();
        }
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.chunks
            .iter()
            .map(|chunk| usize::from(chunk.len()))
            .sum()
    }

    /// Whether the series holds no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held by the chunks.
    pub fn heap_bytes(&self) -> usize {
        self.chunks
            .iter()
            .map(|chunk| chunk.byte_len() + std::mem::size_of::<Chunk>())
            .sum::<usize>()
            + 32
    }

    /// The newest sample at or before `t` and not before `t - lookback`,
    /// unless it is a staleness marker.
    pub fn instant(&self, t: Millis, lookback: Millis) -> Option<(Millis, f64)> {
        // Rules nearly always ask for "now": the newest sample, no decoding.
        let newest = self.chunks.back().and_then(Chunk::last)?;
        let found = if newest.0 <= t {
            newest
        } else {
            let chunk = self
                .chunks
                .iter()
                .rev()
                .find(|chunk| !chunk.is_empty() && chunk.bounds().0 <= t)?;
            chunk.iter().take_while(|(ts, _)| *ts <= t).last()?
        };
        if found.0 < t.saturating_sub(lookback) || is_stale(found.1) {
            return None;
        }
        Some(found)
    }

    /// Samples with `start <= t <= end`, staleness markers left out.
    pub fn range(&self, start: Millis, end: Millis) -> Vec<(Millis, f64)> {
        let mut out = Vec::new();
        for chunk in &self.chunks {
            let (first, last) = chunk.bounds();
            if chunk.is_empty() || last < start || first > end {
                continue;
            }
            if first >= start && last <= end {
                // Wholly inside: no bound to check per sample.
                out.reserve(usize::from(chunk.len()));
                out.extend(chunk.iter().filter(|(_, value)| !is_stale(*value)));
            } else {
                // Decoding stops at the first sample past `end`: a query in
                // the past reads only the head of a chunk.
                out.extend(
                    chunk
                        .iter()
                        .take_while(|(t, _)| *t <= end)
                        .filter(|(t, value)| *t >= start && !is_stale(*value)),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_match_a_plain_list_across_chunks() {
        let mut series = Series::default();
        let mut plain = Vec::new();
        for step in 0..500_i64 {
            let t = step * 15_000 + (step % 7) * 3;
            let value = if step % 50 == 49 {
                stale_marker()
            } else {
                (step * step) as f64 / 3.0
            };
            series.append(t, value).unwrap();
            plain.push((t, value));
        }
        assert_eq!(series.len(), 500);
        assert_eq!(series.append(0, 1.0), Err(AppendError::OutOfOrder));
        for (start, end) in [
            (0, 7_500_000),
            (1_000_000, 2_000_000),
            (1_799_990, 1_800_010),
            (-5, -1),
        ] {
            let want: Vec<(Millis, f64)> = plain
                .iter()
                .copied()
                .filter(|(t, v)| *t >= start && *t <= end && !is_stale(*v))
                .collect();
            let got = series.range(start, end);
            assert_eq!(got.len(), want.len());
            assert!(
                got.iter()
                    .zip(&want)
                    .all(|(a, b)| a.0 == b.0 && a.1.to_bits() == b.1.to_bits())
            );
        }
        for t in [
            0, 14_999, 15_000, 3_000_000, 7_484_999, 7_485_000, 9_000_000,
        ] {
            let want = plain
                .iter()
                .copied()
                .rfind(|(ts, _)| *ts <= t)
                .filter(|(ts, v)| *ts >= t - 300_000 && !is_stale(*v));
            assert_eq!(series.instant(t, 300_000), want, "at {t}");
        }
        series.trim(3_000_000);
        assert!(series.len() < 500 && series.len() >= 300);
        let kept: Vec<(Millis, f64)> = plain
            .iter()
            .copied()
            .filter(|(t, _)| *t >= 3_000_000 && *t <= 3_100_000)
            .collect();
        assert_eq!(series.range(3_000_000, 3_100_000), kept);
    }
}
