//! A network namespace of the test's own, joined to the root namespace by a
//! veth pair with a /30 on each end: the far office or the network device
//! that a test needs on an address other than loopback, without sending a
//! packet anywhere but to itself. Removed on drop.
//!
//! Needs root and iproute2 (`tests/run.sh` installs it).

use std::process::Command;

/// A namespace and the veth pair to it.
pub struct NetNs {
    /// The namespace's name, for `ip netns exec`.
    pub name: String,
    /// The root namespace's end of the veth pair.
    host_end: String,
}

/// Runs `ip` with `arguments` and fails the test if it fails.
pub fn ip(arguments: &[&str]) {
    let status = Command::new("ip")
        .args(arguments)
        .status()
        .expect("iproute2 is installed by tests/run.sh");
    assert!(status.success(), "ip {arguments:?} failed");
}

/// Runs `ip` with `arguments` inside namespace `name`.
fn ip_inside(name: &str, arguments: &[&str]) {
    let mut all = vec!["netns", "exec", name, "ip"];
    all.extend_from_slice(arguments);
    ip(&all);
}

impl NetNs {
    /// Creates namespace `cw-TAG-PID` with `inner_address`/30 inside and
    /// `host_address`/30 on the root end, both up, and loopback up inside.
    /// `tag` (at most four characters, to keep interface names within
    /// Linux's fifteen) keeps tests in one process apart.
    pub fn new(tag: &str, host_address: &str, inner_address: &str) -> NetNs {
        assert!(
            tag.len() <= 4,
            "the tag {tag} makes interface names too long"
        );
        let id = std::process::id() % 100_000;
        let namespace = NetNs {
            name: format!("cw-{tag}-{id}"),
            host_end: format!("cw{tag}h{id}"),
        };
        let inner_end = format!("cw{tag}i{id}");
        ip(&["netns", "add", &namespace.name]);
        ip(&[
            "link",
            "add",
            &namespace.host_end,
            "type",
            "veth",
            "peer",
            "name",
            &inner_end,
        ]);
        ip(&["link", "set", &inner_end, "netns", &namespace.name]);
        ip(&[
            "addr",
            "add",
            &format!("{host_address}/30"),
            "dev",
            &namespace.host_end,
        ]);
        ip(&["link", "set", &namespace.host_end, "up"]);
        namespace.ip(&[
            "addr",
            "add",
            &format!("{inner_address}/30"),
            "dev",
            &inner_end,
        ]);
        namespace.ip(&["link", "set", &inner_end, "up"]);
        namespace.ip(&["link", "set", "lo", "up"]);
        namespace
    }

    /// Runs `ip` with `arguments` inside the namespace.
    pub fn ip(&self, arguments: &[&str]) {
        ip_inside(&self.name, arguments);
    }

    /// The command prefix that runs a program inside the namespace.
    pub fn exec(&self) -> [&str; 4] {
        ["ip", "netns", "exec", &self.name]
    }

    /// Sets the root end of the link up or down: the cable cut.
    pub fn set_link(&self, up: bool) {
        ip(&[
            "link",
            "set",
            &self.host_end,
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_end])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A second namespace joined to an existing one (not to the root) by a
/// veth pair: the attacker's host beside a server's namespace. Its end
/// carries several addresses, so a test can connect from one address and
/// then from another. Removed on drop (deleting the namespace deletes the
/// pair).
pub struct LinkedNs {
    /// The namespace's name, for `ip netns exec`.
    pub name: String,
}

impl LinkedNs {
    /// Creates namespace `cw-TAG-PID` joined to `to` by a veth pair:
    /// `near_address`/24 on `to`'s end, every one of `far_addresses`/24 on
    /// the new namespace's end, both up, and loopback up inside.
    pub fn new(tag: &str, to: &NetNs, near_address: &str, far_addresses: &[&str]) -> LinkedNs {
        assert!(
            tag.len() <= 4,
            "the tag {tag} makes interface names too long"
        );
        let id = std::process::id() % 100_000;
        let namespace = LinkedNs {
            name: format!("cw-{tag}-{id}"),
        };
        let (near_end, far_end) = (format!("cw{tag}n{id}"), format!("cw{tag}f{id}"));
        ip(&["netns", "add", &namespace.name]);
        ip(&[
            "link", "add", &near_end, "type", "veth", "peer", "name", &far_end,
        ]);
        ip(&["link", "set", &near_end, "netns", &to.name]);
        ip(&["link", "set", &far_end, "netns", &namespace.name]);
        to.ip(&[
            "addr",
            "add",
            &format!("{near_address}/24"),
            "dev",
            &near_end,
        ]);
        to.ip(&["link", "set", &near_end, "up"]);
        for address in far_addresses {
            namespace.ip(&["addr", "add", &format!("{address}/24"), "dev", &far_end]);
        }
        namespace.ip(&["link", "set", &far_end, "up"]);
        namespace.ip(&["link", "set", "lo", "up"]);
        namespace
    }

    /// Runs `ip` with `arguments` inside the namespace.
    pub fn ip(&self, arguments: &[&str]) {
        ip_inside(&self.name, arguments);
    }

    /// The command prefix that runs a program inside the namespace.
    pub fn exec(&self) -> [&str; 4] {
        ["ip", "netns", "exec", &self.name]
    }
}

impl Drop for LinkedNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
