//! Active response on the agent: the set of blocks this host holds, the
//! safety rules every block passes, and the firewall that enforces them.
//!
//! - [`safety`]: addresses never blocked (loopback, the collector,
//!   `response.never_block`, open SSH sessions' peers).
//! - [`nftables`], [`iptables`]: one file per firewall backend; each turns
//!   a list of [`Change`]s into one update of the agent's own sets.
//! - [`state`]: `response.json`, the cursor and the blocks, on disk.
//! - [`delivery`]: receiving updates from the collector (the batch answer
//!   and the long poll) and acknowledging them; reporting decisions made
//!   offline.
//! - [`offline`]: offline mode's rules and their detection engine.
//!
//! [`Response`] owns the block list: updates from the collector go through
//! [`Response::apply_feed`], which checks each against the safety rules,
//! records dry runs, changes the kernel set in one transaction and writes
//! the state file, and returns the acknowledgement. Expiry is the kernel's
//! own (every element carries its timeout); the list forgets expired
//! blocks when it next looks. At start, and every minute, the list and the
//! kernel set are reconciled: the agent's own table or sets are recreated
//! if something removed them, blocks missing from the kernel are put back,
//! and (at start only) elements found in the set without a record are
//! adopted, so a crash or `kill -9` never flushes a block.
//!
//! Offline mode: once the collector has not been heard from for
//! `response.offline_after`, [`Responder::evaluate_offline`] runs the
//! agent's events through the host-scoped rules it was sent and turns
//! what fires into updates of its own (ids from
//! [`state::LOCAL_DECISIONS_FROM`]), which pass the same safety checks and
//! firewall as the collector's, in the mode last received. Those applied
//! are kept in `response.json` until the collector takes the report. A
//! collector update for the same address replaces the agent's own block:
//! the collector's decisions take over.
//!
//! Architecture invariant: the agent changes no firewall state but its own
//! table (`inet countywatch`) or its own ipsets and their two rules.

pub mod delivery;
pub mod iptables;
pub mod nftables;
pub mod offline;
pub mod safety;
pub mod state;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use countywatch_detect::response::ResponseScope;
use countywatch_wire::{
    DecisionAck, DecisionFeed, DecisionUpdate, Event, LocalDecision, MetricFamily, MetricKind,
    OfflineRules, RefusedUpdate, ResponseMode,
};

use crate::config::{CollectorUrl, FirewallBackend, ResponseConfig};
use offline::OfflineRuleSet;
use safety::{Guard, Refusal};
use state::{Block, MadeOffline, ResponseState, is_local};

/// Most decisions made offline kept for the report; beyond it the oldest
/// is dropped (counted), so an agent cut off for weeks stays bounded.
const MAX_UNREPORTED: usize = 10_000;

/// One change to the kernel set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Block `address` for `timeout` from now (replacing any timeout it had).
    Block {
        /// The address.
        address: IpAddr,
        /// How long from now.
        timeout: Duration,
    },
    /// Lift the block of `address`, if any.
    Unblock {
        /// The address.
        address: IpAddr,
    },
}

/// An element of the agent's kernel set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelEntry {
    /// The address.
    pub address: IpAddr,
    /// The time it has left; none for an element without a timeout.
    pub remaining: Option<Duration>,
}

/// Why a firewall program failed.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// The program could not be started (not installed).
    #[error("cannot run {program}: {source}")]
    Start {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The program ran and failed.
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        /// The program.
        program: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The start of what it printed on stderr.
        stderr: String,
    },
}

/// Runs `program` with `arguments`, `input` on its stdin, and returns its
/// stdout.
pub(crate) fn run_program(
    program: &str,
    arguments: &[&str],
    input: Option<&str>,
) -> Result<String, FirewallError> {
    let start = |source| FirewallError::Start {
        program: program.to_string(),
        source,
    };
    let mut child = Command::new(program)
        .args(arguments)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(start)?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A write error shows as the program's failure below.
        let _ = stdin.write_all(input.as_bytes());
    }
    let output = child.wait_with_output().map_err(start)?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(FirewallError::Failed {
        program: program.to_string(),
        status: output.status,
        stderr: stderr.trim().chars().take(500).collect(),
    })
}

/// A firewall the agent can drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firewall {
    /// nftables, [`nftables`].
    Nftables,
    /// iptables with ipset, [`iptables`].
    Iptables,
}

impl Firewall {
    /// The firewall `backend` names: `auto` picks nftables when `nft` runs,
    /// else iptables when `ipset` runs, else none; `off` is none.
    pub fn choose(backend: FirewallBackend) -> Option<Firewall> {
        let runs = |program: &str| run_program(program, &["--version"], None).is_ok();
        match backend {
            FirewallBackend::Off => None,
            FirewallBackend::Nftables => Some(Firewall::Nftables),
            FirewallBackend::Iptables => Some(Firewall::Iptables),
            FirewallBackend::Auto if runs("nft") => Some(Firewall::Nftables),
            FirewallBackend::Auto if runs("ipset") => Some(Firewall::Iptables),
            FirewallBackend::Auto => None,
        }
    }

    fn setup(self) -> Result<(), FirewallError> {
        match self {
            Firewall::Nftables => nftables::setup(),
            Firewall::Iptables => iptables::setup(),
        }
    }

    fn apply(self, changes: &[Change]) -> Result<(), FirewallError> {
        match self {
            Firewall::Nftables => nftables::apply(changes),
            Firewall::Iptables => iptables::apply(changes),
        }
    }

    /// The elements of the agent's sets now in the kernel.
    pub fn list(self) -> Result<Vec<KernelEntry>, FirewallError> {
        match self {
            Firewall::Nftables => nftables::list(),
            Firewall::Iptables => iptables::list(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Firewall::Nftables => "nftables",
            Firewall::Iptables => "iptables",
        }
    }
}

/// Counters of active response, reported with every batch.
#[derive(Debug, Default)]
pub struct ResponseStats {
    /// Blocks put into the firewall.
    applied_enforce: AtomicU64,
    /// Dry-run blocks recorded.
    applied_dry_run: AtomicU64,
    /// Refusals, by [`Refusal::LABELS`] index.
    refused: [AtomicU64; 8],
    /// Enforced blocks whose time ran out.
    expired: AtomicU64,
    /// Blocks the collector lifted.
    lifted: AtomicU64,
    /// Blocks lifted early to stay within `response.max_blocks`.
    evicted: AtomicU64,
    /// Enforced blocks held now.
    active_enforce: AtomicU64,
    /// Dry-run blocks held now.
    active_dry_run: AtomicU64,
    /// Whether the agent works offline now (1) or not (0).
    offline: AtomicU64,
    /// Offline rules held.
    offline_rules: AtomicU64,
    /// Detections of the offline rules.
    offline_detections: AtomicU64,
    /// Decisions made offline and applied, enforced.
    offline_enforce: AtomicU64,
    /// Decisions made offline and recorded in dry run.
    offline_dry_run: AtomicU64,
    /// Decisions made offline dropped unreported (over `MAX_UNREPORTED`,
    /// or refused by a collector that cannot read them).
    offline_unreported_dropped: AtomicU64,
    /// Decisions made offline waiting to be reported now; also read by
    /// the upkeep task, without the list's lock, to know whether to report.
    offline_unreported: AtomicU64,
}

impl ResponseStats {
    fn refuse(&self, refusal: &Refusal) {
        if let Some(index) = Refusal::LABELS
            .iter()
            .position(|label| *label == refusal.label())
        {
            self.refused[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The `countywatch_agent_response_*` families.
    pub fn families(&self) -> Vec<MetricFamily> {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64;
        let by_mode = |name: &'static str,
                       help: &'static str,
                       kind,
                       enforce: &AtomicU64,
                       dry_run: &AtomicU64| {
            let mut family = MetricFamily::new(name, help, kind);
            family.push(&[("mode", "enforce")], load(enforce));
            family.push(&[("mode", "dry_run")], load(dry_run));
            family
        };
        let applied = by_mode(
            "countywatch_agent_response_applied_total",
            "Block decisions applied: enforced in the firewall, or recorded in dry run.",
            MetricKind::Counter,
            &self.applied_enforce,
            &self.applied_dry_run,
        );
        let mut refused = MetricFamily::new(
            "countywatch_agent_response_refused_total",
            "Block decisions refused by this host, by reason (safety rules, expiry, firewall).",
            MetricKind::Counter,
        );
        for (label, counter) in Refusal::LABELS.iter().zip(&self.refused) {
            refused.push(&[("reason", label)], load(counter));
        }
        let active = by_mode(
            "countywatch_agent_response_active_blocks",
            "Blocks held now, by mode.",
            MetricKind::Gauge,
            &self.active_enforce,
            &self.active_dry_run,
        );
        let offline = by_mode(
            "countywatch_agent_response_offline_decisions_total",
            "Block decisions this agent made by itself while it could not reach the collector, by mode.",
            MetricKind::Counter,
            &self.offline_enforce,
            &self.offline_dry_run,
        );
        vec![
            applied,
            refused,
            active,
            offline,
            MetricFamily::single(
                "countywatch_agent_response_offline",
                "Whether the agent works offline now: it has not reached the collector for response.offline_after and evaluates its offline rules itself.",
                MetricKind::Gauge,
                load(&self.offline),
            ),
            MetricFamily::single(
                "countywatch_agent_response_offline_rules",
                "Host-scoped detection rules held for offline mode, as the collector listed them.",
                MetricKind::Gauge,
                load(&self.offline_rules),
            ),
            MetricFamily::single(
                "countywatch_agent_response_offline_detections_total",
                "Detections of the offline rules while the agent worked offline.",
                MetricKind::Counter,
                load(&self.offline_detections),
            ),
            MetricFamily::single(
                "countywatch_agent_response_offline_unreported",
                "Decisions made offline waiting to be reported to the collector.",
                MetricKind::Gauge,
                load(&self.offline_unreported),
            ),
            MetricFamily::single(
                "countywatch_agent_response_offline_unreported_dropped_total",
                "Decisions made offline never reported to the collector (too many waiting, or refused by it).",
                MetricKind::Counter,
                load(&self.offline_unreported_dropped),
            ),
            MetricFamily::single(
                "countywatch_agent_response_expired_total",
                "Enforced blocks whose time ran out (the kernel lifted them).",
                MetricKind::Counter,
                load(&self.expired),
            ),
            MetricFamily::single(
                "countywatch_agent_response_lifted_total",
                "Blocks the collector lifted before their time.",
                MetricKind::Counter,
                load(&self.lifted),
            ),
            MetricFamily::single(
                "countywatch_agent_response_evicted_total",
                "Blocks lifted early to stay within response.max_blocks.",
                MetricKind::Counter,
                load(&self.evicted),
            ),
        ]
    }
}

/// How often the collector's name is resolved again.
const RESOLVE_EVERY: Duration = Duration::from_secs(300);

/// The block list and what enforces it.
pub struct Response {
    /// The firewall, none with `backend: off` or none installed.
    firewall: Option<Firewall>,
    /// Whether `backend` asked for no firewall (else none was found).
    off: bool,
    /// `never_block` and the collector's addresses.
    guard: Guard,
    /// The collector's host and port, resolved again now and then.
    collector: CollectorUrl,
    /// When the collector was last resolved.
    resolved_at: Option<Instant>,
    /// Where `/proc` is, for the SSH sessions.
    procfs: PathBuf,
    /// Where `response.json` lives.
    state_dir: PathBuf,
    /// The cursor and blocks.
    state: ResponseState,
    /// `response.max_blocks`.
    max_blocks: usize,
    /// Counters, shared with the batch that reports them.
    stats: Arc<ResponseStats>,
    /// Offline mode's rules and engine.
    offline: OfflineRuleSet,
}

impl Response {
    /// Opens the block list in `state_dir`, sets up the firewall and
    /// reconciles the two. Nothing here stops the agent: a firewall that
    /// cannot be set up is logged, and its blocks are refused until it can.
    pub fn open(
        config: &ResponseConfig,
        collector: CollectorUrl,
        procfs: &Path,
        state_dir: &Path,
        now_ms: i64,
    ) -> Response {
        let state = match state::load(state_dir) {
            Ok(state) => state,
            Err(error) => {
                tracing::error!(%error, "starting active response afresh");
                if let state::StateError::Damaged { .. } = error
                    && let Err(error) = state::set_aside(state_dir, now_ms)
                {
                    tracing::error!(%error, "cannot move the damaged response state aside");
                }
                ResponseState::default()
            }
        };
        let firewall = Firewall::choose(config.backend);
        match (config.backend, firewall) {
            (FirewallBackend::Off, _) => {
                tracing::info!("active response: backend off, the firewall is never touched");
            }
            (_, None) => tracing::warn!(
                "active response: neither nft nor ipset runs here; blocks will be refused"
            ),
            (_, Some(firewall)) => {
                tracing::info!(backend = firewall.name(), "active response enabled")
            }
        }
        let mut response = Response {
            firewall,
            off: config.backend == FirewallBackend::Off,
            guard: Guard {
                never_block: config
                    .never_block
                    .iter()
                    .filter_map(|entry| {
                        countywatch_wire::Cidr::parse(&entry.value)
                            .ok()
                            .map(|block| (entry.value.clone(), block))
                    })
                    .collect(),
                collector: Vec::new(),
            },
            collector,
            resolved_at: None,
            procfs: procfs.to_path_buf(),
            state_dir: state_dir.to_path_buf(),
            state,
            max_blocks: config.max_blocks,
            stats: Arc::new(ResponseStats::default()),
            offline: OfflineRuleSet::load(state_dir),
        };
        response
            .stats
            .offline_rules
            .store(response.offline.rule_count() as u64, Ordering::Relaxed);
        response.reconcile(now_ms, true);
        response
    }

    /// The counters, for the batches.
    pub fn stats(&self) -> Arc<ResponseStats> {
        Arc::clone(&self.stats)
    }

    /// The last update id seen.
    pub fn cursor(&self) -> u64 {
        self.state.cursor
    }

    /// The blocks held, oldest first.
    pub fn blocks(&self) -> &[Block] {
        &self.state.blocks
    }

    /// Applies the updates of `feed` after the cursor and says what became
    /// of each.
    pub fn apply_feed(&mut self, feed: &DecisionFeed, now_ms: i64) -> DecisionAck {
        let fresh: Vec<DecisionUpdate> = feed
            .updates
            .iter()
            .filter(|update| update.id > self.state.cursor)
            .cloned()
            .collect();
        let ack = self.apply_updates(fresh, now_ms);
        let last = feed.updates.iter().map(|update| update.id).max();
        self.state.cursor = self
            .state
            .cursor
            .max(feed.cursor)
            .max(last.unwrap_or_default());
        self.state.mode = feed.mode;
        if let Some(rules) = &feed.offline_rules {
            self.replace_offline_rules(rules.clone());
        }
        self.save();
        ack
    }

    /// Replaces the offline rules with `rules` (kept on disk).
    pub fn replace_offline_rules(&mut self, rules: OfflineRules) {
        self.offline.replace(&self.state_dir, rules);
        self.stats
            .offline_rules
            .store(self.offline.rule_count() as u64, Ordering::Relaxed);
    }

    /// The offline rule set's version, for the long poll's query: the
    /// collector's digest is hex; anything else reads as none, so that the
    /// collector sends its set again.
    pub fn offline_rules_version(&self) -> String {
        let version = self.offline.version();
        if version.bytes().all(|byte| byte.is_ascii_alphanumeric()) {
            version.to_string()
        } else {
            String::new()
        }
    }

    /// Runs `events` through the offline rules and applies the blocks of
    /// what fires: host-scoped `block_source` responses, for at most the
    /// collector's `max_duration`, in the rule's mode or else the one last
    /// received. Returns the decisions made (applied or waiting).
    /// `new_outage` starts the rules' state afresh.
    pub fn evaluate_offline(&mut self, events: &[Event], now_ms: i64, new_outage: bool) -> usize {
        if new_outage {
            self.offline.start_outage();
        }
        let detections = self.offline.evaluate(events);
        self.stats
            .offline_detections
            .fetch_add(detections.len() as u64, Ordering::Relaxed);
        let mut updates = Vec::new();
        for detection in &detections {
            let Some(response) = detection
                .response
                .as_ref()
                .filter(|response| response.scope == ResponseScope::Host)
            else {
                continue;
            };
            let Some(address) = detection.source_address() else {
                tracing::warn!(rule = %detection.rule_id, "offline: no single source address to block");
                continue;
            };
            // The collector's never_block binds the agent's own decisions:
            // the collector would lift such a block at once anyway.
            if let Some(entry) = self.offline.never_block(address) {
                let refusal = Refusal::NeverBlock(format!("{entry}, the collector's"));
                tracing::warn!(%address, rule = %detection.rule_id, reason = %refusal, "offline: block refused");
                self.stats.refuse(&refusal);
                continue;
            }
            let id = state::LOCAL_DECISIONS_FROM.saturating_add(self.state.next_local);
            self.state.next_local = self.state.next_local.saturating_add(1);
            let mode = response.mode.unwrap_or(self.state.mode);
            let duration_ms = response
                .duration_ms
                .min(self.offline.max_duration_ms().max(1_000));
            let expires_at_ms = now_ms.saturating_add(duration_ms);
            tracing::warn!(%address, rule = %detection.rule_id, group = %detection.group_key, mode = ?mode, "offline: the collector is unreachable, blocking by this agent's own decision");
            updates.push(DecisionUpdate {
                id,
                decision: id,
                address,
                expires_at_ms,
                mode,
                reason: format!("{} (offline, by this agent)", detection.rule_id),
                removed: false,
            });
            self.state.made_offline.push(MadeOffline {
                id,
                report: LocalDecision {
                    address,
                    rule: detection.rule_id.clone(),
                    started_at_ms: now_ms,
                    expires_at_ms,
                    mode,
                    group_key: detection.group_key.clone(),
                    title: detection.title.clone(),
                    severity: detection.severity.as_str().to_string(),
                },
            });
        }
        let made = updates.len();
        if made > 0 {
            self.apply_updates(updates, now_ms);
        }
        made
    }

    /// The decisions made offline and applied that the collector has not
    /// been told of yet, oldest first.
    pub fn unreported(&self) -> &[LocalDecision] {
        &self.state.unreported
    }

    /// Forgets the first `count` unreported decisions: the collector has
    /// them (or refused them for good, `dropped`).
    pub fn reported(&mut self, count: usize, dropped: bool) {
        let count = count.min(self.state.unreported.len());
        self.state.unreported.drain(..count);
        if dropped {
            self.stats
                .offline_unreported_dropped
                .fetch_add(count as u64, Ordering::Relaxed);
        }
        self.save();
    }

    /// Moves the decisions made offline that `ack` applied to the report,
    /// and forgets those refused for good (not waiting for an SSH session).
    fn settle_offline(&mut self, ack: &DecisionAck, now_ms: i64) {
        if self.state.made_offline.is_empty() {
            return;
        }
        for id in &ack.applied {
            let Some(position) = self
                .state
                .made_offline
                .iter()
                .position(|made| made.id == *id)
            else {
                continue;
            };
            let made = self.state.made_offline.remove(position);
            let counter = match made.report.mode {
                ResponseMode::Enforce => &self.stats.offline_enforce,
                ResponseMode::DryRun => &self.stats.offline_dry_run,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            self.state.unreported.push(made.report);
        }
        let waiting: HashSet<u64> = self.state.deferred.iter().map(|update| update.id).collect();
        self.state
            .made_offline
            .retain(|made| waiting.contains(&made.id) && made.report.expires_at_ms > now_ms);
        let excess = self.state.unreported.len().saturating_sub(MAX_UNREPORTED);
        if excess > 0 {
            self.state.unreported.drain(..excess);
            self.stats
                .offline_unreported_dropped
                .fetch_add(excess as u64, Ordering::Relaxed);
        }
    }

    /// Applies the deferred updates whose address no longer has an open
    /// SSH session here (or has expired: those are dropped). Returns the
    /// acknowledgement of those applied, for the collector to replace the
    /// refusal it was sent; empty when nothing changed.
    pub fn retry_deferred(&mut self, now_ms: i64) -> DecisionAck {
        if self.state.deferred.is_empty() {
            return DecisionAck::default();
        }
        self.state
            .deferred
            .retain(|update| update.expires_at_ms > now_ms);
        let ssh_peers = safety::ssh_peers(&self.procfs);
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.state.deferred)
            .into_iter()
            .partition(|update| !ssh_peers.contains(&update.address.to_canonical()));
        self.state.deferred = waiting;
        let ack = if ready.is_empty() {
            DecisionAck::default()
        } else {
            tracing::info!(
                count = ready.len(),
                "SSH sessions ended; applying the blocks that waited for them"
            );
            self.apply_updates(ready, now_ms)
        };
        self.save();
        // The agent's own decisions are reported, not acknowledged.
        let mut ack = ack;
        ack.applied.retain(|id| !is_local(*id));
        ack.refused.retain(|refused| !is_local(refused.id));
        ack
    }

    /// Whether any update waits for an SSH session to end.
    pub fn has_deferred(&self) -> bool {
        !self.state.deferred.is_empty()
    }

    /// Applies `updates` (already past the cursor) and says what became of
    /// each. An update refused because its address has an open SSH session
    /// here is kept and tried again when the session ends
    /// ([`Response::retry_deferred`]): an officer's session is never cut,
    /// and an attacker's connection to sshd does not outlive its login
    /// grace time.
    fn apply_updates(&mut self, fresh: Vec<DecisionUpdate>, now_ms: i64) -> DecisionAck {
        let mut ack = DecisionAck::default();
        self.forget_expired(now_ms);
        self.refresh_collector();
        // /proc is read once per feed, and only when something may block.
        let ssh_peers = if fresh.iter().any(|update| !update.removed) {
            safety::ssh_peers(&self.procfs)
        } else {
            HashSet::new()
        };
        let mut dirty = BTreeSet::new();
        let mut pending = Vec::new();
        for update in &fresh {
            let address = update.address.to_canonical();
            if update.removed {
                self.state
                    .deferred
                    .retain(|deferred| deferred.decision != update.decision);
                let before = self.state.blocks.len();
                // The collector lifting an address lifts the agent's own
                // block of it too (its decisions take over), even when
                // the block it lifts never reached this agent.
                let collector_update = !is_local(update.id);
                self.state.blocks.retain(|block| {
                    block.decision != Some(update.decision)
                        && !(collector_update
                            && block.decision.is_some_and(is_local)
                            && block.address == address)
                });
                if self.state.blocks.len() < before {
                    self.stats.lifted.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%address, decision = update.decision, "block lifted by the collector");
                    dirty.insert(address);
                }
                ack.applied.push(update.id);
                continue;
            }
            let refusal = if update.expires_at_ms <= now_ms {
                Err(Refusal::Expired)
            } else {
                self.guard.check(address, &ssh_peers)
            }
            .and_then(|()| match (update.mode, self.firewall) {
                (ResponseMode::Enforce, None) if self.off => Err(Refusal::BackendOff),
                (ResponseMode::Enforce, None) => Err(Refusal::FirewallError(
                    "neither nft nor ipset is installed".to_string(),
                )),
                _ => Ok(()),
            });
            if let Err(refusal) = refusal {
                if refusal == Refusal::SshSession {
                    self.state
                        .deferred
                        .retain(|deferred| deferred.decision != update.decision);
                    self.state.deferred.push(update.clone());
                }
                tracing::warn!(%address, decision = update.decision, reason = %refusal, "block refused");
                self.stats.refuse(&refusal);
                ack.refused.push(RefusedUpdate {
                    id: update.id,
                    reason: refusal.to_string(),
                });
                continue;
            }
            // A new update of a decision replaces it; an adopted element
            // of the same address is now accounted for by the decision,
            // and so is the agent's own block of it from offline mode
            // when the update is the collector's: its decisions take over.
            let collector_update = !is_local(update.id);
            let before = self.state.blocks.len();
            self.state.blocks.retain(|block| {
                let own = block.decision.is_some_and(is_local);
                block.decision != Some(update.decision)
                    && !(block.decision.is_none() && block.address == address)
                    && !(collector_update && own && block.address == address)
            });
            if self.state.blocks.len() < before {
                dirty.insert(address);
            }
            self.state.blocks.push(Block {
                address,
                decision: Some(update.decision),
                started_at_ms: now_ms,
                expires_at_ms: update.expires_at_ms,
                mode: update.mode,
                reason: update.reason.clone(),
            });
            match update.mode {
                ResponseMode::Enforce => {
                    dirty.insert(address);
                    pending.push((update.id, update.decision, address));
                }
                ResponseMode::DryRun => {
                    tracing::info!(%address, decision = update.decision, reason = %update.reason, "dry run: would block");
                    self.stats.applied_dry_run.fetch_add(1, Ordering::Relaxed);
                    ack.applied.push(update.id);
                }
            }
        }
        self.evict(&mut dirty);
        let changes = self.changes_for(&dirty, now_ms);
        let result = match self.firewall {
            Some(firewall) => firewall.apply(&changes),
            None => Ok(()),
        };
        match result {
            Ok(()) => {
                for (id, decision, address) in pending {
                    tracing::info!(%address, decision, "blocked");
                    self.stats.applied_enforce.fetch_add(1, Ordering::Relaxed);
                    ack.applied.push(id);
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot update the firewall set");
                let refusal = Refusal::FirewallError(error.to_string());
                for (id, decision, _) in pending {
                    self.state
                        .blocks
                        .retain(|block| block.decision != Some(decision));
                    self.stats.refuse(&refusal);
                    ack.refused.push(RefusedUpdate {
                        id,
                        reason: refusal.to_string(),
                    });
                }
            }
        }
        self.settle_offline(&ack, now_ms);
        self.save();
        ack
    }

    /// Makes the kernel set match the list: sets the firewall up again
    /// (recreating the agent's table or sets if something removed them),
    /// puts back blocks missing from it and removes elements the list does
    /// not hold; at start (`adopt`) such elements are adopted instead,
    /// since a crash may have come between the kernel and the file.
    pub fn reconcile(&mut self, now_ms: i64, adopt: bool) {
        self.forget_expired(now_ms);
        let Some(firewall) = self.firewall else {
            self.publish();
            return;
        };
        if let Err(error) = firewall.setup() {
            tracing::error!(%error, "cannot set up the firewall for active response");
            self.publish();
            return;
        }
        let kernel = match firewall.list() {
            Ok(kernel) => kernel,
            Err(error) => {
                tracing::error!(%error, "cannot list the firewall set");
                self.publish();
                return;
            }
        };
        let in_kernel: HashSet<IpAddr> = kernel
            .iter()
            .map(|entry| entry.address.to_canonical())
            .collect();
        let mut dirty: BTreeSet<IpAddr> = self
            .enforced()
            .keys()
            .filter(|address| !in_kernel.contains(address))
            .copied()
            .collect();
        if !dirty.is_empty() {
            tracing::info!(
                missing = dirty.len(),
                "blocks missing from the firewall set, putting them back"
            );
        }
        let held = self.enforced();
        for entry in &kernel {
            let address = entry.address.to_canonical();
            if held.contains_key(&address) {
                continue;
            }
            if adopt {
                let remaining = entry.remaining.unwrap_or(Duration::from_secs(3600));
                tracing::info!(%address, ?remaining, "adopting a block found in the firewall set");
                self.state.blocks.push(Block {
                    address,
                    decision: None,
                    started_at_ms: now_ms,
                    expires_at_ms: now_ms
                        .saturating_add(i64::try_from(remaining.as_millis()).unwrap_or(i64::MAX)),
                    mode: ResponseMode::Enforce,
                    reason: "found in the firewall set at start".to_string(),
                });
                // An element without a timeout gets one.
                if entry.remaining.is_none() {
                    dirty.insert(address);
                }
            } else {
                tracing::warn!(%address, "removing an element the agent does not hold");
                dirty.insert(address);
            }
        }
        let changes = self.changes_for(&dirty, now_ms);
        if let Err(error) = firewall.apply(&changes) {
            tracing::error!(%error, "cannot update the firewall set");
        }
        self.save();
    }

    /// Enforced blocks by address, with the latest expiry of each.
    fn enforced(&self) -> BTreeMap<IpAddr, i64> {
        let mut enforced = BTreeMap::new();
        for block in &self.state.blocks {
            if block.mode == ResponseMode::Enforce {
                let expiry = enforced.entry(block.address).or_insert(block.expires_at_ms);
                *expiry = (*expiry).max(block.expires_at_ms);
            }
        }
        enforced
    }

    /// The kernel changes that make each address in `dirty` match the list.
    fn changes_for(&self, dirty: &BTreeSet<IpAddr>, now_ms: i64) -> Vec<Change> {
        let enforced = self.enforced();
        dirty
            .iter()
            .map(|address| match enforced.get(address) {
                Some(expiry) if *expiry > now_ms => Change::Block {
                    address: *address,
                    timeout: Duration::from_millis(
                        u64::try_from(expiry.saturating_sub(now_ms)).unwrap_or(1),
                    ),
                },
                _ => Change::Unblock { address: *address },
            })
            .collect()
    }

    /// Lifts the oldest blocks beyond `max_blocks`.
    fn evict(&mut self, dirty: &mut BTreeSet<IpAddr>) {
        while self.state.blocks.len() > self.max_blocks {
            let Some(oldest) = self
                .state
                .blocks
                .iter()
                .enumerate()
                .min_by_key(|(_, block)| block.started_at_ms)
                .map(|(index, _)| index)
            else {
                break;
            };
            let block = self.state.blocks.remove(oldest);
            tracing::warn!(address = %block.address, max_blocks = self.max_blocks, "response.max_blocks reached, lifting the oldest block");
            self.stats.evicted.fetch_add(1, Ordering::Relaxed);
            dirty.insert(block.address);
        }
    }

    /// Forgets blocks whose time ran out (the kernel already lifted them).
    fn forget_expired(&mut self, now_ms: i64) {
        let before = self.state.blocks.len();
        let mut expired = 0;
        self.state.blocks.retain(|block| {
            let live = block.expires_at_ms > now_ms;
            if !live && block.mode == ResponseMode::Enforce {
                expired += 1;
            }
            live
        });
        self.stats.expired.fetch_add(expired, Ordering::Relaxed);
        if self.state.blocks.len() != before {
            self.save();
        }
    }

    /// Resolves the collector's address again when it is time.
    fn refresh_collector(&mut self) {
        if self
            .resolved_at
            .is_some_and(|at| at.elapsed() < RESOLVE_EVERY)
        {
            return;
        }
        match safety::resolve_collector(&self.collector.host, self.collector.port) {
            Ok(addresses) => {
                self.guard.collector = addresses;
                self.resolved_at = Some(Instant::now());
            }
            // The addresses resolved before are kept.
            Err(error) => {
                tracing::warn!(%error, host = %self.collector.host, "cannot resolve the collector")
            }
        }
    }

    /// Writes the state file and publishes the gauges.
    fn save(&mut self) {
        if let Err(error) = state::save(&self.state_dir, &self.state) {
            tracing::error!(%error, "cannot save the response state");
        }
        self.publish();
    }

    fn publish(&self) {
        let count = |mode| {
            self.state
                .blocks
                .iter()
                .filter(|block| block.mode == mode)
                .count() as u64
        };
        self.stats
            .active_enforce
            .store(count(ResponseMode::Enforce), Ordering::Relaxed);
        self.stats
            .active_dry_run
            .store(count(ResponseMode::DryRun), Ordering::Relaxed);
        self.stats
            .offline_unreported
            .store(self.state.unreported.len() as u64, Ordering::Relaxed);
    }
}

/// A [`Response`] shared by the sender and the long poll, used from async
/// code: the firewall programs run on a blocking thread.
pub struct Responder {
    /// The list; a std mutex, held only on blocking threads.
    response: Mutex<Response>,
    /// Its counters, readable without the lock.
    stats: Arc<ResponseStats>,
    /// When the collector last answered (a batch, the long poll, a
    /// report), in milliseconds since the Unix epoch; the start counts, so
    /// that an agent started during an outage waits `offline_after` too.
    last_contact_ms: AtomicI64,
    /// `response.offline_after`, in milliseconds.
    offline_after_ms: i64,
    /// Whether the agent worked offline when last asked, so that the
    /// change is logged once each way.
    offline: AtomicBool,
    /// Set when an outage begins, taken by the first evaluation in it,
    /// which starts the rules' state afresh.
    new_outage: AtomicBool,
    /// The list's cursor, stored after every apply: the batch sender and
    /// the long poll read it without waiting for the lock, which an apply
    /// holds while `nft` runs (a batch held behind it was an attack's
    /// lines held too).
    cursor: AtomicU64,
}

impl Responder {
    /// Wraps `response`; the agent works offline once the collector has not
    /// answered for `offline_after`.
    pub fn new(response: Response, offline_after: Duration) -> Arc<Responder> {
        Arc::new(Responder {
            stats: response.stats(),
            cursor: AtomicU64::new(response.cursor()),
            response: Mutex::new(response),
            last_contact_ms: AtomicI64::new(countywatch_daemon::clock::now_ms()),
            offline_after_ms: i64::try_from(offline_after.as_millis()).unwrap_or(i64::MAX),
            offline: AtomicBool::new(false),
            new_outage: AtomicBool::new(false),
        })
    }

    /// The collector answered: offline mode ends (local evaluation stops;
    /// the decisions made meanwhile are reported by the upkeep task).
    pub fn contact(&self) {
        self.last_contact_ms
            .store(countywatch_daemon::clock::now_ms(), Ordering::Relaxed);
        if self.offline.swap(false, Ordering::Relaxed) {
            tracing::info!(
                "collector reachable again: offline mode ends, the collector's decisions take over"
            );
            self.stats.offline.store(0, Ordering::Relaxed);
        }
    }

    /// Whether the collector has not answered for `offline_after`.
    pub fn is_offline(&self) -> bool {
        let silent_ms = countywatch_daemon::clock::now_ms()
            .saturating_sub(self.last_contact_ms.load(Ordering::Relaxed));
        let offline = silent_ms > self.offline_after_ms;
        if offline && !self.offline.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                silent_ms,
                rules = self.stats.offline_rules.load(Ordering::Relaxed),
                "collector unreachable beyond response.offline_after: offline mode, evaluating host-scoped rules on this agent"
            );
            self.stats.offline.store(1, Ordering::Relaxed);
            self.new_outage.store(true, Ordering::Relaxed);
        }
        offline
    }

    /// The offline rule set's version, for the long poll.
    pub fn offline_rules_version(&self) -> String {
        self.lock().offline_rules_version()
    }

    /// Runs `events` through the offline rules when the agent works
    /// offline, on a blocking thread (a block runs `nft`); nothing
    /// otherwise.
    pub async fn evaluate_offline(self: &Arc<Self>, events: &[Event]) {
        if events.is_empty() || !self.is_offline() {
            return;
        }
        let responder = Arc::clone(self);
        let events = events.to_vec();
        let new_outage = self.new_outage.swap(false, Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || {
            responder.lock().evaluate_offline(
                &events,
                countywatch_daemon::clock::now_ms(),
                new_outage,
            )
        })
        .await;
    }

    /// The decisions made offline not yet reported; the list is locked
    /// only when there are some.
    pub fn unreported(&self) -> Vec<LocalDecision> {
        if self.stats.offline_unreported.load(Ordering::Relaxed) == 0 {
            return Vec::new();
        }
        self.lock().unreported().to_vec()
    }

    /// Forgets the first `count` unreported decisions (see
    /// [`Response::reported`]).
    pub async fn reported(self: &Arc<Self>, count: usize, dropped: bool) {
        let responder = Arc::clone(self);
        let _ =
            tokio::task::spawn_blocking(move || responder.lock().reported(count, dropped)).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Response> {
        self.response
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The cursor to send; never waits for an apply.
    pub fn cursor(&self) -> u64 {
        self.cursor.load(Ordering::Acquire)
    }

    /// The counters' families.
    pub fn metrics(&self) -> Vec<MetricFamily> {
        self.stats.families()
    }

    /// Applies `feed` on a blocking thread.
    pub async fn apply(self: &Arc<Self>, feed: DecisionFeed) -> DecisionAck {
        let responder = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut response = responder.lock();
            let ack = response.apply_feed(&feed, countywatch_daemon::clock::now_ms());
            responder.cursor.store(response.cursor(), Ordering::Release);
            ack
        })
        .await
        .unwrap_or_default()
    }

    /// Retries the updates waiting for SSH sessions to end, on a blocking
    /// thread; none when nothing waits.
    pub async fn retry_deferred(self: &Arc<Self>) -> DecisionAck {
        if !self.lock().has_deferred() {
            return DecisionAck::default();
        }
        let responder = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            responder
                .lock()
                .retry_deferred(countywatch_daemon::clock::now_ms())
        })
        .await
        .unwrap_or_default()
    }

    /// Reconciles on a blocking thread.
    pub async fn reconcile(self: &Arc<Self>) {
        let responder = Arc::clone(self);
        let _ = tokio::task::spawn_blocking(move || {
            responder
                .lock()
                .reconcile(countywatch_daemon::clock::now_ms(), false)
        })
        .await;
    }
}

/// One line of `countywatch-agent blocks list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedBlock {
    /// The block as recorded.
    pub block: Block,
    /// Whether the kernel set holds it: none when the set could not be
    /// read (no permission) or for a dry run.
    pub in_kernel: Option<bool>,
}

/// The blocks recorded in `state_dir` that have not expired, each checked
/// against the kernel set when `firewall` can list it, plus any element of
/// the set the record lacks. Reads only: safe while the daemon runs.
pub fn list_blocks(
    state_dir: &Path,
    firewall: Option<Firewall>,
    now_ms: i64,
) -> Result<Vec<ListedBlock>, state::StateError> {
    let state = state::load(state_dir)?;
    let kernel: Option<Vec<KernelEntry>> = firewall.and_then(|firewall| firewall.list().ok());
    let in_kernel: Option<HashSet<IpAddr>> = kernel.as_ref().map(|entries| {
        entries
            .iter()
            .map(|entry| entry.address.to_canonical())
            .collect()
    });
    let mut listed: Vec<ListedBlock> = state
        .blocks
        .into_iter()
        .filter(|block| block.expires_at_ms > now_ms)
        .map(|block| ListedBlock {
            in_kernel: match block.mode {
                ResponseMode::DryRun => None,
                ResponseMode::Enforce => in_kernel.as_ref().map(|set| set.contains(&block.address)),
            },
            block,
        })
        .collect();
    let recorded: HashSet<IpAddr> = listed.iter().map(|listed| listed.block.address).collect();
    for entry in kernel.into_iter().flatten() {
        let address = entry.address.to_canonical();
        if recorded.contains(&address) {
            continue;
        }
        let remaining = entry.remaining.unwrap_or_default();
        listed.push(ListedBlock {
            block: Block {
                address,
                decision: None,
                started_at_ms: now_ms,
                expires_at_ms: now_ms
                    .saturating_add(i64::try_from(remaining.as_millis()).unwrap_or(i64::MAX)),
                mode: ResponseMode::Enforce,
                reason: "in the firewall set, not yet in the agent's record".to_string(),
            },
            in_kernel: Some(true),
        });
    }
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use countywatch_wire::DecisionUpdate;

    use super::*;

    fn response(dir: &Path, backend: FirewallBackend, max_blocks: usize) -> Response {
        let config = ResponseConfig {
            backend,
            never_block: vec![crate::config::unspanned("192.0.2.0/24".to_string())],
            max_blocks,
            ..ResponseConfig::default()
        };
        let collector = CollectorUrl {
            host: "198.51.100.200".to_string(),
            port: 9781,
        };
        // An empty procfs: no SSH sessions.
        Response::open(&config, collector, dir, dir, 1_000)
    }

    fn update(id: u64, address: &str, expires_at_ms: i64, mode: ResponseMode) -> DecisionUpdate {
        DecisionUpdate {
            id,
            decision: id,
            address: address.parse().unwrap(),
            expires_at_ms,
            mode,
            reason: format!("rule incident {id}"),
            removed: false,
        }
    }

    fn feed(updates: Vec<DecisionUpdate>) -> DecisionFeed {
        DecisionFeed {
            cursor: updates.iter().map(|update| update.id).max().unwrap_or(0),
            updates,
            mode: ResponseMode::DryRun,
            more: false,
            offline_rules: None,
        }
    }

    #[test]
    fn offline_detections_block_in_the_mode_last_received_are_reported_and_give_way_to_the_collector()
     {
        let dir = tempfile::tempdir().unwrap();
        let mut response = response(dir.path(), FirewallBackend::Off, 100);
        // The rules come in a feed, as from the long poll.
        let mut with_rules = feed(Vec::new());
        with_rules.offline_rules = Some(offline::tests::rules());
        response.apply_feed(&with_rules, 1_000);
        assert_eq!(response.offline_rules_version(), "v1");
        let events: Vec<Event> = (0..3)
            .map(|n| offline::tests::failure(2_000 + n, "203.0.113.9"))
            .collect();
        assert_eq!(response.evaluate_offline(&events, 5_000, true), 1);
        // The feed's mode was dry run: recorded, nothing enforced.
        let block = response.blocks()[0].clone();
        assert!(block.decision.is_some_and(state::is_local), "{block:?}");
        assert_eq!(block.mode, ResponseMode::DryRun);
        // The rule asks for an hour; the collector's max_duration is ten minutes.
        assert_eq!(block.expires_at_ms, 5_000 + 600_000);
        let report = response.unreported().to_vec();
        assert_eq!(report.len(), 1);
        assert_eq!(report[0].rule, "local_brute_force");
        assert_eq!(report[0].group_key, "src_ip=203.0.113.9");
        assert_eq!(report[0].severity, "high");
        let text = metrics_text(&response.stats);
        assert!(
            text.contains("countywatch_agent_response_offline_decisions_total{mode=\"dry_run\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("countywatch_agent_response_offline_unreported 1"),
            "{text}"
        );
        // Kept across a restart until reported.
        let reopened = super::tests::response(dir.path(), FirewallBackend::Off, 100);
        assert_eq!(reopened.unreported(), report.as_slice());
        response.reported(1, false);
        assert!(response.unreported().is_empty());
        // The collector's decision for the address replaces the agent's own.
        response.apply_feed(
            &feed(vec![update(
                9,
                "203.0.113.9",
                900_000,
                ResponseMode::DryRun,
            )]),
            6_000,
        );
        assert_eq!(response.blocks().len(), 1);
        assert_eq!(response.blocks()[0].decision, Some(9));
        // The collector lifting an address lifts the agent's own block of
        // it, even for a decision whose block never reached the agent.
        let events: Vec<Event> = (0..3)
            .map(|n| offline::tests::failure(6_500 + n, "203.0.113.11"))
            .collect();
        assert_eq!(response.evaluate_offline(&events, 6_600, false), 1);
        assert_eq!(response.blocks().len(), 2);
        let mut lift = update(10, "203.0.113.11", 900_000, ResponseMode::DryRun);
        lift.decision = 77;
        lift.removed = true;
        response.apply_feed(&feed(vec![lift]), 6_700);
        assert_eq!(response.blocks().len(), 1);
        // With enforce last received, a backend that is off refuses the
        // block, and nothing is reported.
        let mut enforce = feed(Vec::new());
        enforce.cursor = 10;
        enforce.mode = ResponseMode::Enforce;
        response.apply_feed(&enforce, 7_000);
        let events: Vec<Event> = (0..3)
            .map(|n| offline::tests::failure(8_000 + n, "203.0.113.10"))
            .collect();
        assert_eq!(response.evaluate_offline(&events, 9_000, false), 1);
        // Only the dry run before waits to be reported, not the refusal.
        assert_eq!(response.unreported().len(), 1);
        // The collector's never_block, sent with the rules, binds offline
        // decisions too.
        let events: Vec<Event> = (0..3)
            .map(|n| offline::tests::failure(9_500 + n, "198.51.100.7"))
            .collect();
        assert_eq!(response.evaluate_offline(&events, 9_600, false), 0);
        assert!(
            metrics_text(&response.stats)
                .contains("countywatch_agent_response_refused_total{reason=\"never_block\"} 1")
        );
        assert_eq!(response.blocks().len(), 1);
    }

    #[test]
    fn the_agent_works_offline_only_while_the_collector_is_silent_for_offline_after() {
        let dir = tempfile::tempdir().unwrap();
        let responder = Responder::new(
            response(dir.path(), FirewallBackend::Off, 100),
            Duration::from_millis(50),
        );
        assert!(!responder.is_offline());
        std::thread::sleep(Duration::from_millis(80));
        assert!(responder.is_offline());
        assert!(metrics_text(&responder.stats).contains("countywatch_agent_response_offline 1"));
        responder.contact();
        assert!(!responder.is_offline());
        assert!(metrics_text(&responder.stats).contains("countywatch_agent_response_offline 0"));
    }

    #[test]
    fn with_backend_off_dry_runs_are_recorded_and_blocks_refused_by_reason() {
        let dir = tempfile::tempdir().unwrap();
        let mut response = response(dir.path(), FirewallBackend::Off, 100);
        let ack = response.apply_feed(
            &feed(vec![
                update(1, "203.0.113.1", 10_000, ResponseMode::DryRun),
                update(2, "203.0.113.2", 10_000, ResponseMode::Enforce),
                update(3, "127.0.0.1", 10_000, ResponseMode::DryRun),
                update(4, "192.0.2.9", 10_000, ResponseMode::Enforce),
                update(5, "198.51.100.200", 10_000, ResponseMode::Enforce),
                update(6, "203.0.113.6", 500, ResponseMode::DryRun),
            ]),
            1_000,
        );
        assert_eq!(ack.applied, vec![1]);
        let reasons: Vec<(u64, &str)> = ack
            .refused
            .iter()
            .map(|refused| (refused.id, refused.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (2, "response.backend is off on this host"),
                (3, "loopback address"),
                (4, "in response.never_block (192.0.2.0/24)"),
                (5, "the collector's address"),
                (6, "expired before it arrived"),
            ]
        );
        assert_eq!(response.cursor(), 6);
        assert_eq!(response.blocks().len(), 1);
        assert_eq!(response.blocks()[0].mode, ResponseMode::DryRun);
        let text = metrics_text(&response.stats());
        assert!(
            text.contains("countywatch_agent_response_refused_total{reason=\"backend_off\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("countywatch_agent_response_applied_total{mode=\"dry_run\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("countywatch_agent_response_active_blocks{mode=\"dry_run\"} 1"),
            "{text}"
        );
        // Seen updates are not applied twice (the batch answer and the long
        // poll may both carry them).
        let again = response.apply_feed(
            &feed(vec![update(1, "203.0.113.1", 10_000, ResponseMode::DryRun)]),
            1_000,
        );
        assert_eq!(again, DecisionAck::default());
        // The record survives a restart, and expiry forgets the block.
        let mut reopened = self::response(dir.path(), FirewallBackend::Off, 100);
        assert_eq!(reopened.cursor(), 6);
        assert_eq!(reopened.blocks().len(), 1);
        reopened.apply_feed(&feed(Vec::new()), 20_000);
        assert!(reopened.blocks().is_empty());
    }

    #[test]
    fn the_responder_s_cursor_follows_applies_and_never_waits_for_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let responder = Responder::new(
            self::response(dir.path(), FirewallBackend::Off, 100),
            Duration::from_secs(60),
        );
        assert_eq!(responder.cursor(), 0);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let far = countywatch_daemon::clock::now_ms() + 3_600_000;
        runtime.block_on(responder.apply(feed(vec![
            update(4, "203.0.113.1", far, ResponseMode::DryRun),
            update(7, "203.0.113.2", far, ResponseMode::DryRun),
        ])));
        assert_eq!(responder.cursor(), 7);
        // An apply holds the lock while `nft` runs; the batch sender reads
        // the cursor meanwhile.
        let held = responder.lock();
        let (sender, receiver) = std::sync::mpsc::channel();
        let reader = Arc::clone(&responder);
        std::thread::spawn(move || sender.send(reader.cursor()));
        assert_eq!(receiver.recv_timeout(Duration::from_secs(10)), Ok(7));
        drop(held);
    }

    #[test]
    fn a_removal_lifts_its_decision_and_the_oldest_block_is_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let mut response = response(dir.path(), FirewallBackend::Off, 2);
        response.apply_feed(
            &feed(vec![
                update(1, "203.0.113.1", 10_000, ResponseMode::DryRun),
                update(2, "203.0.113.2", 10_000, ResponseMode::DryRun),
            ]),
            1_000,
        );
        response.apply_feed(
            &feed(vec![update(3, "203.0.113.3", 10_000, ResponseMode::DryRun)]),
            2_000,
        );
        let addresses: Vec<String> = response
            .blocks()
            .iter()
            .map(|block| block.address.to_string())
            .collect();
        assert_eq!(addresses, ["203.0.113.2", "203.0.113.3"]);
        let mut removal = update(4, "203.0.113.2", 10_000, ResponseMode::DryRun);
        removal.decision = 2;
        removal.removed = true;
        let ack = response.apply_feed(&feed(vec![removal]), 2_000);
        assert_eq!(ack.applied, vec![4]);
        assert_eq!(response.blocks().len(), 1);
        let text = metrics_text(&response.stats());
        assert!(
            text.contains("countywatch_agent_response_evicted_total 1"),
            "{text}"
        );
        assert!(
            text.contains("countywatch_agent_response_lifted_total 1"),
            "{text}"
        );
    }

    #[test]
    fn changes_take_the_latest_expiry_of_an_address_and_unblock_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut response = response(dir.path(), FirewallBackend::Off, 100);
        for (decision, expiry) in [(1, 5_000), (2, 9_000)] {
            response.state.blocks.push(Block {
                address: "203.0.113.1".parse().unwrap(),
                decision: Some(decision),
                started_at_ms: 0,
                expires_at_ms: expiry,
                mode: ResponseMode::Enforce,
                reason: String::new(),
            });
        }
        let dirty: BTreeSet<IpAddr> = ["203.0.113.1", "203.0.113.2"]
            .iter()
            .map(|address| address.parse().unwrap())
            .collect();
        assert_eq!(
            response.changes_for(&dirty, 1_000),
            vec![
                Change::Block {
                    address: "203.0.113.1".parse().unwrap(),
                    timeout: Duration::from_millis(8_000),
                },
                Change::Unblock {
                    address: "203.0.113.2".parse().unwrap(),
                },
            ]
        );
    }

    #[test]
    fn a_block_of_an_open_ssh_sessions_peer_waits_until_the_session_ends() {
        let dir = tempfile::tempdir().unwrap();
        // The agent's procfs is the same directory: 203.0.113.7 has an
        // established connection to port 22.
        std::fs::create_dir(dir.path().join("net")).unwrap();
        let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
        let session = "   0: 0100000A:0016 077100CB:C350 01 00000000:00000000 02:0009A2B5 00000000     0        0 401 2 0000000000000000 20 4 30 10 -1\n";
        std::fs::write(dir.path().join("net/tcp"), format!("{header}{session}")).unwrap();
        let mut response = response(dir.path(), FirewallBackend::Off, 100);
        let ack = response.apply_feed(
            &feed(vec![
                update(1, "203.0.113.7", 100_000, ResponseMode::DryRun),
                update(2, "203.0.113.8", 100_000, ResponseMode::DryRun),
            ]),
            1_000,
        );
        assert_eq!(ack.applied, vec![2]);
        assert_eq!(ack.refused.len(), 1);
        assert!(
            ack.refused[0]
                .reason
                .starts_with("peer of an open SSH session"),
            "{ack:?}"
        );
        assert!(response.has_deferred());
        assert_eq!(response.retry_deferred(2_000), DecisionAck::default());
        // The session ends: the block applies, acknowledged as applied.
        std::fs::write(dir.path().join("net/tcp"), header).unwrap();
        let later = response.retry_deferred(3_000);
        assert_eq!(later.applied, vec![1]);
        assert!(!response.has_deferred());
        assert_eq!(response.blocks().len(), 2);

        // A deferred block the collector lifts meanwhile is forgotten.
        std::fs::write(dir.path().join("net/tcp"), format!("{header}{session}")).unwrap();
        let mut lifted = update(3, "203.0.113.7", 100_000, ResponseMode::DryRun);
        lifted.decision = 30;
        response.apply_feed(&feed(vec![lifted.clone()]), 4_000);
        assert!(response.has_deferred());
        lifted.id = 4;
        lifted.removed = true;
        response.apply_feed(&feed(vec![lifted]), 5_000);
        assert!(!response.has_deferred());
        // And one that expires while waiting is dropped.
        response.apply_feed(
            &feed(vec![update(5, "203.0.113.7", 6_000, ResponseMode::DryRun)]),
            5_000,
        );
        std::fs::write(dir.path().join("net/tcp"), header).unwrap();
        assert_eq!(response.retry_deferred(7_000), DecisionAck::default());
        assert!(!response.has_deferred());
    }

    fn metrics_text(stats: &ResponseStats) -> String {
        let families = stats.families();
        let refs: Vec<_> = families.iter().collect();
        let mut text = String::new();
        countywatch_wire::write_text(&mut text, &refs, &[]);
        text
    }
}
