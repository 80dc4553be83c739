//! The SNMP probe against Debian's net-snmp `snmpd`, started here with its
//! own config: the agent polls it over v2c and v3 (SHA + AES), and what
//! reaches the collector's `/metrics` under snmp_exporter's names is
//! compared with what `snmpget`/`snmpwalk` read from the same snmpd. Wrong
//! credentials fail their own device only, with a clear reason. In a
//! network namespace the test makes, a veth link whose peer is taken down
//! gives an `interface_down` event at the collector. Debian's
//! snmp_exporter, polling the same snmpd, gives the same names, label sets
//! and values.
//!
//! The namespace test needs root and iproute2 (`tests/run.sh` installs
//! both packages); its addresses are on links the test owns.

use std::collections::BTreeMap;
use std::time::Duration;

use countywatch_e2e::http::sample_value;
use countywatch_e2e::netns::NetNs;
use countywatch_e2e::peer::{
    SNMP_AUTH_PASSWORD, SNMP_COMMUNITY, SNMP_PRIV_PASSWORD, SNMP_USER, SnmpExporter, Snmpd,
};
use countywatch_e2e::process::wait_until;
use countywatch_e2e::{Agent, Collector};

/// An agent config section polling `address` as `name` over v2c.
fn v2c_device(name: &str, address: &str, community: &str, extra: &str) -> String {
    format!(
        "      - name: {name}
        address: \"{address}\"
        version: v2c
        community: {community}
{extra}"
    )
}

/// An agent config section polling `address` as `name` over v3 with
/// `auth_password`.
fn v3_device(name: &str, address: &str, auth_password: &str) -> String {
    format!(
        "      - name: {name}
        address: \"{address}\"
        version: v3
        user: {SNMP_USER}
        auth_protocol: sha
        auth_password: {auth_password}
        priv_protocol: aes
        priv_password: {SNMP_PRIV_PASSWORD}
"
    )
}

/// The labels a device's series starts with on the collector's `/metrics`.
fn device_prefix(device: &str, agent: &str) -> String {
    format!("instance=\"{device}\",job=\"countywatch\",agent=\"{agent}\"")
}

#[test]
fn the_loopback_interface_matches_snmpget_over_v2c_and_v3_and_bad_credentials_fail_alone() {
    let snmpd = Snmpd::start("cw-switch");
    let address = &snmpd.address;
    let config = format!(
        "probes:\n  snmp:\n    devices:\n{}{}{}{}",
        v2c_device(
            "sw-v2c",
            address,
            SNMP_COMMUNITY,
            "        extra_oids:\n          - name: sysLocation\n            oid: 1.3.6.1.2.1.1.6.0\n            type: info\n"
        ),
        v3_device("sw-v3", address, SNMP_AUTH_PASSWORD),
        v3_device("sw-bad-v3", address, "not-the-pass-phrase"),
        v2c_device(
            "sw-bad-community",
            address,
            "not-the-community",
            "        timeout: 300ms\n        retries: 1\n"
        ),
    );
    let collector = Collector::start();
    let agent = Agent::start_for_with("snmp-host", &collector, &config);
    for device in ["sw-v2c", "sw-v3"] {
        let up = format!("snmp_up{{{}}}", device_prefix(device, "snmp-host"));
        assert_eq!(
            collector.wait_for_series(&up, Duration::from_secs(60)),
            Some(1.0),
            "agent log:\n{}\n{}",
            agent.logs.all().join("\n"),
            collector.metrics()
        );
    }
    for device in ["sw-bad-v3", "sw-bad-community"] {
        let up = format!("snmp_up{{{}}}", device_prefix(device, "snmp-host"));
        assert_eq!(
            collector.wait_for_series(&up, Duration::from_secs(60)),
            Some(0.0),
            "{}",
            collector.metrics()
        );
    }

    // The loopback interface as snmpd itself reports it.
    let names = snmpd.walk("1.3.6.1.2.1.31.1.1.1.1");
    let (lo_index, _) = names
        .iter()
        .find(|(_, name)| name == "lo")
        .expect("snmpd lists the loopback interface");
    let column = |oid: &str| format!("{oid}.{lo_index}");
    let number = |oid: &str| -> f64 {
        snmpd
            .get(oid)
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("snmpget {oid}"))
    };
    let descr = snmpd.get(&column("1.3.6.1.2.1.2.2.1.2")).unwrap();
    let alias = snmpd
        .get(&column("1.3.6.1.2.1.31.1.1.1.18"))
        .unwrap_or_default();
    let text = collector.metrics();
    let in_octets_after = number(&column("1.3.6.1.2.1.31.1.1.1.6"));
    let out_octets_after = number(&column("1.3.6.1.2.1.31.1.1.1.10"));
    for device in ["sw-v2c", "sw-v3"] {
        let prefix = device_prefix(device, "snmp-host");
        let interface = format!(
            "{prefix},ifIndex=\"{lo_index}\",ifName=\"lo\",ifAlias=\"{alias}\",ifDescr=\"{descr}\""
        );
        let value = |family: &str| {
            sample_value(&text, &format!("{family}{{{interface}}}"))
                .unwrap_or_else(|| panic!("{family} of lo from {device} in\n{text}"))
        };
        // Statuses and speed are what snmpget reads.
        assert_eq!(
            value("ifOperStatus"),
            number(&column("1.3.6.1.2.1.2.2.1.8"))
        );
        assert_eq!(
            value("ifAdminStatus"),
            number(&column("1.3.6.1.2.1.2.2.1.7"))
        );
        assert_eq!(
            value("ifHighSpeed"),
            number(&column("1.3.6.1.2.1.31.1.1.1.15"))
        );
        assert_eq!(value("ifInErrors"), number(&column("1.3.6.1.2.1.2.2.1.14")));
        // Octet counters were read before snmpget's (the loopback carries
        // the agent's own batches meanwhile): not above, and close.
        for (family, after) in [
            ("ifHCInOctets", in_octets_after),
            ("ifHCOutOctets", out_octets_after),
        ] {
            let agent_value = value(family);
            assert!(
                agent_value > 0.0 && agent_value <= after && after - agent_value < 50e6,
                "{family} of lo: agent {agent_value}, snmpget after {after}"
            );
        }
        let sys_name = format!("sysName{{{prefix},sysName=\"cw-switch\"}}");
        assert_eq!(sample_value(&text, &sys_name), Some(1.0), "{text}");
        assert_eq!(snmpd.get("1.3.6.1.2.1.1.5.0").as_deref(), Some("cw-switch"));
        let uptime = sample_value(&text, &format!("sysUpTime{{{prefix}}}")).unwrap();
        assert!(uptime > 0.0 && uptime <= number("1.3.6.1.2.1.1.3.0"));
        assert!(
            sample_value(
                &text,
                &format!("countywatch_snmp_scrape_duration_seconds{{{prefix}}}")
            )
            .is_some_and(|seconds| seconds > 0.0)
        );
    }
    let location = format!(
        "sysLocation{{{},sysLocation=\"countywatch test\"}}",
        device_prefix("sw-v2c", "snmp-host")
    );
    assert_eq!(sample_value(&text, &location), Some(1.0), "{text}");

    // Each bad device fails for its own reason, and says so.
    let reason = |device: &str, reason: &str| {
        format!(
            "countywatch_snmp_poll_errors_total{{{},reason=\"{reason}\"}}",
            device_prefix(device, "snmp-host")
        )
    };
    assert!(sample_value(&text, &reason("sw-bad-v3", "authentication")).is_some_and(|n| n >= 1.0));
    assert!(sample_value(&text, &reason("sw-bad-community", "timeout")).is_some_and(|n| n >= 1.0));
    assert!(!text.contains(&reason("sw-v3", "authentication")));
    assert!(
        agent
            .logs
            .contains("no reply passed authentication: wrong v3 user")
    );
    assert!(agent.logs.contains("wrong community"));
    assert!(!text.contains(&format!(
        "ifOperStatus{{{}",
        device_prefix("sw-bad-v3", "snmp-host")
    )));
    assert!(
        wait_until(Duration::from_secs(30), || {
            collector.event_count("snmp-host", "device_unreachable") >= 2
        }),
        "each bad device is reported unreachable once"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(collector.event_count("snmp-host", "device_unreachable"), 2);
}

/// The device's namespace, with a second veth pair inside it to take down:
/// a switch port with a cable to another device.
fn device_namespace(host_address: &str, device_address: &str) -> NetNs {
    let namespace = NetNs::new("snmp", host_address, device_address);
    namespace.ip(&[
        "link", "add", "port1", "type", "veth", "peer", "name", "far1",
    ]);
    namespace.ip(&["link", "set", "port1", "up"]);
    namespace.ip(&["link", "set", "far1", "up"]);
    namespace
}

#[test]
fn a_port_losing_its_link_gives_interface_down_then_up() {
    // Test-only addresses, on the veth pair this test owns.
    let (host_address, device_address) = ("10.231.9.1", "10.231.9.2");
    let namespace = device_namespace(host_address, device_address);
    // snmpd on the namespace's standard port 161: the device's address in
    // the agent's config has no port, as most real configs will.
    let snmpd = Snmpd::try_start(
        "cw-access-switch",
        &format!("{device_address}:161"),
        &namespace.exec(),
    )
    .expect("snmpd starts in the namespace");
    let config = format!(
        "probes:\n  snmp:\n    devices:\n{}",
        v2c_device("access-sw", device_address, SNMP_COMMUNITY, "")
    );
    let collector = Collector::start();
    let agent = Agent::start_for_with("edge-host", &collector, &config);

    let port_index = snmpd
        .walk("1.3.6.1.2.1.31.1.1.1.1")
        .into_iter()
        .find(|(_, name)| name == "port1")
        .map(|(index, _)| index)
        .expect("snmpd lists port1");
    let oper = format!(
        "ifOperStatus{{{},ifIndex=\"{port_index}\",ifName=\"port1\",ifAlias=\"\",ifDescr=\"port1\"}}",
        device_prefix("access-sw", "edge-host")
    );
    assert_eq!(
        collector.wait_for_series(&oper, Duration::from_secs(60)),
        Some(1.0),
        "agent log:\n{}\n{}",
        agent.logs.all().join("\n"),
        collector.metrics()
    );

    // The far end goes down: port1 loses its carrier while it stays
    // administratively up, as when a cable is pulled.
    namespace.ip(&["link", "set", "far1", "down"]);
    assert!(
        wait_until(Duration::from_secs(60), || {
            collector.event_count("edge-host", "interface_down") >= 1
        }),
        "interface_down should reach the collector; agent log:\n{}",
        agent.logs.all().join("\n")
    );
    let body: String = collector
        .database()
        .query_row(
            "SELECT body FROM events WHERE agent = 'edge-host' AND kind = 'interface_down'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let event: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["source"], "snmp", "{body}");
    assert_eq!(event["fields"]["device"], "access-sw", "{body}");
    assert_eq!(event["fields"]["interface"], "port1", "{body}");
    assert_eq!(event["fields"]["if_index"], port_index, "{body}");
    assert_eq!(
        snmpd
            .get(&format!("1.3.6.1.2.1.2.2.1.8.{port_index}"))
            .as_deref(),
        Some("2")
    );

    namespace.ip(&["link", "set", "far1", "up"]);
    assert!(
        wait_until(Duration::from_secs(60), || {
            collector.event_count("edge-host", "interface_up") >= 1
        }),
        "interface_up should follow"
    );
    assert_eq!(collector.event_count("edge-host", "interface_down"), 1);
}

/// The samples of `text` whose family is in `families`, keyed by family and
/// label set, without `instance`, `job` and `agent` (which only the
/// collector adds). Label values here are plain (interface names), so a
/// simple split is enough.
fn samples(text: &str, families: &[&str]) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let mut found = BTreeMap::new();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        // `name{labels} value [timestamp]`: the collector stamps samples
        // with the agent's collection time, snmp_exporter does not.
        let split = match line.rfind('}') {
            Some(end) => Some((&line[..=end], &line[end + 1..])),
            None => line.split_once(' '),
        };
        let Some((series, rest)) = split else {
            continue;
        };
        let Some(value) = rest.split_whitespace().next() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
        if !families.contains(&name) {
            continue;
        }
        let labels: BTreeMap<String, String> = labels
            .trim_end_matches('}')
            .split("\",")
            .filter_map(|pair| {
                let (label, value) = pair.split_once("=\"")?;
                Some((label.to_string(), value.trim_end_matches('"').to_string()))
            })
            .filter(|(label, _)| !["instance", "job", "agent"].contains(&label.as_str()))
            .collect();
        found.insert((name.to_string(), labels), value.parse().unwrap());
    }
    found
}

#[test]
fn names_labels_and_values_match_snmp_exporter_on_the_same_snmpd() {
    let snmpd = Snmpd::start("cw-compare");
    let exporter = SnmpExporter::start();
    let config = format!(
        "probes:\n  snmp:\n    devices:\n{}",
        v2c_device("sw-compare", &snmpd.address, SNMP_COMMUNITY, "")
    );
    let collector = Collector::start();
    let agent = Agent::start_for_with("compare-host", &collector, &config);
    let up = format!("snmp_up{{{}}}", device_prefix("sw-compare", "compare-host"));
    assert_eq!(
        collector.wait_for_series(&up, Duration::from_secs(60)),
        Some(1.0),
        "agent log:\n{}",
        agent.logs.all().join("\n")
    );
    let families = [
        "ifAdminStatus",
        "ifOperStatus",
        "ifHighSpeed",
        "ifInErrors",
        "ifOutErrors",
        "ifInDiscards",
        "ifOutDiscards",
        "ifHCInOctets",
        "ifHCOutOctets",
        "sysName",
        "sysUpTime",
    ];
    let ours_text = collector.metrics();
    let ours: BTreeMap<_, _> = samples(&ours_text, &families)
        .into_iter()
        .filter(|((_, labels), _)| labels.get("device_instance").is_none())
        .collect();
    let theirs = samples(&exporter.scrape(&snmpd.address), &families);
    // Ours holds the device's series only (the collector rewrote
    // device_instance into instance), so the same keys mean the same
    // names and label sets.
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "ours:\n{ours_text}"
    );
    assert!(ours.len() > 10, "{ours:?}");
    for (key, their_value) in &theirs {
        let our_value = ours[key];
        let (family, _) = key;
        match family.as_str() {
            // Read by two pollers at two moments: ours first, the loopback
            // carrying batches in between.
            "ifHCInOctets" | "ifHCOutOctets" => assert!(
                our_value <= *their_value && their_value - our_value < 50e6,
                "{key:?}: ours {our_value}, snmp_exporter {their_value}"
            ),
            "sysUpTime" => assert!(
                our_value <= *their_value && their_value - our_value < 120.0 * 100.0,
                "{key:?}: ours {our_value}, snmp_exporter {their_value}"
            ),
            _ => assert_eq!(our_value, *their_value, "{key:?}"),
        }
    }
}
