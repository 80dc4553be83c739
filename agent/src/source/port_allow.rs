//! The ports source's allow-list entries (`sources.ports.allow`): their
//! syntax and parsing, apart from the source so that the configuration's
//! checks can parse them without importing the source.

use std::net::IpAddr;

/// An allow-list entry that is not `PROTO/PORT` or `PROTO/ADDRESS:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "port allow-list entry {entry:?} must be PROTO/PORT or PROTO/ADDRESS:PORT, PROTO tcp or udp (e.g. tcp/22, udp/[::1]:53)"
)]
pub struct AllowRuleError {
    /// The entry as written.
    pub entry: String,
}

/// An allow-list entry: `tcp/22` (any address) or `tcp/127.0.0.1:5432`,
/// `udp/[::1]:53`. `tcp` and `udp` cover IPv4 and IPv6.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowRule {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The address, or any.
    pub ip: Option<IpAddr>,
    /// The port.
    pub port: u16,
}

impl AllowRule {
    /// Parses `PROTO/PORT` or `PROTO/ADDR:PORT`.
    pub fn parse(text: &str) -> Result<AllowRule, AllowRuleError> {
        let fail = || AllowRuleError {
            entry: text.to_string(),
        };
        let (protocol, rest) = text.split_once('/').ok_or_else(fail)?;
        if !matches!(protocol, "tcp" | "udp") {
            return Err(fail());
        }
        let (ip, port) = match rest.rsplit_once(':') {
            Some((address, port)) => {
                let address = address
                    .strip_prefix('[')
                    .and_then(|inner| inner.strip_suffix(']'))
                    .unwrap_or(address);
                (Some(address.parse().map_err(|_| fail())?), port)
            }
            None => (None, rest),
        };
        Ok(AllowRule {
            protocol: protocol.to_string(),
            ip,
            port: port.parse().map_err(|_| fail())?,
        })
    }
}
