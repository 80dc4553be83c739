//! The nftables backend: the agent's own table `inet countywatch`, with one
//! set of IPv4 and one of IPv6 addresses (`flags timeout`, each element
//! carrying its own timeout, so the kernel itself lifts a block on time) and
//! an input-hook chain whose rules drop new connections from either set.
//!
//! Every change is one `nft -f -` script, which nftables applies as one
//! atomic transaction: a block and its timeout are in place together or
//! not at all. The agent never names another table, so the host's own
//! ruleset (firewalld's, Docker's, the admin's) is never touched, and
//! setting up again after a restart keeps the sets' elements: only the
//! agent's own chain is rebuilt.

use std::net::IpAddr;
use std::time::Duration;

use super::{Change, FirewallError, KernelEntry, run_program};

/// The table, set and chain names (docs/deploy.md cites them).
pub const TABLE: &str = "countywatch";
/// The IPv4 set.
pub const SET4: &str = "blocked4";
/// The IPv6 set.
pub const SET6: &str = "blocked6";

/// The script that creates the table, sets and chain when missing, and
/// rebuilds the chain's rules, leaving the sets' elements as they are.
pub fn setup_script() -> String {
    format!(
        "add table inet {TABLE}
add set inet {TABLE} {SET4} {{ type ipv4_addr; flags timeout; }}
add set inet {TABLE} {SET6} {{ type ipv6_addr; flags timeout; }}
add chain inet {TABLE} input {{ type filter hook input priority -10; policy accept; }}
flush chain inet {TABLE} input
add rule inet {TABLE} input ct state new ip saddr @{SET4} drop
add rule inet {TABLE} input ct state new ip6 saddr @{SET6} drop
"
    )
}

/// One script for a list of changes. A block is written as add, delete,
/// add: `add element` leaves an existing element's timeout alone, and
/// `delete element` fails on a missing one, so the first add makes sure
/// the element exists and the second sets the new timeout, all in one
/// transaction. An unblock is add then delete, for the same reason.
pub fn update_script(changes: &[Change]) -> String {
    let mut script = String::new();
    for change in changes {
        match change {
            Change::Block { address, timeout } => {
                let (set, address) = set_of(*address);
                let millis = timeout.as_millis().max(1);
                script.push_str(&format!(
                    "add element inet {TABLE} {set} {{ {address} timeout {millis}ms }}\n\
                     delete element inet {TABLE} {set} {{ {address} }}\n\
                     add element inet {TABLE} {set} {{ {address} timeout {millis}ms }}\n"
                ));
            }
            Change::Unblock { address } => {
                let (set, address) = set_of(*address);
                script.push_str(&format!(
                    "add element inet {TABLE} {set} {{ {address} timeout 1s }}\n\
                     delete element inet {TABLE} {set} {{ {address} }}\n"
                ));
            }
        }
    }
    script
}

/// The set an address goes into, and the address as nft writes it (an
/// IPv4-mapped IPv6 address goes into the IPv4 set).
fn set_of(address: IpAddr) -> (&'static str, IpAddr) {
    match address.to_canonical() {
        address @ IpAddr::V4(_) => (SET4, address),
        address @ IpAddr::V6(_) => (SET6, address),
    }
}

/// The elements of the agent's sets from `nft -j list table inet
/// countywatch`, with the time each has left. Anything else in the
/// document is ignored.
pub fn parse_list(json: &str) -> Vec<KernelEntry> {
    let Ok(document) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    for item in document
        .get("nftables")
        .and_then(|items| items.as_array())
        .into_iter()
        .flatten()
    {
        let Some(set) = item.get("set") else {
            continue;
        };
        let name = set.get("name").and_then(|name| name.as_str());
        if name != Some(SET4) && name != Some(SET6) {
            continue;
        }
        for element in set
            .get("elem")
            .and_then(|elements| elements.as_array())
            .into_iter()
            .flatten()
        {
            // An element with a timeout is an object; a bare address has
            // none (never added by the agent, but kept if an admin did).
            let (value, expires) = match element.get("elem") {
                Some(object) => (
                    object.get("val").and_then(|value| value.as_str()),
                    object.get("expires").and_then(|expires| expires.as_u64()),
                ),
                None => (element.as_str(), None),
            };
            if let Some(address) = value.and_then(|value| value.parse::<IpAddr>().ok()) {
                entries.push(KernelEntry {
                    address,
                    remaining: expires.map(Duration::from_secs),
                });
            }
        }
    }
    entries
}

/// Sets up the table (idempotent, keeps elements).
pub fn setup() -> Result<(), FirewallError> {
    run_program("nft", &["-f", "-"], Some(&setup_script())).map(|_| ())
}

/// Applies `changes` in one transaction.
pub fn apply(changes: &[Change]) -> Result<(), FirewallError> {
    if changes.is_empty() {
        return Ok(());
    }
    run_program("nft", &["-f", "-"], Some(&update_script(changes))).map(|_| ())
}

/// The elements of the agent's sets now in the kernel.
pub fn list() -> Result<Vec<KernelEntry>, FirewallError> {
    let json = run_program("nft", &["-j", "list", "table", "inet", TABLE], None)?;
    Ok(parse_list(&json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setup_script_names_only_the_agents_table_and_keeps_elements() {
        let script = setup_script();
        for line in script.lines() {
            assert!(
                line.contains(" inet countywatch"),
                "every statement names the agent's table: {line}"
            );
            assert!(
                !line.starts_with("flush table") && !line.starts_with("flush set"),
                "{line}"
            );
        }
        assert!(script.contains("flags timeout"));
        assert!(script.contains("ct state new ip saddr @blocked4 drop"));
        assert!(script.contains("ct state new ip6 saddr @blocked6 drop"));
    }

    #[test]
    fn blocks_and_unblocks_go_to_the_right_set_with_their_timeouts() {
        let script = update_script(&[
            Change::Block {
                address: "203.0.113.9".parse().unwrap(),
                timeout: Duration::from_millis(3_600_000),
            },
            Change::Block {
                address: "::ffff:198.51.100.1".parse().unwrap(),
                timeout: Duration::from_millis(1500),
            },
            Change::Unblock {
                address: "2001:db8::5".parse().unwrap(),
            },
        ]);
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(
            lines,
            [
                "add element inet countywatch blocked4 { 203.0.113.9 timeout 3600000ms }",
                "delete element inet countywatch blocked4 { 203.0.113.9 }",
                "add element inet countywatch blocked4 { 203.0.113.9 timeout 3600000ms }",
                "add element inet countywatch blocked4 { 198.51.100.1 timeout 1500ms }",
                "delete element inet countywatch blocked4 { 198.51.100.1 }",
                "add element inet countywatch blocked4 { 198.51.100.1 timeout 1500ms }",
                "add element inet countywatch blocked6 { 2001:db8::5 timeout 1s }",
                "delete element inet countywatch blocked6 { 2001:db8::5 }",
            ]
        );
        assert_eq!(update_script(&[]), "");
    }

    #[test]
    fn the_kernel_listing_is_read_from_nft_json() {
        // As `nft -j list table inet countywatch` (nftables 1.0.6) prints it.
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "countywatch", "handle": 1}}, {"set": {"family": "inet", "name": "blocked4", "table": "countywatch", "type": "ipv4_addr", "handle": 1, "flags": ["timeout"], "elem": [{"elem": {"val": "10.0.0.1", "timeout": 1, "expires": 1}}, {"elem": {"val": "10.0.0.2", "timeout": 5000, "expires": 4999}}]}}, {"set": {"family": "inet", "name": "blocked6", "table": "countywatch", "type": "ipv6_addr", "handle": 2, "flags": ["timeout"], "elem": [{"elem": {"val": "2001:db8::1", "timeout": 90, "expires": 89}}, "2001:db8::2"]}}, {"set": {"family": "inet", "name": "other", "table": "countywatch", "elem": ["192.0.2.1"]}}]}"#;
        let entries = parse_list(json);
        assert_eq!(
            entries,
            vec![
                KernelEntry {
                    address: "10.0.0.1".parse().unwrap(),
                    remaining: Some(Duration::from_secs(1)),
                },
                KernelEntry {
                    address: "10.0.0.2".parse().unwrap(),
                    remaining: Some(Duration::from_secs(4999)),
                },
                KernelEntry {
                    address: "2001:db8::1".parse().unwrap(),
                    remaining: Some(Duration::from_secs(89)),
                },
                KernelEntry {
                    address: "2001:db8::2".parse().unwrap(),
                    remaining: None,
                },
            ]
        );
        assert!(parse_list("not json").is_empty());
        assert!(parse_list("{\"nftables\": 3}").is_empty());
    }
}
