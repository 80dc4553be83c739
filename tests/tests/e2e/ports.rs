//! The listening-ports source next to a running agent: a UDP client socket
//! (bound to an ephemeral port, unconnected, sending a query the way a DNS
//! or NTP client does) is not a listener; a TCP listener on a high port
//! is. Exactly one port event arrives: the TCP one.

use std::time::Duration;

use countywatch_e2e::Collector;
use countywatch_e2e::process::{TEST_AGENT_CONFIG, wait_until};

use crate::events::{start_agent, stored};

#[test]
fn a_udp_client_socket_next_to_a_running_agent_is_no_listener_and_a_tcp_listener_is() {
    let collector = Collector::start();
    let config = format!(
        "{TEST_AGENT_CONFIG}sources:\n  auth:\n    enabled: false\n  fim:\n    enabled: false\n"
    );
    let _agent = start_agent("ports-host", &collector, &config);
    // The first scan is the silent baseline: open the sockets after it
    // (the sources' metrics arrive after their first poll; then two more
    // one-second polls for good measure).
    let scanned = collector.wait_for_series(
        "countywatch_agent_source_read_errors_total{instance=\"ports-host\",job=\"countywatch\",source=\"ports\"}",
        Duration::from_secs(60),
    );
    assert!(scanned.is_some(), "the agent never reported");
    std::thread::sleep(Duration::from_secs(2));
    let client = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    client.send_to(b"query", "127.0.0.1:9").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let udp_port = client.local_addr().unwrap().port();
    let tcp_port = listener.local_addr().unwrap().port();
    let ours = |events: &[serde_json::Value]| -> Vec<serde_json::Value> {
        events
            .iter()
            .filter(|event| {
                let port = event["fields"]["local_port"].as_u64();
                port == Some(u64::from(udp_port)) || port == Some(u64::from(tcp_port))
            })
            .cloned()
            .collect()
    };
    let mut events = Vec::new();
    wait_until(Duration::from_secs(60), || {
        events = ours(&stored(&collector, "ports-host", "ports"));
        !events.is_empty()
    });
    // Several more scans (one a second) for a UDP event to show up.
    std::thread::sleep(Duration::from_secs(5));
    events = ours(&stored(&collector, "ports-host", "ports"));
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["kind"], "port_opened");
    assert_eq!(events[0]["fields"]["protocol"], "tcp");
    assert_eq!(
        events[0]["fields"]["local_port"].as_u64(),
        Some(u64::from(tcp_port))
    );
    drop(client);
}
