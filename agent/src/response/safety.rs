//! The safety filter of active response: the addresses this host never
//! blocks, whatever the collector decides.
//!
//! Never blocked: loopback, unspecified and multicast addresses; the
//! collector's own addresses (resolved from the agent's collector URL), so
//! that the agent never cuts itself off from the decisions that would lift
//! a block; the CIDR blocks of `response.never_block`; and the peers of the
//! host's open SSH sessions (established TCP connections to a port sshd
//! listens on, read from `/proc/net/tcp{,6}`), so that an officer who
//! trips a rule from their own workstation is not cut off mid-session.
//!
//! The check itself ([`Guard::check`]) is a pure function of the address
//! and the addresses passed in; reading `/proc` and resolving the collector
//! are the thin IO parts beside it.

use std::collections::HashSet;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::Path;

use countywatch_wire::Cidr;

/// Why an update was not applied; the `reason` label of
/// `countywatch_agent_response_refused_total` and the text in the
/// acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A loopback address.
    Loopback,
    /// `0.0.0.0`, `::`, multicast or broadcast: never a single attacker.
    NotAHost,
    /// One of the collector's addresses.
    Collector,
    /// Inside a `response.never_block` block (the block is named).
    NeverBlock(String),
    /// The peer of an open SSH session on this host.
    SshSession,
    /// The update's expiry had already passed when it arrived.
    Expired,
    /// `response.backend: off`, or no firewall program found.
    BackendOff,
    /// The firewall program failed (its message).
    FirewallError(String),
}

impl Refusal {
    /// The bounded metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Loopback => "loopback",
            Refusal::NotAHost => "not_a_host",
            Refusal::Collector => "collector",
            Refusal::NeverBlock(_) => "never_block",
            Refusal::SshSession => "ssh_session",
            Refusal::Expired => "expired",
            Refusal::BackendOff => "backend_off",
            Refusal::FirewallError(_) => "firewall_error",
        }
    }

    /// Every label, so the counters exist at zero from the start.
    pub const LABELS: [&'static str; 8] = [
        "loopback",
        "not_a_host",
        "collector",
        "never_block",
        "ssh_session",
        "expired",
        "backend_off",
        "firewall_error",
    ];
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Loopback => write!(f, "loopback address"),
            Refusal::NotAHost => write!(f, "not a single host's address"),
            Refusal::Collector => write!(f, "the collector's address"),
            Refusal::NeverBlock(block) => write!(f, "in response.never_block ({block})"),
            Refusal::SshSession => write!(
                f,
                "peer of an open SSH session on this host; blocked once the session ends"
            ),
            Refusal::Expired => write!(f, "expired before it arrived"),
            Refusal::BackendOff => write!(f, "response.backend is off on this host"),
            Refusal::FirewallError(message) => write!(f, "firewall error: {message}"),
        }
    }
}

/// The fixed part of the filter: `never_block` and the collector.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    /// `response.never_block`, parsed (validated with the configuration).
    pub never_block: Vec<(String, Cidr)>,
    /// The collector's addresses.
    pub collector: Vec<IpAddr>,
}

impl Guard {
    /// Whether `address` may be blocked, given the peers of the open SSH
    /// sessions.
    pub fn check(&self, address: IpAddr, ssh_peers: &HashSet<IpAddr>) -> Result<(), Refusal> {
        let address = address.to_canonical();
        if address.is_loopback() {
            return Err(Refusal::Loopback);
        }
        let not_a_host = match address {
            IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
            IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
        };
        if not_a_host {
            return Err(Refusal::NotAHost);
        }
        if self
            .collector
            .iter()
            .any(|collector| collector.to_canonical() == address)
        {
            return Err(Refusal::Collector);
        }
        if let Some((text, _)) = self
            .never_block
            .iter()
            .find(|(_, block)| block.contains(address))
        {
            return Err(Refusal::NeverBlock(text.clone()));
        }
        if ssh_peers.contains(&address) {
            return Err(Refusal::SshSession);
        }
        Ok(())
    }
}

/// The collector's addresses: the host of its URL if it is an address,
/// else what the resolver says now. A name that does not resolve gives no
/// address (and is logged by the caller).
pub fn resolve_collector(host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
    if let Ok(address) = host.parse::<IpAddr>() {
        return Ok(vec![address]);
    }
    Ok((host, port)
        .to_socket_addrs()?
        .map(|socket| socket.ip().to_canonical())
        .collect())
}

/// TCP_ESTABLISHED and TCP_LISTEN in `/proc/net/tcp`.
const ESTABLISHED: &str = "01";
const LISTEN: &str = "0A";
/// sshd's port when its own listeners cannot be told apart (the agent runs
/// as its own user and cannot see sshd's file descriptors).
const SSH_PORT: u16 = 22;

/// One row of `/proc/net/tcp{,6}`: local port, remote address, state, inode.
struct TcpRow {
    local_port: u16,
    remote: IpAddr,
    state: String,
    inode: u64,
}

fn tcp_rows(text: &str) -> Vec<TcpRow> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            let (_, local_port) = crate::source::ports::parse_address(columns.get(1)?)?;
            let (remote, _) = crate::source::ports::parse_address(columns.get(2)?)?;
            Some(TcpRow {
                local_port,
                remote: remote.to_canonical(),
                state: columns.get(3)?.to_string(),
                inode: columns.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// The peers of established connections to sshd's ports, from the text of
/// `/proc/net/tcp` and `/proc/net/tcp6`. sshd's ports are port 22 and every
/// port whose listening socket `is_sshd_socket` says sshd holds.
pub fn ssh_peers_from(tables: &[String], is_sshd_socket: impl Fn(u64) -> bool) -> HashSet<IpAddr> {
    let rows: Vec<TcpRow> = tables.iter().flat_map(|text| tcp_rows(text)).collect();
    let mut ports: HashSet<u16> = rows
        .iter()
        .filter(|row| row.state == LISTEN && is_sshd_socket(row.inode))
        .map(|row| row.local_port)
        .collect();
    ports.insert(SSH_PORT);
    rows.iter()
        .filter(|row| row.state == ESTABLISHED && ports.contains(&row.local_port))
        .map(|row| row.remote)
        .collect()
}

/// The peers of this host's open SSH sessions, read from `procfs`.
pub fn ssh_peers(procfs: &Path) -> HashSet<IpAddr> {
    let tables: Vec<String> = ["net/tcp", "net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(procfs.join(table)).ok())
        .collect();
    let owners = crate::source::ports::socket_owners(procfs);
    ssh_peers_from(&tables, |inode| {
        owners.get(&inode).is_some_and(|(_, name)| {
            // OpenSSH 9.8 split sshd into sshd and sshd-session.
            name == "sshd" || name.starts_with("sshd-")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard {
            never_block: ["10.0.0.0/8", "2001:db8:1::/48"]
                .into_iter()
                .map(|text| (text.to_string(), Cidr::parse(text).unwrap()))
                .collect(),
            collector: vec!["192.0.2.10".parse().unwrap()],
        }
    }

    fn check(address: &str, ssh: &[&str]) -> Result<(), Refusal> {
        let peers = ssh.iter().map(|peer| peer.parse().unwrap()).collect();
        guard().check(address.parse().unwrap(), &peers)
    }

    #[test]
    fn loopback_collector_never_block_and_ssh_peers_are_refused() {
        assert_eq!(check("127.0.0.1", &[]), Err(Refusal::Loopback));
        assert_eq!(check("127.9.9.9", &[]), Err(Refusal::Loopback));
        assert_eq!(check("::1", &[]), Err(Refusal::Loopback));
        assert_eq!(check("::ffff:127.0.0.1", &[]), Err(Refusal::Loopback));
        assert_eq!(check("0.0.0.0", &[]), Err(Refusal::NotAHost));
        assert_eq!(check("::", &[]), Err(Refusal::NotAHost));
        assert_eq!(check("224.0.0.1", &[]), Err(Refusal::NotAHost));
        assert_eq!(check("255.255.255.255", &[]), Err(Refusal::NotAHost));
        assert_eq!(check("192.0.2.10", &[]), Err(Refusal::Collector));
        assert_eq!(check("::ffff:192.0.2.10", &[]), Err(Refusal::Collector));
        assert_eq!(
            check("10.200.1.1", &[]),
            Err(Refusal::NeverBlock("10.0.0.0/8".to_string()))
        );
        assert_eq!(
            check("2001:db8:1::5", &[]),
            Err(Refusal::NeverBlock("2001:db8:1::/48".to_string()))
        );
        assert_eq!(
            check("198.51.100.7", &["198.51.100.7"]),
            Err(Refusal::SshSession)
        );
        assert_eq!(check("198.51.100.8", &["198.51.100.7"]), Ok(()));
        assert_eq!(check("2001:db8:2::5", &[]), Ok(()));
        assert_eq!(check("192.0.2.11", &[]), Ok(()));
    }

    #[test]
    fn refusals_have_bounded_labels_and_readable_reasons() {
        for refusal in [
            Refusal::Loopback,
            Refusal::NotAHost,
            Refusal::Collector,
            Refusal::NeverBlock("x".into()),
            Refusal::SshSession,
            Refusal::Expired,
            Refusal::BackendOff,
            Refusal::FirewallError("x".into()),
        ] {
            assert!(Refusal::LABELS.contains(&refusal.label()), "{refusal:?}");
            assert!(!refusal.to_string().ends_with('.'), "{refusal}");
        }
    }

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 100 1 0000000000000000 100 0 0 10 0
   1: 00000000:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 200 1 0000000000000000 100 0 0 10 0
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 300 1 0000000000000000 100 0 0 10 0
   3: 0F02000A:0016 0A01010A:C350 01 00000000:00000000 02:0009A2B5 00000000     0        0 401 2 0000000000000000 20 4 30 10 -1
   4: 0F02000A:08AE 0B01010A:C351 01 00000000:00000000 02:0009A2B5 00000000     0        0 402 2 0000000000000000 20 4 30 10 -1
   5: 0F02000A:1F90 0C01010A:C352 01 00000000:00000000 02:0009A2B5 00000000     0        0 403 2 0000000000000000 20 4 30 10 -1
   6: 0F02000A:0016 0D01010A:C353 06 00000000:00000000 02:0009A2B5 00000000     0        0 0 2 0000000000000000 20 4 30 10 -1
   7: garbage
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 101 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0016 B80D0120000000000000000007000000:D431 01 00000000:00000000 00:00000000 00000000     0        0 404 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000F02000A:0016 0000000000000000FFFF00000E01010A:D432 01 00000000:00000000 00:00000000 00000000     0        0 405 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn ssh_peers_are_established_connections_to_sshd_ports() {
        let tables = [TCP.to_string(), TCP6.to_string()];
        // sshd holds the listener on 2222 (inode 200), not the one on 8080.
        let peers = ssh_peers_from(&tables, |inode| inode == 200);
        let mut peers: Vec<String> = peers.iter().map(IpAddr::to_string).collect();
        peers.sort();
        assert_eq!(
            peers,
            ["10.1.1.10", "10.1.1.11", "10.1.1.14", "2001:db8::7"],
            "port 22 always, 2222 because sshd listens there, never 8080 or TIME_WAIT"
        );
        let without_owners = ssh_peers_from(&tables, |_| false);
        assert!(!without_owners.contains(&"10.1.1.11".parse::<IpAddr>().unwrap()));
        assert!(without_owners.contains(&"10.1.1.10".parse::<IpAddr>().unwrap()));
    }

    #[test]
    fn a_collector_given_as_an_address_needs_no_resolver() {
        assert_eq!(
            resolve_collector("192.0.2.10", 9781).unwrap(),
            vec!["192.0.2.10".parse::<IpAddr>().unwrap()]
        );
        assert!(
            resolve_collector("localhost", 9781)
                .unwrap()
                .iter()
                .all(IpAddr::is_loopback)
        );
    }
}
