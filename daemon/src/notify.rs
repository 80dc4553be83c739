//! systemd readiness notification (`sd_notify`), for units with `Type=notify`.
//!
//! systemd passes the path of a unix datagram socket in `$NOTIFY_SOCKET`;
//! a daemon sends `READY=1` there once it can serve, and `systemctl start`
//! returns only then. The protocol is one datagram of `KEY=VALUE` lines, so
//! it is a few lines here rather than a dependency on libsystemd. Outside
//! systemd the variable is unset and nothing is sent.

use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// Tells systemd that the daemon is ready (bound its listeners, or for the
/// agent: started its loop). A failure is logged and otherwise ignored,
/// because a daemon that works but cannot tell systemd so should keep
/// working; systemd then reports the start as timed out, which says why.
pub fn ready() {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(error) = send(Path::new(&socket), "READY=1\n") {
        tracing::warn!(%error, socket = %Path::new(&socket).display(), "cannot notify systemd of readiness");
    }
}

/// Sends one notification datagram to `socket`. A path starting with `@`
/// names a socket in Linux's abstract namespace, as systemd documents.
pub fn send(socket: &Path, state: &str) -> std::io::Result<()> {
    let sender = UnixDatagram::unbound()?;
    let bytes = socket.as_os_str().as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        send_abstract(&sender, name, state)
    } else {
        sender.send_to(state.as_bytes(), socket).map(drop)
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_abstract(sender: &UnixDatagram, name: &[u8], state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    sender.send_to_addr(state.as_bytes(), &address).map(drop)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_abstract(_sender: &UnixDatagram, _name: &[u8], _state: &str) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "abstract unix sockets exist only on Linux",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_ready_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        send(&path, "READY=1\n").unwrap();
        let mut buffer = [0u8; 64];
        let length = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..length], b"READY=1\n");
    }

    #[test]
    fn sends_ready_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("countywatch-notify-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&address).unwrap();
        send(Path::new(&format!("@{name}")), "READY=1\n").unwrap();
        let mut buffer = [0u8; 64];
        let length = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..length], b"READY=1\n");
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        assert!(send(&dir.path().join("absent"), "READY=1\n").is_err());
    }
}
