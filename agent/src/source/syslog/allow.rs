//! The senders the syslog receiver accepts: a list of CIDR blocks.
//! IPv4-mapped IPv6 senders (a dual-stack `[::]` listener) are matched as
//! the IPv4 addresses they are.

use std::net::IpAddr;

/// One block: `192.0.2.0/24`, `2001:db8::/32`, or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network address, host bits cleared.
    network: IpAddr,
    /// Prefix length in bits.
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/LEN` or `ADDR` (a single address).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("allow-list entry {text:?} is not an address or CIDR block"))?;
        let width = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= width)
                .ok_or_else(|| {
                    format!("allow-list entry {text:?} has a prefix length over {width}")
                })?,
            None => width,
        };
        Ok(Cidr {
            network: mask(address, prefix),
            prefix,
        })
    }

    /// Whether `address` is inside the block.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        address.is_ipv4() == self.network.is_ipv4() && mask(address, self.prefix) == self.network
    }
}

/// `address` with the bits after `prefix` cleared.
fn mask(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & keep).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & keep).into())
        }
    }
}

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

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "host.example",
            "10.0.0.0/x",
            "10.0.0/8",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Cidr::parse("10.9.8.7/8"), Cidr::parse("10.0.0.0/8"));
    }
}
