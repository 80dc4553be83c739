//! Why a rule's result at one evaluation was refused. Prometheus refuses
//! the whole result then (no sample is written, the rule shows the error);
//! so do we, and the kind says whether the rule file (its labels) or the
//! data (too many series for the rule's group `limit`) is the cause.

/// A refused rule result, with Prometheus's messages.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    /// Two samples have the same labels once the rule's labels are applied:
    /// the rule's labels erase what told them apart.
    #[error("vector contains metrics with the same labelset after applying {applied} labels")]
    DuplicateLabelset {
        /// `rule` for a recording rule, `alert` for an alerting rule.
        applied: &'static str,
    },
    /// More series (or pending and firing alerts) than the group's `limit`.
    #[error("exceeded limit of {limit} with {count} {counted}")]
    LimitExceeded {
        /// The group's `limit`.
        limit: usize,
        /// How many there were.
        count: usize,
        /// `series` or `alerts`.
        counted: &'static str,
    },
}
