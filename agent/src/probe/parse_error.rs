//! Why a probe's pure parse function refused the text it was given: the
//! failure shapes the /proc and /sys parsers share (a line of the wrong
//! shape, a value that is not a number, a part the file must have).
//!
//! The probe's IO part wraps it in [`super::ProbeError::Parse`] with the
//! file's path. The messages are node_exporter-like and appear in the
//! agent's log and its probe error metrics' log lines, so each variant's
//! text is part of the agent's output.

/// What was wrong with a probe's source text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProbeParseError {
    /// The text lacks something every valid file has, or is laid out in a
    /// way the parser does not know; the message says what.
    #[error("{0}")]
    Malformed(&'static str),
    /// A line (or a row or status line) the parser cannot read.
    #[error("{problem} {line:?}")]
    Line {
        /// What is wrong with it (`invalid line`, `too few numbers in the line`).
        problem: &'static str,
        /// The line as read.
        line: String,
    },
    /// A value the parser cannot read.
    #[error("{problem} {value:?}")]
    Value {
        /// What is wrong with it (`not a number:`, `invalid counter`).
        problem: &'static str,
        /// The value as read.
        value: String,
    },
    /// A value that is not of the expected kind.
    #[error("{value:?} is not {expected}")]
    NotA {
        /// The value as read.
        value: String,
        /// What it should have been (`a number`, `hexadecimal`).
        expected: &'static str,
    },
    /// A named field whose value is not a number.
    #[error("invalid value {value:?} for {field}")]
    FieldValue {
        /// The field (`TcpExtSyncookiesSent`, `TCP inuse`).
        field: String,
        /// The value as read.
        value: String,
    },
    /// A named kstat field whose value is not an unsigned integer.
    #[error("{field} is not an unsigned integer: {value:?}")]
    NotUnsigned {
        /// The field.
        field: String,
        /// The value as read.
        value: String,
    },
    /// A name that cannot become part of a metric name.
    #[error("{name:?} cannot be part of a metric name")]
    MetricName {
        /// The name as read.
        name: String,
    },
    /// A line that lacks a named field's value.
    #[error("no value for {field} in {line:?}")]
    NoValue {
        /// The field.
        field: String,
        /// The line as read.
        line: String,
    },
    /// A line that is not `ID: NAME` (InfiniBand port states).
    #[error("cannot split {text:?} into 'ID: NAME'")]
    NotIdAndName {
        /// The text as read.
        text: String,
    },
    /// A keyed line with the wrong count of numbers.
    #[error("the {key} line has {found} numbers, not {expected}")]
    NumberCount {
        /// The line's key (`net`, `rpc`, `th`).
        key: String,
        /// The numbers it holds.
        found: usize,
        /// The numbers it must hold.
        expected: usize,
    },
    /// A procedure line whose declared count disagrees with its counts.
    #[error("the {key} line declares {declared} procedures and has {found}")]
    ProcedureCount {
        /// The line's key (`proc3`).
        key: String,
        /// The count it declares.
        declared: u64,
        /// The counts it holds.
        found: usize,
    },
    /// A group of counts whose length is outside the known range.
    #[error("{group} has {found} counts, not {expected}")]
    GroupLength {
        /// The group (`xs`, `ig`).
        group: String,
        /// The counts it holds.
        found: usize,
        /// The shortest it may be.
        expected: usize,
    },
    /// A header line followed by another protocol's values.
    #[error("{header} header followed by {values} values")]
    ProtocolMismatch {
        /// The header's protocol.
        header: String,
        /// The values' protocol.
        values: String,
    },
    /// A header and its values of different lengths.
    #[error("field count mismatch for {protocol}")]
    FieldCount {
        /// The protocol.
        protocol: String,
    },
    /// A protocol line with a name and no value, or a value and no name.
    #[error("odd number of fields for {protocol}")]
    OddFields {
        /// The protocol.
        protocol: String,
    },
    /// A sync line of an md array the parser cannot read.
    #[error("cannot read the sync line of {array}: {line:?}")]
    SyncLine {
        /// The array (`md0`).
        array: String,
        /// The line as read.
        line: String,
    },
    /// An InfiniBand port directory whose name is not a number.
    #[error("port {port:?} is not a number")]
    PortNumber {
        /// The directory's name.
        port: String,
    },
    /// A bonding master without a list of its slaves.
    #[error("no slave list for {master}")]
    NoSlaveList {
        /// The master (`bond0`).
        master: String,
    },
    /// A bonding slave without an MII status.
    #[error("no MII status for {slave} of {master}")]
    NoMiiStatus {
        /// The slave (`eth0`).
        slave: String,
        /// Its master.
        master: String,
    },
    /// An `ADDRESS:PORT` in hexadecimal that is not one.
    #[error("unexpected IP:Port: {text}")]
    AddressAndPort {
        /// The text as read.
        text: String,
    },
    /// An IPv6 address in brackets that is not one.
    #[error("invalid IPv6 address: {text}")]
    Ipv6Address {
        /// The text as read.
        text: String,
    },
    /// A problem in one part of the input (a file, a device, a supply).
    #[error("{part}: {source}")]
    In {
        /// The part (`ip_vs_stats`, `sda1`, `BAT0/capacity`).
        part: String,
        /// The problem.
        source: Box<ProbeParseError>,
    },
}

impl ProbeParseError {
    /// This problem, said to be in `part`.
    pub fn in_part(self, part: impl Into<String>) -> Self {
        ProbeParseError::In {
            part: part.into(),
            source: Box::new(self),
        }
    }

    /// A line the parser cannot read.
    pub fn line(problem: &'static str, line: &str) -> Self {
        ProbeParseError::Line {
            problem,
            line: line.to_string(),
        }
    }

    /// A value the parser cannot read.
    pub fn value(problem: &'static str, value: &str) -> Self {
        ProbeParseError::Value {
            problem,
            value: value.to_string(),
        }
    }

    /// A value that is not `expected`.
    pub fn not_a(value: &str, expected: &'static str) -> Self {
        ProbeParseError::NotA {
            value: value.to_string(),
            expected,
        }
    }
}
