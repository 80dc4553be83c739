//! Address blocks (`10.0.0.0/8`, `2001:db8::/32`, or one address), as both
//! daemons' configurations write them: the syslog receiver's allow-list on
//! the agent, `src_ip in [...]` conditions and allow-lists in detection
//! rules on the collector. IPv4-mapped IPv6 addresses (what a dual-stack
//! `[::]` socket reports for an IPv4 peer) match as the IPv4 addresses
//! they are, on both sides of the test.

use std::fmt;
use std::net::IpAddr;

/// One block, host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network address.
    network: IpAddr,
    /// Prefix length in bits.
    prefix: u8,
}

/// Why a text is not a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CidrError {
    /// The part before any `/` is not an IP address.
    NotAnAddress,
    /// The prefix length is not a number within the address's width.
    BadPrefix {
        /// 32 or 128.
        width: u8,
    },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::NotAnAddress => write!(f, "is not an address or CIDR block"),
            CidrError::BadPrefix { width } => {
                write!(
                    f,
                    "has a prefix length that is not a number from 0 to {width}"
                )
            }
        }
    }
}

impl Cidr {
    /// Parses `ADDR/LEN` or `ADDR` (a single address); spaces around either
    /// part are ignored.
    pub fn parse(text: &str) -> Result<Cidr, CidrError> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address = address
            .trim()
            .parse::<IpAddr>()
            .map_err(|_| CidrError::NotAnAddress)?
            .to_canonical();
        let width: u8 = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= width)
                .ok_or(CidrError::BadPrefix { width })?,
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
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & keep).into())
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & keep).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_single_addresses_and_mapped_addresses() {
        let block = Cidr::parse("192.0.2.0/24").unwrap();
        assert!(block.contains(ip("192.0.2.200")));
        assert!(!block.contains(ip("192.0.3.1")));
        // A dual-stack listener sees IPv4 senders as mapped addresses.
        assert!(block.contains(ip("::ffff:192.0.2.7")));
        let one = Cidr::parse(" 10.1.1.1 ").unwrap();
        assert!(one.contains(ip("10.1.1.1")) && !one.contains(ip("10.1.1.2")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("192.0.2.1")));
        let everyone = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(everyone.contains(ip("203.0.113.1")) && !everyone.contains(ip("::1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("::1")));
        assert_eq!(Cidr::parse("10.9.8.7/8"), Cidr::parse("10.0.0.0/8"));
    }

    #[test]
    fn bad_blocks_say_why() {
        for bad in ["", "host.example", "10.0.0/8", "10.0.0.0.0"] {
            assert_eq!(Cidr::parse(bad), Err(CidrError::NotAnAddress), "{bad}");
        }
        for (bad, width) in [("10.0.0.0/33", 32), ("::/129", 128), ("10.0.0.0/x", 32)] {
            assert_eq!(
                Cidr::parse(bad),
                Err(CidrError::BadPrefix { width }),
                "{bad}"
            );
        }
    }
}
