//! The kernel clock's discipline state, read with `adjtimex(2)` and never
//! changed: [`read`] returns the fields of `struct timex` that
//! node_exporter's timex collector serves, in the kernel's own units, and
//! the call's return value (the clock state).
//!
//! This crate holds the workspace's only `unsafe` code, the one call in
//! [`read`]. Neither rustix nor nix wraps `adjtimex`, and every other crate
//! forbids unsafe code; keeping the call here, behind a safe function with
//! no arguments, keeps that rule true everywhere else.

/// `adjtimex` returned `TIME_ERROR`: the clock is not synchronized to a
/// reliable server.
pub const TIME_ERROR: i32 = 5;

/// The `status` bit saying `offset` and `jitter` are in nanoseconds rather
/// than microseconds.
pub const STA_NANO: i64 = 0x2000;

/// The clock's discipline state as `adjtimex(2)` reports it, every field in
/// the kernel's units (see the man page's NOTES).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClockState {
    /// What the call returned: `TIME_OK` (0) to `TIME_ERROR` (5).
    pub state: i32,
    /// Time offset, in microseconds, or nanoseconds with [`STA_NANO`].
    pub offset: i64,
    /// Frequency offset, in ppm with a 16-bit fraction.
    pub freq: i64,
    /// Maximum error, in microseconds.
    pub maxerror: i64,
    /// Estimated error, in microseconds.
    pub esterror: i64,
    /// Clock status bits (`STA_*`).
    pub status: i64,
    /// Phase-locked loop time constant.
    pub constant: i64,
    /// Microseconds between clock ticks.
    pub tick: i64,
    /// PPS frequency, in ppm with a 16-bit fraction.
    pub ppsfreq: i64,
    /// PPS jitter, in microseconds, or nanoseconds with [`STA_NANO`].
    pub jitter: i64,
    /// PPS interval duration, as a power of two seconds.
    pub shift: i64,
    /// PPS stability, in ppm with a 16-bit fraction.
    pub stabil: i64,
    /// PPS count of jitter limit exceeded events.
    pub jitcnt: i64,
    /// PPS count of calibration intervals.
    pub calcnt: i64,
    /// PPS count of calibration errors.
    pub errcnt: i64,
    /// PPS count of stability limit exceeded events.
    pub stbcnt: i64,
    /// TAI offset, in seconds.
    pub tai: i64,
}

/// Reads the clock's discipline state without changing it.
///
/// # Errors
///
/// The call's `errno` when the kernel refuses it (a seccomp filter; a
/// read with `modes = 0` needs no privilege).
#[allow(unsafe_code)]
pub fn read() -> std::io::Result<ClockState> {
    // SAFETY: `libc::timex` is a plain C struct of integers (and padding),
    // for which all-zero bytes are a valid value, so `zeroed` is sound.
    // `adjtimex` is given a pointer to that local, properly aligned and
    // writable for the struct's whole size, and only writes within it
    // during the call; no pointer outlives the call. `modes` is 0, so the
    // kernel only reads the clock's state and changes nothing.
    let (state, timex) = unsafe {
        let mut timex: libc::timex = std::mem::zeroed();
        timex.modes = 0;
        let state = libc::adjtimex(&mut timex);
        (state, timex)
    };
    if state < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(ClockState {
        state,
        offset: widen(timex.offset),
        freq: widen(timex.freq),
        maxerror: widen(timex.maxerror),
        esterror: widen(timex.esterror),
        status: widen(timex.status),
        constant: widen(timex.constant),
        tick: widen(timex.tick),
        ppsfreq: widen(timex.ppsfreq),
        jitter: widen(timex.jitter),
        shift: widen(timex.shift),
        stabil: widen(timex.stabil),
        jitcnt: widen(timex.jitcnt),
        calcnt: widen(timex.calcnt),
        errcnt: widen(timex.errcnt),
        stbcnt: widen(timex.stbcnt),
        tai: widen(timex.tai),
    })
}

/// One `struct timex` field as an `i64`. The field types differ between
/// targets (`c_int`, `c_long`, which is `i32` on 32-bit targets, or `i64`
/// on those with 64-bit time); every one fits, and a generic conversion
/// compiles on each without a cast.
fn widen(field: impl Into<i64>) -> i64 {
    field.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_hosts_clock() {
        let clock = read().unwrap();
        assert!((0..=TIME_ERROR).contains(&clock.state), "{clock:?}");
        // Every Linux kernel ticks at HZ between 100 and 1000.
        assert!((1_000..=10_000).contains(&clock.tick), "{clock:?}");
        // The kernel bounds the frequency offset at ±500 ppm.
        assert!(clock.freq.abs() <= 500 * 65_536, "{clock:?}");
    }
}
