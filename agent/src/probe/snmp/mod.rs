//! The SNMP probe: polls the network devices an agent is near (switches,
//! routers, firewalls that cannot run an agent) with SNMP v2c or v3 and
//! reports IF-MIB as snmp_exporter's `if_mib` module names it, each series
//! labelled with the device (exposed by the collector as `instance`), plus
//! `snmp_up` and `countywatch_snmp_scrape_duration_seconds` per device.
//! State changes (an interface down or up, a reboot, the device going away
//! or back) become events that [`Probe::take_events`] hands to the
//! collection.
//!
//! - `config.rs`: the `probes.snmp` section and its checks.
//! - `if_mib.rs`: the OIDs asked for and the pure mapping to families.
//! - `state.rs`: the per-device memory: counter wraps, reboots, events.
//!
//! The SNMP library (`async-snmp`) is async; the probe runs on the
//! collection's blocking thread like every probe and drives it with the
//! agent's runtime handle. Devices are polled concurrently, each on its own
//! task, each bounded by a deadline under the probe timeout, so a slow or
//! silent device costs its own metrics only.

mod config;
// Public, with `state`, so that the `snmp_response` fuzz target runs
// decoded hostile answers through the same mapping a poll uses.
pub mod if_mib;
pub mod state;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_snmp::{Client, Oid, Retry, Target, VarBind};
use countywatch_wire::{DEVICE_INSTANCE_LABEL, Event, MetricFamily, MetricKind};

pub use config::{DeviceConfig, ExtraType, SnmpConfig, validate};

use self::if_mib::{Column, DeviceWalk};
use self::state::DeviceState;
use super::{Probe, ProbeError};

/// Polls the configured devices.
pub struct SnmpProbe {
    /// One entry per configured device, in config order.
    devices: Vec<Device>,
    /// Most one device's poll may take.
    deadline: Duration,
    /// The agent's interval, the default device interval.
    default_interval: Duration,
    /// Events waiting for the collection to take them.
    events: Vec<Event>,
}

/// One device and what the probe keeps about it.
struct Device {
    /// Its config.
    config: Arc<DeviceConfig>,
    /// The SNMP client, made on the first poll and kept (a v3 client keeps
    /// the engine it discovered); dropped after a failure so the next poll
    /// starts afresh.
    client: Option<Client>,
    /// Its memory between polls.
    state: DeviceState,
    /// When it was last polled.
    last_polled: Option<Instant>,
    /// Its families from the last poll, repeated until it is due again.
    cached: Vec<MetricFamily>,
    /// Failed polls by reason, for `countywatch_snmp_poll_errors_total`.
    errors: std::collections::BTreeMap<&'static str, u64>,
    /// The reason of the last failure, so a failure is logged once per
    /// change rather than every poll.
    last_error: Option<&'static str>,
}

/// Why one poll of one device failed.
struct PollFailure {
    /// A bounded label value: the SNMP library's error kind, `deadline`, or
    /// `runtime`.
    reason: &'static str,
    /// What an operator reads.
    message: String,
}

impl SnmpProbe {
    /// A probe over `config`'s devices.
    pub fn new(config: &SnmpConfig, probe_timeout: Duration, default_interval: Duration) -> Self {
        SnmpProbe {
            devices: config
                .devices
                .iter()
                .map(|device| Device {
                    config: Arc::new(device.clone()),
                    client: None,
                    state: DeviceState::default(),
                    last_polled: None,
                    cached: Vec::new(),
                    errors: std::collections::BTreeMap::new(),
                    last_error: None,
                })
                .collect(),
            deadline: config::poll_deadline(probe_timeout),
            default_interval,
            events: Vec::new(),
        }
    }
}

impl Probe for SnmpProbe {
    fn name(&self) -> &'static str {
        "snmp"
    }

    fn needs_own_thread(&self) -> bool {
        true
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(ProbeError::NoRuntime)?;
        let now = Instant::now();
        let mut polls = Vec::new();
        for (position, device) in self.devices.iter_mut().enumerate() {
            let interval = device
                .config
                .interval
                .map(|interval| interval.get())
                .unwrap_or(self.default_interval);
            let due = device.last_polled.is_none_or(|last| {
                now.duration_since(last) + Duration::from_millis(250) >= interval
            });
            if due {
                device.last_polled = Some(now);
                let config = Arc::clone(&device.config);
                let client = device.client.take();
                let deadline = self.deadline;
                polls.push((
                    position,
                    runtime.spawn(async move {
                        let started = Instant::now();
                        let result =
                            match tokio::time::timeout(deadline, poll(&config, client)).await {
                                Ok(result) => result,
                                Err(_) => Err(PollFailure {
                                    reason: "deadline",
                                    message: format!(
                                        "the whole poll took over {deadline:?} (a slow device, or too many rows for max_repetitions {})",
                                        config.max_repetitions
                                    ),
                                }),
                            };
                        (result, started.elapsed())
                    }),
                ));
            }
        }
        let now_ms = countywatch_daemon::clock::now_ms();
        for (position, handle) in polls {
            let (result, duration) = match runtime.block_on(handle) {
                Ok(done) => done,
                Err(error) => (
                    Err(PollFailure {
                        reason: "runtime",
                        message: format!("poll task failed: {error}"),
                    }),
                    Duration::ZERO,
                ),
            };
            let Some(device) = self.devices.get_mut(position) else {
                continue;
            };
            let name = device.config.name.value.clone();
            let mut families = Vec::new();
            let up = match result {
                Ok((client, mut walk)) => {
                    device.client = Some(client);
                    self.events
                        .extend(device.state.observe(&name, &mut walk, now_ms));
                    if device.last_error.take().is_some() {
                        tracing::info!(device = %name, "SNMP device answers again");
                    }
                    if_mib::families(&name, &walk, &mut families);
                    true
                }
                Err(failure) => {
                    *device.errors.entry(failure.reason).or_default() += 1;
                    let message = format!(
                        "SNMP poll of {} ({}) failed: {}",
                        name, device.config.address.value, failure.message
                    );
                    // Once per change of reason: the message carries
                    // timings that differ every poll.
                    if device.last_error != Some(failure.reason) {
                        tracing::warn!(device = %name, reason = failure.reason, "{message}");
                    }
                    self.events
                        .extend(device.state.unreachable(&name, &message, now_ms));
                    device.last_error = Some(failure.reason);
                    false
                }
            };
            families.extend(device_health(&name, up, duration, &device.errors));
            // The report's grouping travels on `snmp_up` only; the
            // collector gives the device's interfaces the same.
            let grouping = [
                ("department", &device.config.department),
                ("service", &device.config.service),
            ];
            for sample in families
                .iter_mut()
                .filter(|family| family.name == "snmp_up")
                .flat_map(|family| family.samples.iter_mut())
            {
                for (label, value) in &grouping {
                    if let Some(value) = value {
                        sample.labels.push((label.to_string().into(), value.clone().into()));
                    }
                }
            }
            device.cached = families;
        }
        let mut merged: Vec<MetricFamily> = Vec::new();
        for device in &self.devices {
            merge(&mut merged, &device.cached);
        }
        out.extend(merged);
        Ok(())
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

/// Appends `families` to `merged`, joining families of the same name (a
/// batch may hold each name once).
fn merge(merged: &mut Vec<MetricFamily>, families: &[MetricFamily]) {
    for family in families {
        match merged
            .iter_mut()
            .find(|existing| existing.name == family.name)
        {
            Some(existing) if existing.kind == family.kind => {
                existing.samples.extend(family.samples.iter().cloned());
            }
            // Two devices' extra OIDs with one name and two types: the
            // first wins, as on the collector's /metrics.
            Some(_) => {}
            None => merged.push(family.clone()),
        }
    }
}

/// `snmp_up`, the scrape duration and the error counts of one device.
fn device_health(
    device: &str,
    up: bool,
    duration: Duration,
    errors: &std::collections::BTreeMap<&'static str, u64>,
) -> Vec<MetricFamily> {
    let label = [(DEVICE_INSTANCE_LABEL, device)];
    let mut snmp_up = MetricFamily::new(
        "snmp_up",
        "Whether the last SNMP poll of the device succeeded.",
        MetricKind::Gauge,
    );
    snmp_up.push(&label, if up { 1.0 } else { 0.0 });
    let mut scrape = MetricFamily::new(
        "countywatch_snmp_scrape_duration_seconds",
        "How long the last SNMP poll of the device took.",
        MetricKind::Gauge,
    );
    scrape.push(&label, duration.as_secs_f64());
    let mut failures = MetricFamily::new(
        "countywatch_snmp_poll_errors_total",
        "Failed SNMP polls of the device, by reason.",
        MetricKind::Counter,
    );
    for (reason, count) in errors {
        failures.push(
            &[("reason", reason), (DEVICE_INSTANCE_LABEL, device)],
            *count as f64,
        );
    }
    let mut families = vec![snmp_up, scrape];
    if !failures.samples.is_empty() {
        families.push(failures);
    }
    families
}

/// One poll: the system scalars, the IF-MIB columns, the extra OIDs.
/// Returns the client for the next poll with the walk.
async fn poll(
    config: &DeviceConfig,
    client: Option<Client>,
) -> Result<(Client, DeviceWalk), PollFailure> {
    let client = match client {
        Some(client) => client,
        None => connect(config).await?,
    };
    let system = [
        Oid::from_slice(if_mib::SYS_DESCR),
        Oid::from_slice(if_mib::SYS_UPTIME),
        Oid::from_slice(if_mib::SYS_NAME),
    ];
    let mut varbinds: Vec<VarBind> = checked(config, &client, client.get_many(&system))
        .await?
        .varbinds;
    for column in Column::ALL {
        varbinds.extend(walk_subtree(config, &client, column.oid()).await?);
    }
    let mut walk = DeviceWalk::from_varbinds(&varbinds);
    for (name, oid, kind) in config.extra_oids() {
        let mut rows = walk_subtree(config, &client, oid.clone()).await?;
        if rows.is_empty() {
            // A scalar instance (`...0`) has no subtree: ask for it.
            rows = checked(config, &client, client.get(&oid)).await?.varbinds;
        }
        walk.add_extra(&name, kind, &oid, &rows);
    }
    Ok((client, walk))
}

/// Walks `oid`'s subtree with GETBULK.
async fn walk_subtree(
    config: &DeviceConfig,
    client: &Client,
    oid: Oid,
) -> Result<Vec<VarBind>, PollFailure> {
    let stream = client
        .bulk_walk(oid, config.max_repetitions)
        .map_err(|error| failure(config, &error, false))?;
    checked(config, client, stream.collect()).await
}

/// Runs one request, turning its error into a [`PollFailure`]. A v3 reply
/// that fails authentication (a wrong pass phrase or user: the device
/// answers with an unauthenticated report) is discarded by the library,
/// which then times out; the datagrams the client received in the meantime
/// tell that case apart from a device that never answered.
async fn checked<T>(
    config: &DeviceConfig,
    client: &Client,
    request: impl Future<Output = async_snmp::Result<T>>,
) -> Result<T, PollFailure> {
    let received_before = client.stats().correlated_datagrams;
    request.await.map_err(|error| {
        let answered = client.stats().correlated_datagrams > received_before;
        failure(config, &error, answered)
    })
}

/// What a failed request means, for the log and the `reason` label.
fn failure(config: &DeviceConfig, error: &async_snmp::Error, answered: bool) -> PollFailure {
    use async_snmp::ErrorKind;
    let kind = error.kind();
    if kind == ErrorKind::Timeout && answered && config.version == config::SnmpVersion::V3 {
        return PollFailure {
            reason: "authentication",
            message: format!(
                "the device answers but no reply passed authentication: wrong v3 user, pass phrase or protocols ({error})"
            ),
        };
    }
    let hint = match (kind, config.version) {
        // An agent drops a v2c request with an unknown community without
        // answering, so a wrong community looks exactly like a dead device.
        (ErrorKind::Timeout, config::SnmpVersion::V2c) => {
            " (wrong community, an ACL refusing this agent, or the device is unreachable)"
        }
        (ErrorKind::Timeout, config::SnmpVersion::V3) => {
            " (the device is unreachable or not answering SNMP)"
        }
        (ErrorKind::Auth | ErrorKind::Report | ErrorKind::Privacy, _) => {
            " (check the v3 user, pass phrases and protocols)"
        }
        _ => "",
    };
    PollFailure {
        reason: kind.as_str(),
        message: format!("{error}{hint}"),
    }
}

/// Makes the device's client.
async fn connect(config: &DeviceConfig) -> Result<Client, PollFailure> {
    let auth = config.auth().map_err(|error| PollFailure {
        reason: "configuration",
        message: error.to_string(),
    })?;
    let retry = Retry::fixed(config.retries, Duration::ZERO).map_err(|error| PollFailure {
        reason: "configuration",
        message: format!("retries: {error}"),
    })?;
    Client::builder(Target::Address(config.address.value.clone()), auth)
        .request_timeout(config.timeout.get())
        .construction_timeout(config.timeout.get())
        .retry(retry)
        .connect()
        .await
        .map_err(|error| PollFailure {
            reason: error.kind().as_str(),
            message: format!("cannot set up the client: {error}"),
        })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use countywatch_config::config_file;
    use tokio::net::UdpSocket;

    use super::*;

    fn device(address: &str, version: &str) -> DeviceConfig {
        let credentials = match version {
            "v2c" => "community: public".to_string(),
            _ => "user: u\nauth_protocol: sha\nauth_password: pass-phrase\npriv_protocol: aes\npriv_password: pass-phrase".to_string(),
        };
        let text = format!(
            "name: d\naddress: \"{address}\"\nversion: {version}\n{credentials}\ntimeout: 200ms\nretries: 1\n"
        );
        config_file::parse(Path::new("a.yaml"), &text).unwrap()
    }

    /// How a fake device answers the `count`th request.
    type Answer = fn(&[u8], usize) -> Option<Vec<u8>>;

    /// A UDP "device" answering each request with `answer(request, count)`.
    async fn responder(answer: Answer) -> String {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 65_536];
            let mut count = 0;
            while let Ok((length, peer)) = socket.recv_from(&mut buffer).await {
                if let Some(reply) = answer(&buffer[..length], count) {
                    let _ = socket.send_to(&reply, peer).await;
                }
                count += 1;
            }
        });
        address
    }

    #[tokio::test]
    async fn malformed_answers_fail_the_poll_without_panicking() {
        let answers: [Answer; 5] = [
            // The request cut short, as a truncated datagram.
            |request, _| Some(request[..request.len() / 2].to_vec()),
            // The request echoed: right id, but a GetRequest, not a Response.
            |request, _| Some(request.to_vec()),
            // A SEQUENCE claiming far more bytes than follow.
            |_, _| Some(vec![0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02, 0x01]),
            // Bytes that are not BER at all, different every time.
            |request, count| {
                Some(
                    request
                        .iter()
                        .map(|byte| byte ^ (count as u8 + 0x5a))
                        .collect(),
                )
            },
            // The request with every length byte set to its maximum.
            |request, _| {
                Some(
                    request
                        .iter()
                        .map(|byte| if *byte < 0x80 { 0x7f } else { *byte })
                        .collect(),
                )
            },
        ];
        for (case, answer) in answers.into_iter().enumerate() {
            for version in ["v2c", "v3"] {
                let address = responder(answer).await;
                let result = poll(&device(&address, version), None).await;
                let Err(failure) = result else {
                    panic!("case {case} {version}: a malformed answer was accepted");
                };
                assert!(!failure.message.is_empty(), "case {case} {version}");
            }
        }
    }

    #[tokio::test]
    async fn a_silent_device_is_bounded_by_timeout_and_retries() {
        let address = responder(|_, _| None).await;
        let started = Instant::now();
        let Err(failure) = poll(&device(&address, "v2c"), None).await else {
            panic!("a silent device answered");
        };
        assert_eq!(failure.reason, "timeout");
        assert!(
            failure.message.contains("wrong community"),
            "{}",
            failure.message
        );
        // Two attempts of 200ms; far under a second however loaded the host.
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
