//! The senders the syslog receiver accepts: a list of CIDR blocks
//! ([`Cidr`], shared with detection rules). IPv4-mapped IPv6 senders (a
//! dual-stack `[::]` listener) are matched as the IPv4 addresses they are.

use std::net::IpAddr;

use countywatch_wire::Cidr;

/// The accepted senders.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    /// The blocks; a sender inside any of them is accepted.
    blocks: Vec<Cidr>,
}

impl AllowList {
    /// The list of the entries that parse (the configuration was validated).
    pub fn new<'a>(entries: impl IntoIterator<Item = &'a str>) -> AllowList {
        AllowList {
            blocks: entries
                .into_iter()
                .filter_map(|entry| Cidr::parse(entry).ok())
                .collect(),
        }
    }

    /// Whether `sender` may send.
    pub fn allows(&self, sender: IpAddr) -> bool {
        self.blocks.iter().any(|block| block.contains(sender))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_and_single_addresses() {
        let list = AllowList::new(
            ["192.0.2.0/24", "10.1.1.1", "2001:db8::/32", "0.0.0.0/0"]
                .into_iter()
                .take(3),
        );
        assert!(list.allows(ip("192.0.2.200")));
        assert!(!list.allows(ip("192.0.3.1")));
        assert!(list.allows(ip("10.1.1.1")));
        assert!(!list.allows(ip("10.1.1.2")));
        assert!(list.allows(ip("2001:db8:ffff::1")));
        assert!(!list.allows(ip("2001:db9::1")));
        // A dual-stack listener sees IPv4 senders as mapped addresses.
        assert!(list.allows(ip("::ffff:192.0.2.7")));
        let everyone = AllowList::new(["0.0.0.0/0", "::/0"]);
        assert!(everyone.allows(ip("203.0.113.1")) && everyone.allows(ip("::1")));
        assert!(!AllowList::default().allows(ip("127.0.0.1")));
    }
}
