//! The syslog sockets. Each message is checked against the allow-list and
//! the size cap here, then offered to the [`Inbox`]; every outcome is
//! counted in [`super::ReceiverStats`].
//!
//! UDP is read on its own OS thread with a large receive buffer, so that
//! the run loop parsing and spooling a batch on the (single) runtime
//! thread never leaves datagrams to overflow the kernel's buffer. TCP runs
//! on the runtime: a stream has flow control, so a busy loop only slows
//! the sender. Connections are capped (`max_connections`); a sender outside
//! the allow-list is closed on accept without reading a byte.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::SyslogSourceConfig;
use super::allow::AllowList;
use super::framing::{Frame, Framer, trim_line_end};
use super::{Inbox, ReceiverStats};

/// Receive buffer asked of the kernel for the UDP socket (it may grant
/// less: `net.core.rmem_max`).
const UDP_RECEIVE_BUFFER: usize = 8 * 1024 * 1024;
/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;
/// Bytes read from a TCP connection at a time.
const TCP_READ: usize = 64 * 1024;

/// The running listeners; dropping this stops them.
pub struct Listeners {
    /// The bound UDP address, when UDP is on.
    pub udp: Option<SocketAddr>,
    /// The bound TCP address, when TCP is on.
    pub tcp: Option<SocketAddr>,
    /// Tells the UDP thread to stop (it checks every second).
    stop: Arc<AtomicBool>,
    /// The TCP accept loop.
    tcp_task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Listeners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(task) = &self.tcp_task {
            task.abort();
        }
    }
}

impl Listeners {
    /// Binds what `config` asks for and starts receiving. Must run inside
    /// a tokio runtime (for TCP). Logs each bound address as `listening`.
    pub fn start(
        config: &SyslogSourceConfig,
        allow: AllowList,
        inbox: Arc<Inbox>,
    ) -> std::io::Result<Listeners> {
        let allow = Arc::new(allow);
        let stop = Arc::new(AtomicBool::new(false));
        let max_message = config.max_message_bytes;
        let mut listeners = Listeners {
            udp: None,
            tcp: None,
            stop: Arc::clone(&stop),
            tcp_task: None,
        };
        if let Some(address) = &config.udp {
            let address = parse_address(&address.value)?;
            let socket = std::net::UdpSocket::bind(address)?;
            if let Err(error) =
                rustix::net::sockopt::set_socket_recv_buffer_size(&socket, UDP_RECEIVE_BUFFER)
            {
                tracing::debug!(%error, "cannot enlarge the syslog UDP receive buffer");
            }
            socket.set_read_timeout(Some(Duration::from_secs(1)))?;
            let bound = socket.local_addr()?;
            let inbox = Arc::clone(&inbox);
            let allow = Arc::clone(&allow);
            std::thread::Builder::new()
                .name("syslog-udp".into())
                .spawn(move || receive_udp(&socket, &allow, &inbox, max_message, &stop))?;
            tracing::info!(listener = "syslog_udp", addr = %bound, "listening");
            listeners.udp = Some(bound);
        }
        if let Some(address) = &config.tcp {
            let address = parse_address(&address.value)?;
            let socket = std::net::TcpListener::bind(address)?;
            socket.set_nonblocking(true)?;
            let bound = socket.local_addr()?;
            let listener = tokio::net::TcpListener::from_std(socket)?;
            let limit = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
            listeners.tcp_task = Some(tokio::spawn(accept_tcp(
                listener,
                allow,
                inbox,
                max_message,
                limit,
            )));
            tracing::info!(listener = "syslog_tcp", addr = %bound, "listening");
            listeners.tcp = Some(bound);
        }
        Ok(listeners)
    }
}

fn parse_address(text: &str) -> std::io::Result<SocketAddr> {
    text.parse().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("syslog listen address {text:?} is not ADDRESS:PORT"),
        )
    })
}

/// The UDP thread: one datagram is one message.
fn receive_udp(
    socket: &std::net::UdpSocket,
    allow: &AllowList,
    inbox: &Inbox,
    max_message: usize,
    stop: &AtomicBool,
) {
    let mut buffer = vec![0u8; MAX_DATAGRAM + 1];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buffer) {
            Ok((length, sender)) => {
                accept_datagram(&buffer[..length], sender.ip(), allow, inbox, max_message);
            }
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(error) => {
                ReceiverStats::add(&inbox.stats.receive_errors);
                tracing::debug!(%error, "syslog UDP receive failed");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Checks one datagram and offers it to the inbox.
pub fn accept_datagram(
    datagram: &[u8],
    sender: IpAddr,
    allow: &AllowList,
    inbox: &Inbox,
    max_message: usize,
) {
    let stats = &inbox.stats;
    if !allow.allows(sender) {
        ReceiverStats::add(&stats.dropped_not_allowed);
        return;
    }
    let message = trim_line_end(datagram);
    if message.is_empty() {
        ReceiverStats::add(&stats.dropped_malformed);
    } else if message.len() > max_message {
        ReceiverStats::add(&stats.dropped_oversize);
    } else {
        inbox.offer(sender, message);
    }
}

/// The TCP accept loop. Accept errors (out of file descriptors) back off.
async fn accept_tcp(
    listener: tokio::net::TcpListener,
    allow: Arc<AllowList>,
    inbox: Arc<Inbox>,
    max_message: usize,
    limit: Arc<tokio::sync::Semaphore>,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                accepted
            }
            Err(error) => {
                ReceiverStats::add(&inbox.stats.receive_errors);
                tracing::warn!(%error, "syslog TCP accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let stats = &inbox.stats;
        if !allow.allows(peer.ip()) {
            ReceiverStats::add(&stats.dropped_not_allowed);
            tracing::debug!(%peer, "syslog TCP connection from outside the allow-list closed");
            continue;
        }
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            ReceiverStats::add(&stats.connections_over_limit);
            continue;
        };
        ReceiverStats::add(&stats.connections_accepted);
        let inbox = Arc::clone(&inbox);
        tokio::spawn(async move {
            inbox.stats.connections_open.fetch_add(1, Ordering::Relaxed);
            receive_tcp(stream, peer.ip(), &inbox, max_message).await;
            inbox.stats.connections_open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

/// Reads one connection until it closes, framing its messages.
async fn receive_tcp(
    mut stream: tokio::net::TcpStream,
    sender: IpAddr,
    inbox: &Inbox,
    max_message: usize,
) {
    let mut framer = Framer::new(max_message);
    let mut buffer = vec![0u8; TCP_READ];
    let mut emit = |frame: Frame<'_>| match frame {
        Frame::Message(message) => inbox.offer(sender, message),
        Frame::Oversize => ReceiverStats::add(&inbox.stats.dropped_oversize),
        Frame::Malformed => ReceiverStats::add(&inbox.stats.dropped_malformed),
    };
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) => break,
            Ok(read) => framer.push(&buffer[..read], &mut emit),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                if error.kind() != std::io::ErrorKind::ConnectionReset {
                    ReceiverStats::add(&inbox.stats.receive_errors);
                }
                tracing::debug!(%error, %sender, "syslog TCP connection failed");
                break;
            }
        }
    }
    framer.finish(&mut emit);
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::super::SyslogSource;
    use super::*;
    use crate::config::unspanned;
    use crate::source::syslog::SyslogSourceConfig;

    fn config(allow: &[&str]) -> SyslogSourceConfig {
        SyslogSourceConfig {
            udp: Some(unspanned("127.0.0.1:0".to_string())),
            tcp: Some(unspanned("127.0.0.1:0".to_string())),
            allow: allow
                .iter()
                .map(|entry| unspanned(entry.to_string()))
                .collect(),
            max_message_bytes: 1024,
            ..SyslogSourceConfig::default()
        }
    }

    fn load(counter: &std::sync::atomic::AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    #[test]
    fn udp_and_tcp_messages_are_received_checked_and_counted() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut source = SyslogSource::start(
                &config(&["127.0.0.1/32"]),
                Arc::new(tokio::sync::Notify::new()),
                "agent-1".to_string(),
                jiff::tz::TimeZone::UTC,
            )
            .unwrap();
            let udp = source.listeners.udp.unwrap();
            let tcp = source.listeners.tcp.unwrap();
            let allowed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            allowed
                .send_to(b"<13>Nov 28 01:02:03 h app: one\n", udp)
                .unwrap();
            allowed.send_to(&vec![b'x'; 2000], udp).unwrap();
            allowed.send_to(b"", udp).unwrap();
            // Another loopback address, outside the allow-list.
            let spoofed = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
            spoofed.send_to(b"<13>spoofed", udp).unwrap();
            let mut stream = std::net::TcpStream::connect(tcp).unwrap();
            stream.write_all(b"7 <13>two<13>three\n").unwrap();
            drop(stream);
            let outsider = tokio::net::TcpSocket::new_v4().unwrap();
            outsider.bind("127.0.0.2:0".parse().unwrap()).unwrap();
            let mut refused = outsider.connect(tcp).await.unwrap();
            let _ = tokio::io::AsyncWriteExt::write_all(&mut refused, b"<13>nope\n").await;
            let stats = &source.inbox.stats;
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while (load(&stats.accepted) < 3 || load(&stats.dropped_not_allowed) < 2)
                && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(load(&stats.accepted), 3);
            assert_eq!(load(&stats.dropped_not_allowed), 2);
            assert_eq!(load(&stats.dropped_oversize), 1);
            assert_eq!(load(&stats.dropped_malformed), 1);
            let mut events = Vec::new();
            source.drain(10, &mut events);
            let mut messages: Vec<String> = events
                .iter()
                .map(|event| event.fields.message.clone().unwrap_or_default())
                .collect();
            messages.sort();
            assert_eq!(messages, vec!["one", "three", "two"]);
            assert!(
                events
                    .iter()
                    .all(|event| event.fields.device.as_deref() == Some("127.0.0.1"))
            );
        });
    }
}
