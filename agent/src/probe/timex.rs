//! The timex collector: the kernel clock's discipline state (NTP sync,
//! offset, frequency, error bounds, PPS counters) as node_exporter 1.5
//! serves it, the `node_timex_*` families.
//!
//! The state comes from `adjtimex(2)` in read-only mode, through
//! `countywatch-sysclock` (the workspace's one unsafe call); [`families`]
//! is the pure conversion to node_exporter's units, tested on fixed inputs.

use countywatch_sysclock::{ClockState, STA_NANO, TIME_ERROR};
use countywatch_wire::{MetricFamily, MetricKind};

use super::{Probe, ProbeError};

/// Microseconds in a second: the unit of the error bounds and the tick,
/// and of the offset and jitter without `STA_NANO`.
const MICROSECONDS: f64 = 1e6;

/// Nanoseconds in a second: the unit of the offset and jitter with
/// `STA_NANO`.
const NANOSECONDS: f64 = 1e9;

/// The unit of the frequency fields: ppm with a 16-bit fraction (NOTES in
/// adjtimex(2)).
const PPM_16_FRACTION: f64 = 1e6 * 65_536.0;

/// Reads the clock's state at every collection.
pub struct TimexProbe;

impl Probe for TimexProbe {
    fn name(&self) -> &'static str {
        "timex"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["timex"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let clock = countywatch_sysclock::read().map_err(ProbeError::Adjtimex)?;
        out.extend(families(&clock));
        Ok(())
    }
}

/// The clock's state in node_exporter's families, names, units and order.
pub fn families(clock: &ClockState) -> Vec<MetricFamily> {
    use MetricKind::{Counter, Gauge};
    // Offset and jitter are in nanoseconds when the kernel says so.
    let divisor = if clock.status & STA_NANO != 0 {
        NANOSECONDS
    } else {
        MICROSECONDS
    };
    let synced = if clock.state == TIME_ERROR { 0.0 } else { 1.0 };
    let value = |field: i64| field as f64;
    [
        (
            "sync_status",
            "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
            Gauge,
            synced,
        ),
        (
            "offset_seconds",
            "Time offset in between local system and reference clock.",
            Gauge,
            value(clock.offset) / divisor,
        ),
        (
            "frequency_adjustment_ratio",
            "Local clock frequency adjustment.",
            Gauge,
            1.0 + value(clock.freq) / PPM_16_FRACTION,
        ),
        (
            "maxerror_seconds",
            "Maximum error in seconds.",
            Gauge,
            value(clock.maxerror) / MICROSECONDS,
        ),
        (
            "estimated_error_seconds",
            "Estimated error in seconds.",
            Gauge,
            value(clock.esterror) / MICROSECONDS,
        ),
        (
            "status",
            "Value of the status array bits.",
            Gauge,
            value(clock.status),
        ),
        (
            "loop_time_constant",
            "Phase-locked loop time constant.",
            Gauge,
            value(clock.constant),
        ),
        (
            "tick_seconds",
            "Seconds between clock ticks.",
            Gauge,
            value(clock.tick) / MICROSECONDS,
        ),
        (
            "pps_frequency_hertz",
            "Pulse per second frequency.",
            Gauge,
            value(clock.ppsfreq) / PPM_16_FRACTION,
        ),
        (
            "pps_jitter_seconds",
            "Pulse per second jitter.",
            Gauge,
            value(clock.jitter) / divisor,
        ),
        (
            "pps_shift_seconds",
            "Pulse per second interval duration.",
            Gauge,
            value(clock.shift),
        ),
        (
            "pps_stability_hertz",
            "Pulse per second stability, average of recent frequency changes.",
            Gauge,
            value(clock.stabil) / PPM_16_FRACTION,
        ),
        (
            "pps_jitter_total",
            "Pulse per second count of jitter limit exceeded events.",
            Counter,
            value(clock.jitcnt),
        ),
        (
            "pps_calibration_total",
            "Pulse per second count of calibration intervals.",
            Counter,
            value(clock.calcnt),
        ),
        (
            "pps_error_total",
            "Pulse per second count of calibration errors.",
            Counter,
            value(clock.errcnt),
        ),
        (
            "pps_stability_exceeded_total",
            "Pulse per second count of stability limit exceeded events.",
            Counter,
            value(clock.stbcnt),
        ),
        (
            "tai_offset_seconds",
            "International Atomic Time (TAI) offset.",
            Gauge,
            value(clock.tai),
        ),
    ]
    .into_iter()
    .map(|(name, help, kind, value)| {
        MetricFamily::single(format!("node_timex_{name}"), help, kind, value)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The family's one value, by name.
    fn value(families: &[MetricFamily], name: &str) -> f64 {
        families
            .iter()
            .find(|family| family.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .samples[0]
            .value
    }

    /// A chrony-disciplined clock as a Debian 12 host reports it: PLL on
    /// (STA_PLL, 0x1), microsecond offsets, HZ 100 (tick 10000 us).
    fn synced_clock() -> ClockState {
        ClockState {
            state: 0,
            offset: -250,
            freq: -1_310_720,
            maxerror: 12_000,
            esterror: 500,
            status: 0x1,
            constant: 7,
            tick: 10_000,
            ppsfreq: 65_536,
            jitter: 3,
            shift: 4,
            stabil: 131_072,
            jitcnt: 1,
            calcnt: 2,
            errcnt: 3,
            stbcnt: 4,
            tai: 37,
        }
    }

    #[test]
    fn timex_units_and_types_are_node_exporters() {
        let families = families(&synced_clock());
        assert_eq!(families.len(), 17);
        assert_eq!(value(&families, "node_timex_sync_status"), 1.0);
        assert_eq!(value(&families, "node_timex_offset_seconds"), -250e-6);
        // -20 ppm.
        assert_eq!(
            value(&families, "node_timex_frequency_adjustment_ratio"),
            1.0 - 20e-6
        );
        assert_eq!(value(&families, "node_timex_maxerror_seconds"), 0.012);
        assert_eq!(
            value(&families, "node_timex_estimated_error_seconds"),
            0.0005
        );
        assert_eq!(value(&families, "node_timex_status"), 1.0);
        assert_eq!(value(&families, "node_timex_loop_time_constant"), 7.0);
        assert_eq!(value(&families, "node_timex_tick_seconds"), 0.01);
        assert_eq!(value(&families, "node_timex_pps_frequency_hertz"), 1e-6);
        assert_eq!(value(&families, "node_timex_pps_jitter_seconds"), 3e-6);
        assert_eq!(value(&families, "node_timex_pps_shift_seconds"), 4.0);
        assert_eq!(value(&families, "node_timex_pps_stability_hertz"), 2e-6);
        assert_eq!(value(&families, "node_timex_pps_jitter_total"), 1.0);
        assert_eq!(value(&families, "node_timex_pps_calibration_total"), 2.0);
        assert_eq!(value(&families, "node_timex_pps_error_total"), 3.0);
        assert_eq!(
            value(&families, "node_timex_pps_stability_exceeded_total"),
            4.0
        );
        assert_eq!(value(&families, "node_timex_tai_offset_seconds"), 37.0);
        let counters: Vec<&str> = families
            .iter()
            .filter(|family| family.kind == MetricKind::Counter)
            .map(|family| family.name.as_ref())
            .collect();
        assert_eq!(
            counters,
            [
                "node_timex_pps_jitter_total",
                "node_timex_pps_calibration_total",
                "node_timex_pps_error_total",
                "node_timex_pps_stability_exceeded_total",
            ]
        );
    }

    #[test]
    fn timex_nano_status_switches_offset_and_jitter_to_nanoseconds() {
        let clock = ClockState {
            status: 0x1 | STA_NANO,
            offset: -250_000,
            jitter: 3_000,
            ..synced_clock()
        };
        let families = families(&clock);
        assert_eq!(value(&families, "node_timex_offset_seconds"), -250e-6);
        assert_eq!(value(&families, "node_timex_pps_jitter_seconds"), 3e-6);
        // The error bounds and the tick stay in microseconds.
        assert_eq!(value(&families, "node_timex_maxerror_seconds"), 0.012);
        assert_eq!(value(&families, "node_timex_tick_seconds"), 0.01);
        assert_eq!(value(&families, "node_timex_status"), 8193.0);
    }

    #[test]
    fn timex_time_error_is_not_synced() {
        // An unsynchronized clock: TIME_ERROR and STA_UNSYNC (0x40), as a
        // host without an NTP daemon reports it.
        let clock = ClockState {
            state: TIME_ERROR,
            status: 0x40,
            maxerror: 16_000_000,
            ..synced_clock()
        };
        let families = families(&clock);
        assert_eq!(value(&families, "node_timex_sync_status"), 0.0);
        assert_eq!(value(&families, "node_timex_maxerror_seconds"), 16.0);
        // Every other state, leap second pending included, counts as synced.
        for state in 0..TIME_ERROR {
            let families = super::families(&ClockState {
                state,
                ..synced_clock()
            });
            assert_eq!(value(&families, "node_timex_sync_status"), 1.0, "{state}");
        }
    }

    #[test]
    fn timex_reads_this_hosts_clock() {
        let mut out = Vec::new();
        TimexProbe.collect(&mut out).unwrap();
        assert_eq!(out.len(), 17);
        let tick = value(&out, "node_timex_tick_seconds");
        assert!((0.001..=0.01).contains(&tick), "tick {tick}");
    }
}
