//! The in-memory series store that rules read: recent samples per series,
//! indexed by metric name, bounded in age and in series count.
//!
//! Samples are kept as plain `(timestamp, value)` pairs in a `VecDeque` per
//! series. Prometheus compresses its head chunks (Gorilla encoding); this
//! store does not yet, so a sample costs 16 bytes (see the crate README).

use std::collections::{BTreeMap, VecDeque};

use crate::labels::Labels;

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

/// Series grouped by metric name, each name's series ordered by labels so
/// that evaluation order (and so `topk` ties) is deterministic.
#[derive(Debug)]
pub struct Storage {
    /// Metric name to that name's series.
    by_name: BTreeMap<String, BTreeMap<Labels, Series>>,
    /// Most series kept; a new series beyond it is refused, never an OOM.
    max_series: usize,
    /// Series currently held.
    series_count: usize,
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
            by_name: BTreeMap::new(),
            max_series,
            series_count: 0,
            refused_samples: 0,
        }
    }

    /// Appends one sample. A sample at the same timestamp as the newest
    /// replaces it; an older one is refused.
    pub fn append(&mut self, labels: &Labels, t: Millis, value: f64) -> Result<(), AppendError> {
        let name = labels.name();
        let family = match self.by_name.get_mut(name) {
            Some(family) => family,
            None => self.by_name.entry(name.to_string()).or_default(),
        };
        let series = match family.get_mut(labels) {
            Some(series) => series,
            None => {
                if self.series_count >= self.max_series {
                    self.refused_samples += 1;
                    return Err(AppendError::SeriesLimit(self.max_series));
                }
                self.series_count += 1;
                family.entry(labels.clone()).or_default()
            }
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
        let mut removed = 0;
        for family in self.by_name.values_mut() {
            family.retain(|_, series| {
                while series.samples.front().is_some_and(|(t, _)| *t < before) {
                    series.samples.pop_front();
                }
                let keep = !series.samples.is_empty();
                if !keep {
                    removed += 1;
                }
                keep
            });
        }
        self.by_name.retain(|_, family| !family.is_empty());
        self.series_count -= removed;
    }

    /// Series whose metric name is `name` (every series when `None`).
    pub fn candidates<'a>(
        &'a self,
        name: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = (&'a Labels, &'a Series)> + 'a> {
        match name {
            Some(name) => match self.by_name.get(name) {
                Some(family) => Box::new(family.iter()),
                None => Box::new(std::iter::empty()),
            },
            None => Box::new(self.by_name.values().flat_map(|family| family.iter())),
        }
    }

    /// Number of series held.
    pub fn series_count(&self) -> usize {
        self.series_count
    }

    /// Number of samples held.
    pub fn sample_count(&self) -> usize {
        self.by_name
            .values()
            .flat_map(|family| family.values())
            .map(|series| series.samples.len())
            .sum()
    }

    /// Approximate bytes held, for the memory figures the benchmark prints.
    pub fn approximate_bytes(&self) -> usize {
        self.by_name
            .values()
            .flat_map(|family| family.iter())
            .map(|(labels, series)| {
                labels.heap_bytes() + series.samples.capacity() * 16 + 96
            })
            .sum()
    }
}

impl Series {
    /// The newest sample at or before `t` and not before `t - lookback`,
    /// unless it is a staleness marker.
    pub fn instant(&self, t: Millis, lookback: Millis) -> Option<(Millis, f64)> {
        let end = self.samples.partition_point(|(ts, _)| *ts <= t);
        let (ts, value) = *self.samples.get(end.checked_sub(1)?)?;
        if ts < t - lookback || is_stale(value) {
            return None;
        }
        Some((ts, value))
    }

    /// Samples with `start <= t <= end`, staleness markers left out.
    pub fn range(&self, start: Millis, end: Millis) -> Vec<(Millis, f64)> {
        let first = self.samples.partition_point(|(ts, _)| *ts < start);
        let last = self.samples.partition_point(|(ts, _)| *ts <= end);
        self.samples
            .range(first..last.max(first))
            .filter(|(_, value)| !is_stale(*value))
            .copied()
            .collect()
    }
}
