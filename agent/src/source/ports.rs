//! Listening sockets: a periodic scan of `/proc/net/{tcp,tcp6,udp,udp6}`
//! and an event when a listener appears (`port_opened`) or goes away
//! (`port_closed`), with the owning process found through `/proc/PID/fd`.
//!
//! A listener is identified by protocol, address and port. Listeners on the
//! allow-list produce no events. The set of known listeners is persisted
//! with the checkpoint, so a restart neither re-reports every listener nor
//! misses one that appeared while the agent was down.
//!
//! What counts as a listener: a TCP socket in LISTEN. A UDP socket has no
//! such state: a DNS resolver, an NTP client or the agent's own SNMP
//! poller binds an unconnected socket to an ephemeral port just like a
//! server binds its port. So an unconnected UDP socket counts only when
//! its port is outside the kernel's ephemeral range
//! (`/proc/sys/net/ipv4/ip_local_port_range`), or once it has stayed bound
//! longer than `sources.ports.udp_grace` (default 5m): client sockets come
//! and go within seconds. The agent's own sockets (its syslog receiver,
//! its pollers) are never reported.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use countywatch_wire::{Event, EventFields, EventKind, EventSource};
use serde::{Deserialize, Serialize};

use super::port_allow::AllowRule;
use countywatch_config::config_file::{Problems, Spanned};
use countywatch_config::duration::PromDuration;

use super::{Position, Source, SourceSection, StartContext, StartError};

/// The protocol tables scanned, by file name under `/proc/net`.
pub const PROTOCOLS: [&str; 4] = ["tcp", "tcp6", "udp", "udp6"];

/// The kernel's default ephemeral range, used when
/// `sys/net/ipv4/ip_local_port_range` cannot be read.
pub const DEFAULT_EPHEMERAL: (u16, u16) = (32_768, 60_999);

/// One listening socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// `tcp`, `tcp6`, `udp` or `udp6`.
    pub protocol: String,
    /// The bound address.
    pub ip: IpAddr,
    /// The bound port.
    pub port: u16,
    /// The owning user id.
    pub uid: u32,
    /// The socket inode, which links it to a process.
    pub inode: u64,
    /// The owning process, when it could be found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// That process's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
}

impl Listener {
    /// The identity of a listener: `tcp/0.0.0.0:22`, `tcp6/[::]:22`.
    pub fn key(&self) -> String {
        match self.ip {
            IpAddr::V4(ip) => format!("{}/{ip}:{}", self.protocol, self.port),
            IpAddr::V6(ip) => format!("{}/[{ip}]:{}", self.protocol, self.port),
        }
    }
}

impl AllowRule {
    /// Whether this entry covers `listener` (the rule's own file,
    /// `port_allow.rs`, knows no listeners, so that the configuration's
    /// checks can parse rules without importing the source).
    fn allows(&self, listener: &Listener) -> bool {
        listener.protocol.starts_with(&self.protocol)
            && listener.port == self.port
            && self.ip.is_none_or(|ip| ip == listener.ip)
    }
}

/// Parses one `/proc/net/{tcp,udp}{,6}` table into its listening sockets.
/// Malformed rows are skipped.
pub fn parse(protocol: &str, text: &str) -> Vec<Listener> {
    let udp = protocol.starts_with("udp");
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut columns = line.split_whitespace();
            let _slot = columns.next()?;
            let local = columns.next()?;
            let remote = columns.next()?;
            let state = columns.next()?;
            // TCP_LISTEN is 0A; an unconnected UDP socket is 07 (TCP_CLOSE)
            // with no remote port.
            let listening = if udp {
                state == "07" && remote.ends_with(":0000")
            } else {
                state == "0A"
            };
            if !listening {
                return None;
            }
            let uid = columns.nth(3)?.parse().ok()?;
            let inode = columns.nth(1)?.parse().ok()?;
            let (ip, port) = parse_address(local)?;
            Some(Listener {
                protocol: protocol.to_string(),
                ip,
                port,
                uid,
                inode,
                pid: None,
                process: None,
            })
        })
        .collect()
}

/// `0100007F:0016` or the 32-digit IPv6 form. The kernel prints the address
/// as host-order 32-bit words, so each word's bytes are reversed.
pub(crate) fn parse_address(text: &str) -> Option<(IpAddr, u16)> {
    let (address, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match address.len() {
        8 => {
            let word = u32::from_str_radix(address, 16).ok()?;
            IpAddr::V4(Ipv4Addr::from(word.swap_bytes()))
        }
        32 => {
            let mut bytes = [0u8; 16];
            for (index, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(address.get(index * 8..index * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.swap_bytes().to_be_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some((ip, port))
}

/// Counters the ports source reports.
#[derive(Debug, Default)]
pub struct PortsStats {
    /// Tables that could not be read.
    pub read_errors: AtomicU64,
}

/// How the ports source tells listeners from other sockets.
#[derive(Clone, Debug)]
pub struct PortsOptions {
    /// Listeners that produce no events.
    pub allow: Vec<AllowRule>,
    /// How long an unconnected UDP socket on an ephemeral port must stay
    /// bound to count as a listener, in milliseconds.
    pub udp_grace_ms: i64,
    /// The agent's own process id, whose sockets are never reported
    /// (`None` in tests that watch their own sockets).
    pub own_pid: Option<u32>,
}

/// The listening ports source.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortsSourceConfig {
    /// Whether the source runs.
    pub enabled: bool,
    /// Listeners that produce no events: `tcp/22` (any address),
    /// `tcp/127.0.0.1:5432`, `udp/[::1]:53`. `tcp` and `udp` cover both
    /// IPv4 and IPv6.
    pub allow: Vec<Spanned<String>>,
    /// How long an unconnected UDP socket bound to a port in the kernel's
    /// ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`) must stay
    /// bound before it counts as a listener; DNS and NTP clients' sockets
    /// live seconds. UDP ports outside the range count at once.
    pub udp_grace: PromDuration,
}

impl Default for PortsSourceConfig {
    fn default() -> Self {
        PortsSourceConfig {
            enabled: true,
            allow: Vec::new(),
            udp_grace: PromDuration(Duration::from_secs(300)),
        }
    }
}

impl SourceSection for PortsSourceConfig {
    fn validate(&self, problems: &mut Problems) {
        for rule in &self.allow {
            if let Err(error) = AllowRule::parse(&rule.value) {
                problems.at(rule, error.to_string());
            }
        }
    }
}

/// Position key of the known listeners (a list of [`Listener`]).
pub const POSITION: &str = "ports";

/// Starts the ports source when `sources.ports` enables it.
pub fn start(context: &mut StartContext<'_>) -> Result<Option<Box<dyn Source>>, StartError> {
    let settings = &context.sources.ports;
    if !settings.enabled {
        return Ok(None);
    }
    let options = PortsOptions {
        allow: settings
            .allow
            .iter()
            .filter_map(|rule| AllowRule::parse(&rule.value).ok())
            .collect(),
        udp_grace_ms: i64::try_from(settings.udp_grace.get().as_millis()).unwrap_or(i64::MAX),
        own_pid: Some(std::process::id()),
    };
    Ok(Some(Box::new(PortsSource::new(
        context.procfs.to_path_buf(),
        options,
        context.position(POSITION),
    ))))
}

impl Source for PortsSource {
    fn poll(&mut self, now_ms: i64, _budget: usize, out: &mut Vec<Event>) -> Option<Position> {
        let known = PortsSource::poll(self, now_ms, out);
        Some(Position::of(POSITION, &known))
    }

    fn read_errors(&self) -> Option<u64> {
        Some(self.stats.read_errors.load(Ordering::Relaxed))
    }
}

/// The ports source.
pub struct PortsSource {
    /// procfs root.
    procfs: PathBuf,
    /// What counts and what is reported.
    options: PortsOptions,
    /// Listeners as of the last scan, by key (ahead of the committed set).
    known: Option<BTreeMap<String, Listener>>,
    /// Unconnected UDP sockets on ephemeral ports not yet counted, by key
    /// and inode (a rebound socket starts afresh): when first seen.
    udp_pending: HashMap<(String, u64), i64>,
    /// Counters.
    pub stats: PortsStats,
}

impl PortsSource {
    /// A source reading under `procfs`, starting from the persisted set
    /// (`None`: the first scan becomes the baseline silently).
    pub fn new(procfs: PathBuf, options: PortsOptions, known: Option<Vec<Listener>>) -> Self {
        PortsSource {
            procfs,
            options,
            known: known.map(|listeners| {
                listeners
                    .into_iter()
                    .map(|listener| (listener.key(), listener))
                    .collect()
            }),
            udp_pending: HashMap::new(),
            stats: PortsStats::default(),
        }
    }

    /// Scans, appends an event per change, and returns the set to persist.
    pub fn poll(&mut self, now_ms: i64, out: &mut Vec<Event>) -> Vec<Listener> {
        let mut current = BTreeMap::new();
        let ephemeral = ephemeral_range(&self.procfs);
        let own = self
            .options
            .own_pid
            .map(|pid| process_sockets(&self.procfs.join(pid.to_string())))
            .unwrap_or_default();
        let mut own_keys = Vec::new();
        let mut pending = HashMap::new();
        for protocol in PROTOCOLS {
            let path = self.procfs.join("net").join(protocol);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    for listener in parse(protocol, &text) {
                        let key = listener.key();
                        if own.contains(&listener.inode) {
                            own_keys.push(key);
                            continue;
                        }
                        if self.options.allow.iter().any(|rule| rule.allows(&listener)) {
                            continue;
                        }
                        let udp_client_like = protocol.starts_with("udp")
                            && (ephemeral.0..=ephemeral.1).contains(&listener.port);
                        if udp_client_like {
                            let id = (key.clone(), listener.inode);
                            let since = self.udp_pending.get(&id).copied().unwrap_or(now_ms);
                            pending.insert(id, since);
                            // The first scan is the silent baseline: what
                            // is bound then counts at once.
                            let known_already = self
                                .known
                                .as_ref()
                                .is_none_or(|known| known.contains_key(&key));
                            if !known_already
                                && now_ms.saturating_sub(since) < self.options.udp_grace_ms
                            {
                                continue;
                            }
                        }
                        current.insert(key, listener);
                    }
                }
                // IPv6 may be disabled; that is not an error.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    self.stats.read_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(path = %path.display(), %error, "cannot read socket table");
                }
            }
        }
        self.udp_pending = pending;
        let Some(mut known) = self.known.take() else {
            self.known = Some(current);
            return self.persisted();
        };
        // A listener of ours known from before (an agent that reported its
        // own sockets) leaves silently.
        for key in &own_keys {
            if !current.contains_key(key) {
                known.remove(key);
            }
        }
        let opened: Vec<String> = current
            .keys()
            .filter(|key| !known.contains_key(*key))
            .cloned()
            .collect();
        if !opened.is_empty() {
            let owners = socket_owners(&self.procfs);
            for key in &opened {
                if let Some(listener) = current.get_mut(key)
                    && let Some((pid, process)) = owners.get(&listener.inode)
                {
                    listener.pid = Some(*pid);
                    listener.process = Some(process.clone());
                }
            }
        }
        for (key, listener) in &known {
            if !current.contains_key(key) {
                out.push(event(now_ms, EventKind::PortClosed, listener));
            }
        }
        for key in &opened {
            if let Some(listener) = current.get(key) {
                out.push(event(now_ms, EventKind::PortOpened, listener));
            }
        }
        // Keep the owner found when the listener opened.
        for (key, listener) in current.iter_mut() {
            if let Some(old) = known.get(key) {
                listener.pid = listener.pid.or(old.pid);
                listener.process = listener.process.take().or_else(|| old.process.clone());
            }
        }
        self.known = Some(current);
        self.persisted()
    }

    fn persisted(&self) -> Vec<Listener> {
        self.known
            .as_ref()
            .map(|known| known.values().cloned().collect())
            .unwrap_or_default()
    }
}

fn event(now_ms: i64, kind: EventKind, listener: &Listener) -> Event {
    let mut event = Event::new(now_ms, EventSource::Ports, kind);
    event.raw = format!(
        "{} {} uid={}{}",
        kind.as_str(),
        listener.key(),
        listener.uid,
        listener
            .process
            .as_ref()
            .map(|process| format!(" process={process}"))
            .unwrap_or_default()
    );
    event.fields = EventFields {
        protocol: Some(listener.protocol.clone()),
        local_ip: Some(listener.ip),
        local_port: Some(listener.port),
        uid: Some(listener.uid),
        pid: listener.pid,
        process: listener.process.clone(),
        ..EventFields::default()
    };
    event
}

/// The kernel's ephemeral port range (`sys/net/ipv4/ip_local_port_range`,
/// `32768\t60999`), or [`DEFAULT_EPHEMERAL`] when it cannot be read.
fn ephemeral_range(procfs: &Path) -> (u16, u16) {
    std::fs::read_to_string(procfs.join("sys/net/ipv4/ip_local_port_range"))
        .ok()
        .and_then(|text| parse_port_range(&text))
        .unwrap_or(DEFAULT_EPHEMERAL)
}

/// `LOW<whitespace>HIGH`.
fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let mut numbers = text.split_whitespace().map(str::parse::<u16>);
    let low = numbers.next()?.ok()?;
    let high = numbers.next()?.ok()?;
    (low <= high).then_some((low, high))
}

/// The socket inodes a process holds, from `PROCESS/fd/*` links.
fn process_sockets(process: &Path) -> std::collections::HashSet<u64> {
    let Ok(fds) = std::fs::read_dir(process.join("fd")) else {
        return std::collections::HashSet::new();
    };
    fds.flatten()
        .filter_map(|fd| socket_inode(&fd.path()))
        .collect()
}

/// The inode of a `socket:[INODE]` fd link.
fn socket_inode(fd: &Path) -> Option<u64> {
    let target = std::fs::read_link(fd).ok()?;
    target
        .to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Socket inode to (pid, process name), from `/proc/PID/fd/*` links
/// (`socket:[INODE]`). Processes we may not inspect are skipped.
pub(crate) fn socket_owners(procfs: &Path) -> HashMap<u64, (u32, String)> {
    let mut owners = HashMap::new();
    let Ok(processes) = std::fs::read_dir(procfs) else {
        return owners;
    };
    for process in processes.flatten() {
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Some(inode) = socket_inode(&fd.path()) {
                owners.entry(inode).or_insert_with(|| {
                    let name = std::fs::read_to_string(process.path().join("comm"))
                        .map(|name| name.trim_end().to_string())
                        .unwrap_or_default();
                    (pid, name)
                });
            }
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21391 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   112        0 23456 1 0000000000000000 100 0 0 10 0
   2: 0F02000A:0016 0A01010A:C350 01 00000000:00000000 02:0009A2B5 00000000     0        0 34567 2 0000000000000000 20 4 30 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21393 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0277 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21394 1 0000000000000000 100 0 0 10 0
";
    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   102        0 18200 2 0000000000000000 0
  101: 0F02000A:A1B2 08080808:0035 01 00000000:00000000 00:00000000 00000000  1000        0 18201 2 0000000000000000 0
";

    /// Options for a test watching its own sockets, with a 5-minute grace.
    fn options(allow: Vec<AllowRule>) -> PortsOptions {
        PortsOptions {
            allow,
            udp_grace_ms: 300_000,
            own_pid: None,
        }
    }

    /// A procfs tree with `udp` as its only socket table and an ephemeral
    /// range of 40000-50000.
    fn fixture_procfs(udp: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("net")).unwrap();
        std::fs::create_dir_all(dir.path().join("sys/net/ipv4")).unwrap();
        std::fs::write(dir.path().join("net/udp"), udp).unwrap();
        std::fs::write(
            dir.path().join("sys/net/ipv4/ip_local_port_range"),
            "40000\t50000\n",
        )
        .unwrap();
        dir
    }

    const UDP_HEADER: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n";
    /// An NTP client's unconnected socket on 0.0.0.0:45000 (ephemeral).
    const UDP_CLIENT: &str = "  7: 00000000:AFC8 00000000:0000 07 00000000:00000000 00:00000000 00000000   105        0 5001 2 0000000000000000 0\n";
    /// A resolver's connected socket (state 01, remote 8.8.8.8:53).
    const UDP_CONNECTED: &str = "  8: 0F02000A:A1B2 08080808:0035 01 00000000:00000000 00:00000000 00000000  1000        0 5002 2 0000000000000000 0\n";
    /// A server on 0.0.0.0:5353, outside the ephemeral range.
    const UDP_SERVER: &str = "  9: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000   107        0 5003 2 0000000000000000 0\n";

    fn opened_ports(events: &[Event]) -> Vec<u16> {
        events
            .iter()
            .filter(|event| event.kind == EventKind::PortOpened)
            .filter_map(|event| event.fields.local_port)
            .collect()
    }

    #[test]
    fn udp_client_sockets_count_only_outside_the_ephemeral_range_or_after_the_grace() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32_768, 60_999)));
        assert_eq!(parse_port_range("9 1"), None);
        let procfs = fixture_procfs(UDP_HEADER);
        let mut source = PortsSource::new(procfs.path().into(), options(Vec::new()), None);
        let mut events = Vec::new();
        source.poll(0, &mut events);
        let table = format!("{UDP_HEADER}{UDP_CLIENT}{UDP_CONNECTED}{UDP_SERVER}");
        std::fs::write(procfs.path().join("net/udp"), &table).unwrap();
        source.poll(1_000, &mut events);
        assert_eq!(opened_ports(&events), vec![5353], "the server at once");
        events.clear();
        source.poll(300_000, &mut events);
        assert!(events.is_empty(), "the client within its grace: {events:?}");
        source.poll(301_000, &mut events);
        assert_eq!(opened_ports(&events), vec![45_000], "bound past the grace");
        // A client socket closed within its grace makes no event at all.
        let next = UDP_CLIENT
            .replace("AFC8", "AFC9")
            .replace(" 5001 ", " 5004 ");
        std::fs::write(procfs.path().join("net/udp"), format!("{table}{next}")).unwrap();
        events.clear();
        source.poll(302_000, &mut events);
        std::fs::write(procfs.path().join("net/udp"), &table).unwrap();
        source.poll(303_000, &mut events);
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn udp_sockets_bound_at_the_first_scan_are_the_baseline() {
        let procfs = fixture_procfs(&format!("{UDP_HEADER}{UDP_CLIENT}"));
        let mut source = PortsSource::new(procfs.path().into(), options(Vec::new()), None);
        let mut events = Vec::new();
        let known = source.poll(0, &mut events);
        assert_eq!(known.len(), 1);
        source.poll(600_000, &mut events);
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn the_agents_own_sockets_are_never_reported() {
        let mut own = options(Vec::new());
        own.own_pid = Some(std::process::id());
        let mut source = PortsSource::new("/proc".into(), own, Some(Vec::new()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut events = Vec::new();
        let known = source.poll(0, &mut events);
        assert!(
            !events
                .iter()
                .any(|event| event.fields.local_port == Some(port))
        );
        assert!(!known.iter().any(|listener| listener.port == port));
        // One known from before (an older agent reported it) leaves silently.
        let mut older = PortsSource::new("/proc".into(), options(Vec::new()), Some(Vec::new()));
        let known = older.poll(0, &mut events);
        let mut own = options(Vec::new());
        own.own_pid = Some(std::process::id());
        let mut source = PortsSource::new("/proc".into(), own, Some(known));
        events.clear();
        source.poll(1, &mut events);
        assert!(
            !events
                .iter()
                .any(|event| event.fields.local_port == Some(port)),
            "{events:?}"
        );
    }

    #[test]
    fn parses_listening_sockets_only() {
        let tcp = parse("tcp", TCP);
        let keys: Vec<String> = tcp.iter().map(Listener::key).collect();
        assert_eq!(keys, vec!["tcp/0.0.0.0:22", "tcp/127.0.0.1:5432"]);
        assert_eq!(tcp[1].uid, 112);
        assert_eq!(tcp[1].inode, 23456);
        let tcp6: Vec<String> = parse("tcp6", TCP6).iter().map(Listener::key).collect();
        assert_eq!(tcp6, vec!["tcp6/[::]:22", "tcp6/[::1]:631"]);
        let udp: Vec<String> = parse("udp", UDP).iter().map(Listener::key).collect();
        assert_eq!(udp, vec!["udp/127.0.0.53:53"]);
        assert!(parse("tcp", "header\ngarbage line\n").is_empty());
    }

    #[test]
    fn allow_rules() {
        let rule = AllowRule::parse("tcp/22").unwrap();
        let tcp = parse("tcp", TCP);
        assert!(rule.allows(&tcp[0]));
        assert!(!rule.allows(&tcp[1]));
        assert!(rule.allows(&parse("tcp6", TCP6)[0]));
        let exact = AllowRule::parse("tcp/127.0.0.1:5432").unwrap();
        assert!(exact.allows(&tcp[1]));
        assert!(AllowRule::parse("udp/[::1]:53").is_ok());
        for bad in ["22", "sctp/22", "tcp/x", "tcp/1.2.3:4", "tcp/99999"] {
            assert!(AllowRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_real_listener_opens_and_closes_with_its_process() {
        let procfs = PathBuf::from("/proc");
        let mut source = PortsSource::new(procfs, options(Vec::new()), None);
        let mut events = Vec::new();
        source.poll(0, &mut events);
        assert!(events.is_empty(), "the first scan is the baseline");

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mine = |event: &&Event| event.fields.local_port == Some(port);
        let known = source.poll(1, &mut events);
        let opened: Vec<&Event> = events.iter().filter(mine).collect();
        assert_eq!(opened.len(), 1, "{events:?}");
        assert_eq!(opened[0].kind, EventKind::PortOpened);
        assert_eq!(opened[0].fields.protocol.as_deref(), Some("tcp"));
        assert_eq!(
            opened[0].fields.local_ip,
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(opened[0].fields.pid, Some(std::process::id()));
        assert!(known.iter().any(|listener| listener.port == port));

        // A restart from the persisted set reports nothing new.
        let mut restarted = PortsSource::new("/proc".into(), options(Vec::new()), Some(known));
        let mut after_restart = Vec::new();
        restarted.poll(2, &mut after_restart);
        assert!(!after_restart.iter().any(|event| mine(&event)));

        drop(listener);
        events.clear();
        restarted.poll(3, &mut events);
        let closed: Vec<&Event> = events.iter().filter(mine).collect();
        assert_eq!(closed.len(), 1, "{events:?}");
        assert_eq!(closed[0].kind, EventKind::PortClosed);
        assert_eq!(
            closed[0].fields.pid,
            Some(std::process::id()),
            "owner kept from opening"
        );
    }

    #[test]
    fn allowed_listeners_make_no_events() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let rule = AllowRule::parse(&format!("tcp/127.0.0.1:{port}")).unwrap();
        let mut source = PortsSource::new("/proc".into(), options(vec![rule]), Some(Vec::new()));
        let mut events = Vec::new();
        source.poll(0, &mut events);
        assert!(
            !events
                .iter()
                .any(|event| event.fields.local_port == Some(port))
        );
    }
}
