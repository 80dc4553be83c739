//! The iptables backend, for hosts without nftables (CentOS 7): two ipsets
//! of the agent's own, `countywatch4` and `countywatch6` (`hash:ip` with
//! timeout support, each element carrying its own timeout in seconds), and
//! one rule in each of iptables' and ip6tables' INPUT chains dropping new
//! connections from its set.
//!
//! The sets change through one `ipset -exist restore` script per update
//! (`-exist` makes re-adding an element set its new timeout, and deleting
//! a missing one a no-op). The rules are checked with `-C` and inserted
//! only when missing, so a `firewall-cmd --reload` that removed them is
//! repaired at the next reconciliation; no other rule or set is touched.

use std::net::IpAddr;
use std::time::Duration;

use super::{Change, FirewallError, KernelEntry, run_program};

/// The IPv4 set.
pub const SET4: &str = "countywatch4";
/// The IPv6 set.
pub const SET6: &str = "countywatch6";
/// ipset's largest timeout, in seconds.
const MAX_TIMEOUT_SECONDS: u64 = 2_147_483;

/// The `ipset restore` lines that create both sets when missing.
pub fn create_script() -> String {
    format!(
        "create {SET4} hash:ip family inet timeout 0\ncreate {SET6} hash:ip family inet6 timeout 0\n"
    )
}

/// The `ipset restore` lines for a list of changes.
pub fn update_script(changes: &[Change]) -> String {
    let mut script = String::new();
    for change in changes {
        match change {
            Change::Block { address, timeout } => {
                let (set, address) = set_of(*address);
                let seconds = timeout
                    .as_millis()
                    .div_ceil(1000)
                    .clamp(1, u128::from(MAX_TIMEOUT_SECONDS));
                script.push_str(&format!("add {set} {address} timeout {seconds}\n"));
            }
            Change::Unblock { address } => {
                let (set, address) = set_of(*address);
                script.push_str(&format!("del {set} {address}\n"));
            }
        }
    }
    script
}

fn set_of(address: IpAddr) -> (&'static str, IpAddr) {
    match address.to_canonical() {
        address @ IpAddr::V4(_) => (SET4, address),
        address @ IpAddr::V6(_) => (SET6, address),
    }
}

/// The rule's arguments after `-C`/`-I INPUT` for one family.
fn rule(set: &str) -> [&str; 10] {
    [
        "-m",
        "conntrack",
        "--ctstate",
        "NEW",
        "-m",
        "set",
        "--match-set",
        set,
        "src",
        "-j",
    ]
}

/// Creates the sets and inserts the rules where missing.
pub fn setup() -> Result<(), FirewallError> {
    run_program("ipset", &["-exist", "restore"], Some(&create_script()))?;
    for (program, set) in [("iptables", SET4), ("ip6tables", SET6)] {
        let mut check = vec!["-w", "-C", "INPUT"];
        check.extend_from_slice(&rule(set));
        check.push("DROP");
        if run_program(program, &check, None).is_err() {
            let mut insert = vec!["-w", "-I", "INPUT", "1"];
            insert.extend_from_slice(&rule(set));
            insert.push("DROP");
            run_program(program, &insert, None)?;
        }
    }
    Ok(())
}

/// Applies `changes` in one `ipset restore`.
pub fn apply(changes: &[Change]) -> Result<(), FirewallError> {
    if changes.is_empty() {
        return Ok(());
    }
    run_program(
        "ipset",
        &["-exist", "restore"],
        Some(&update_script(changes)),
    )
    .map(|_| ())
}

/// The elements of the agent's sets now in the kernel.
pub fn list() -> Result<Vec<KernelEntry>, FirewallError> {
    let mut entries = Vec::new();
    for set in [SET4, SET6] {
        let text = run_program("ipset", &["list", set, "-output", "save"], None)?;
        entries.extend(parse_save(&text));
    }
    Ok(entries)
}

/// Elements from `ipset list SET -output save`: `add SET ADDRESS timeout N`.
pub fn parse_save(text: &str) -> Vec<KernelEntry> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next() != Some("add") {
                return None;
            }
            let set = words.next()?;
            if set != SET4 && set != SET6 {
                return None;
            }
            let address = words.next()?.parse::<IpAddr>().ok()?;
            let remaining = match (words.next(), words.next()) {
                (Some("timeout"), Some(seconds)) => {
                    seconds.parse::<u64>().ok().map(Duration::from_secs)
                }
                _ => None,
            };
            Some(KernelEntry { address, remaining })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipset_scripts_round_timeouts_up_to_seconds_and_cap_them() {
        let script = update_script(&[
            Change::Block {
                address: "203.0.113.9".parse().unwrap(),
                timeout: Duration::from_millis(1500),
            },
            Change::Block {
                address: "2001:db8::5".parse().unwrap(),
                timeout: Duration::from_secs(400 * 86_400),
            },
            Change::Unblock {
                address: "::ffff:198.51.100.1".parse().unwrap(),
            },
        ]);
        assert_eq!(
            script,
            "add countywatch4 203.0.113.9 timeout 2\n\
             add countywatch6 2001:db8::5 timeout 2147483\n\
             del countywatch4 198.51.100.1\n"
        );
        assert!(create_script().contains("hash:ip family inet6 timeout 0"));
    }

    #[test]
    fn the_save_listing_gives_addresses_and_time_left() {
        let text = "create countywatch4 hash:ip family inet hashsize 1024 maxelem 65536 timeout 0\n\
                    add countywatch4 10.0.0.1 timeout 3599\n\
                    add countywatch4 10.0.0.2\n\
                    add other 10.0.0.3 timeout 5\n\
                    add countywatch4 nonsense timeout 5\n";
        assert_eq!(
            parse_save(text),
            vec![
                KernelEntry {
                    address: "10.0.0.1".parse().unwrap(),
                    remaining: Some(Duration::from_secs(3599)),
                },
                KernelEntry {
                    address: "10.0.0.2".parse().unwrap(),
                    remaining: None,
                },
            ]
        );
    }
}
