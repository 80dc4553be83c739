//! The in-memory series store that rules read: recent samples per series,
//! indexed by metric name, bounded in age and in series count.
//!
//! Samples are kept as plain `(timestamp, value)` pairs in a `VecDeque` per
//! series. Prometheus compresses its head chunks (Gorilla encoding); this
//! store does not yet, so a sample costs 16 bytes (see the crate README).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::labels::{FastMap, Labels};

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
    /// Samples in increasing timestamp order.
    pub samples: VecDeque<(Millis, f64)>,
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
    /// Series by creation number.
    series: BTreeMap<u64, (Labels, Series)>,
    /// Labels to creation number.
    ids: FastMap<Labels, u64>,
    /// Metric name to its series' creation numbers.
    by_name: HashMap<String, BTreeSet<u64>>,
    /// The next creation number.
    next_id: u64,
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
            series: BTreeMap::new(),
            ids: FastMap::default(),
            by_name: HashMap::new(),
            next_id: 0,
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
                self.ids.insert(labels.clone(), id);
                self.by_name
                    .entry(labels.name().to_string())
                    .or_default()
                    .insert(id);
                self.series.insert(id, (labels.clone(), Series::default()));
                id
            }
        };
        let Some((_, series)) = self.series.get_mut(&id) else {
            return Ok(());
        };
        match series.samples.back_mut() {
            Some(last) if last.0 == t => last.1 = value,
            Some(last) if last.0 > t => return Err(AppendError::OutOfOrder),
            _ => series.samples.push_back((t, value)),
        }
        Ok(())
    }

    /// Drops samples older than `before` and series left empty.
    pub fn trim(&mut self, before: Millis) {
        let mut emptied = Vec::new();
        for (id, (labels, series)) in &mut self.series {
            while series.samples.front().is_some_and(|(t, _)| *t < before) {
                series.samples.pop_front();
            }
            if series.samples.is_empty() {
                emptied.push((*id, labels.clone()));
            }
        }
        for (id, labels) in emptied {
            self.series.remove(&id);
            self.ids.remove(&labels);
            if let Some(ids) = self.by_name.get_mut(labels.name()) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_name.remove(labels.name());
                }
            }
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
                Some(ids) => Box::new(
                    ids.iter()
                        .filter_map(|id| self.series.get(id))
                        .map(|(labels, series)| (labels, series)),
                ),
                None => Box::new(std::iter::empty()),
            },
            None => Box::new(
                self.series
                    .values()
                    .map(|(labels, series)| (labels, series)),
            ),
        }
    }

    /// Number of series held.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Number of samples held.
    pub fn sample_count(&self) -> usize {
        self.series
            .values()
            .map(|(_, series)| series.samples.len())
            .sum()
    }

    /// Approximate bytes held, for the memory figures the benchmark prints.
    pub fn approximate_bytes(&self) -> usize {
        self.series
            .values()
            // The series' labels, the index's copy (sharing the strings),
            // the samples' buffer, and the map entries' overhead.
            .map(|(labels, series)| {
                labels.heap_bytes()
                    + labels.shared_copy_bytes()
                    + series.samples.capacity() * 16
                    + 128
            })
            .sum()
    }
}

impl Series {
    /// The newest sample at or before `t` and not before `t - lookback`,
    /// unless it is a staleness marker.
    pub fn instant(&self, t: Millis, lookback: Millis) -> Option<(Millis, f64)> {
        // Rules nearly always ask for "now": the newest sample, no search.
        let end = match self.samples.back() {
            Some((last, _)) if *last <= t => self.samples.len(),
            _ => self.samples.partition_point(|(ts, _)| *ts <= t),
        };
        let (ts, value) = *self.samples.get(end.checked_sub(1)?)?;
        if ts < t.saturating_sub(lookback) || is_stale(value) {
            return None;
        }
        Some((ts, value))
    }

    /// Samples with `start <= t <= end`, staleness markers left out.
    pub fn range(&self, start: Millis, end: Millis) -> Vec<(Millis, f64)> {
        let first = self.samples.partition_point(|(ts, _)| *ts < start);
        let last = match self.samples.back() {
            Some((newest, _)) if *newest <= end => self.samples.len(),
            _ => self.samples.partition_point(|(ts, _)| *ts <= end),
        };
        self.samples
            .range(first..last.max(first))
            .filter(|(_, value)| !is_stale(*value))
            .copied()
            .collect()
    }
}
