//! Wall-clock time as both daemons record it: Unix milliseconds.

/// Milliseconds since the Unix epoch; 0 if the clock is before 1970, and
/// saturating far in the future, so a broken clock never panics a daemon.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_after_2020() {
        assert!(super::now_ms() > 1_577_836_800_000);
    }
}
