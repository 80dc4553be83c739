//! The engine: runs every event through the rules that can match its kind,
//! keeps each rule's per-key state bounded (the least recently touched keys
//! are evicted, and counted, beyond `max_groups`) in key tables shared by
//! the rules with the same `group_by`, and turns firings into
//! [`Detection`]s. Its state can be saved as bytes and restored, so a
//! collector restart in the middle of a window still fires.
//!
//! **Architecture Invariant:** the engine has no clock and does no IO. Time
//! is the events' own (and what callers pass to [`Engine::advance`]); the
//! events behind a firing's evidence are fetched through the caller's
//! `lookup`, since the state keeps only their ids.

use std::borrow::Cow;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, Hash, Hasher};

use countywatch_labels::labels::Labels;
use countywatch_labels::template::Data;
use countywatch_wire::{Event, EventKind};
use serde::{Deserialize, Serialize};

use crate::calendar::Calendar;
use crate::condition::kind_bit;
use crate::detection::{Detection, Evidence};
use crate::field::Field;
use crate::kind::{self, GroupState, Hit, KindSpec, MatchContext};
use crate::rulefmt::Rule;
use crate::suppress;

/// How often, in event time, expired keys are dropped and absences checked.
const SWEEP_EVERY_MS: i64 = 1_000;
/// A full rule evicts this fraction of its cap at once (see
/// `KeyTable::evict`).
const EVICTION_BATCH_DIVISOR: usize = 16;
/// Why saved detection state was not restored; either way the engine
/// starts with empty windows.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Not a snapshot (a torn or foreign file).
    #[error("unreadable detection state: {0}")]
    Unreadable(serde_json::Error),
    /// A snapshot of another format version.
    #[error("detection state version {0} is not {SNAPSHOT_VERSION}")]
    Version(u32),
}

/// Version of the snapshot format.
const SNAPSHOT_VERSION: u32 = 1;

/// Looks up an event by the id the caller gave it.
pub type Lookup<'a> = dyn FnMut(i64) -> Option<Event> + 'a;

/// The detection engine over a set of rules.
pub struct Engine {
    /// The calendar `working_hours` and `time_of_day` use.
    calendar: Calendar,
    /// The rules with their state.
    rules: Vec<RuleRuntime>,
    /// For each event kind, the indexes of the rules that can match it.
    by_kind: Vec<Vec<usize>>,
    /// A random salt for hashing group keys, so that attacker-chosen keys
    /// cannot be made to collide; saved in snapshots, since keys are kept
    /// as their hashes only.
    salt: u64,
    /// The latest time seen (events or `advance`).
    clock_ms: i64,
    /// When the next sweep is due, in event time.
    next_sweep_ms: i64,
    /// Reused buffer for building group keys.
    key_buffer: String,
    /// The key tables, one per distinct `group_by` field set.
    tables: Vec<KeyTable>,
    /// Reused buffer for the values `distinct` and `new_value` remember.
    value_buffer: String,
    /// Template expansions that failed (the raw template is used instead).
    template_failures: u64,
}

/// A rule with its state.
struct RuleRuntime {
    /// The rule.
    rule: Rule,
    /// Its key table (in `Engine::tables`).
    table: usize,
    /// Its slot in that table's entries.
    slot: usize,
    /// Keys the rule holds now.
    held: usize,
    /// Keys evicted because `max_groups` was reached.
    evictions: u64,
    /// The rule's templates (title and annotations), one after the other:
    /// a template names the labels it reads literally, so a label whose
    /// name does not occur here is not given to them.
    template_text: String,
    /// Whether a template prints all labels (`{{ $labels }}`).
    templates_read_all: bool,
    /// The event fields whose label names occur in `template_text` (all
    /// of them if `templates_read_all`).
    template_fields: Vec<Field>,
    /// Detections produced.
    detections: u64,
    /// The first matching event's time (the `new_value` learning start).
    first_event_ms: Option<i64>,
}

/// The keys of the rules that group by the same fields (and have the same
/// cap), in one table: an
/// event's key is hashed and probed once for all of them (the shipped packs
/// group four rules by `src_ip` alone, and with 100,000 addresses every
/// probe of a separate table missed the cache), and the per-key overhead is
/// shared. Each rule keeps its own slot, touch time and bound.
struct KeyTable {
    /// The fields.
    group_by: Vec<Field>,
    /// The rules' common `max_groups`. Only rules with the same cap share
    /// a table: a full rule's eviction is a pass over the table, which
    /// then holds at most a few times the rule's cap, so the pass stays
    /// amortised over the sixteenth of the cap it evicts (a rule capped
    /// at 10 keys sharing with one holding a million would pass over the
    /// million for every new key).
    max_groups: usize,
    /// The rules using the table (indexes into `Engine::rules`), in slot order.
    rules: Vec<usize>,
    /// Per-key slots, by the key's salted hash.
    map: HashMap<u64, Entry, BuildHasherDefault<IdentityHasher>>,
    /// No slot can expire before this event time: the table is not swept
    /// until then. A lower bound: touches only push expiries later.
    next_expiry_ms: i64,
}

/// One key of a [`KeyTable`].
struct Entry {
    /// The latest time any rule touched the key: a sweep skips the slots
    /// of keys touched recently without reading them.
    touched_ms: i64,
    /// One slot per rule of the table; `None` when that rule holds no state
    /// for the key.
    slots: Box<[Option<Group>]>,
}

/// One rule's state for one group key. The key itself is not kept (only
/// its salted 64-bit hash, in the table): a detection's key is rebuilt from
/// the event that completed it. Two keys colliding would share a window;
/// with a random salt and 10 million keys that has a chance near 1 in
/// 100,000.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Group {
    /// The latest event time that touched the key for this rule.
    touched_ms: i64,
    /// Until when the key stays quiet after firing.
    quiet_until_ms: i64,
    /// For a rule that blocks on the hosts it saw attacked: the salted
    /// hashes of the hosts it fired for since it last fired outside a
    /// cooldown (`suppress::follows_to`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    fired_on: Vec<u64>,
    /// What the kind remembers.
    state: GroupState,
}

/// Counters for one rule, for metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleStats {
    /// The rule's id.
    pub rule_id: String,
    /// Keys held now.
    pub groups: usize,
    /// Keys evicted so far.
    pub evictions: u64,
    /// Detections so far.
    pub detections: u64,
}

/// What [`Engine::restore`] kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreSummary {
    /// Rules whose state was restored.
    pub rules_restored: usize,
    /// Keys restored.
    pub groups_restored: usize,
    /// Rules in the snapshot that are gone or changed meaning.
    pub rules_dropped: usize,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    clock_ms: i64,
    salt: u64,
    rules: Vec<RuleSnapshot>,
}

#[derive(Serialize, Deserialize)]
struct RuleSnapshot {
    id: String,
    signature: String,
    first_event_ms: Option<i64>,
    groups: Vec<(u64, Group)>,
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 << 8) | u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

impl Engine {
    /// An engine over `rules` with empty state.
    pub fn new(rules: Vec<Rule>, calendar: Calendar) -> Engine {
        let mut engine = Engine {
            calendar,
            rules: Vec::new(),
            by_kind: Vec::new(),
            salt: RandomState::new().hash_one(0u8),
            clock_ms: i64::MIN,
            next_sweep_ms: i64::MIN,
            key_buffer: String::new(),
            tables: Vec::new(),
            value_buffer: String::new(),
            template_failures: 0,
        };
        engine.set_rules(rules);
        engine
    }

    /// Replaces the rules (a reload), keeping the state of every rule whose
    /// id and meaning are unchanged.
    pub fn replace_rules(&mut self, rules: Vec<Rule>, calendar: Calendar) {
        let snapshot = self.snapshot();
        self.calendar = calendar;
        self.set_rules(rules);
        // Our own snapshot always parses.
        let _ = self.restore(&snapshot);
    }

    fn set_rules(&mut self, rules: Vec<Rule>) {
        self.by_kind = vec![Vec::new(); EventKind::ALL.len()];
        for (index, rule) in rules.iter().enumerate() {
            for kind in EventKind::ALL {
                if rule.kinds & kind_bit(*kind) != 0
                    && let Some(list) = self.by_kind.get_mut(*kind as usize)
                {
                    list.push(index);
                }
            }
        }
        self.tables = Vec::new();
        self.rules = Vec::with_capacity(rules.len());
        for (index, rule) in rules.into_iter().enumerate() {
            // A rule that fires on every match without a cooldown keeps
            // nothing per key.
            let (table, slot) = if keeps_state(&rule) {
                let table = match self.tables.iter().position(|table| {
                    table.group_by == rule.group_by && table.max_groups == rule.max_groups
                }) {
                    Some(found) => found,
                    None => {
                        self.tables.push(KeyTable {
                            group_by: rule.group_by.clone(),
                            max_groups: rule.max_groups,
                            rules: Vec::new(),
                            map: HashMap::default(),
                            next_expiry_ms: i64::MIN,
                        });
                        self.tables.len() - 1
                    }
                };
                let mut slot = usize::MAX;
                if let Some(found) = self.tables.get_mut(table) {
                    slot = found.rules.len();
                    found.rules.push(index);
                }
                (table, slot)
            } else {
                (usize::MAX, usize::MAX)
            };
            let mut template_text = rule.title.source().to_string();
            for (_, template) in &rule.annotations {
                template_text.push('\n');
                template_text.push_str(template.source());
            }
            for title in rule.i18n.values().filter_map(|text| text.title.as_ref()) {
                template_text.push('\n');
                template_text.push_str(title.source());
            }
            let templates_read_all = names_all_labels(&template_text);
            let template_fields = Field::ALL
                .iter()
                .copied()
                .filter(|field| {
                    templates_read_all || template_text.contains(label_name(*field).as_ref())
                })
                .collect();
            self.rules.push(RuleRuntime {
                template_text,
                templates_read_all,
                template_fields,
                rule,
                table,
                slot,
                held: 0,
                evictions: 0,
                detections: 0,
                first_event_ms: None,
            });
        }
    }

    /// The loaded rules.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|runtime| &runtime.rule)
    }

    /// Runs one event through the rules; `event_id` is how `lookup` finds
    /// it again. Detections are appended to `out`.
    pub fn process(
        &mut self,
        event: &Event,
        event_id: i64,
        lookup: &mut Lookup<'_>,
        out: &mut Vec<Detection>,
    ) {
        let at_ms = event.timestamp_ms;
        if at_ms >= self.next_sweep_ms {
            self.advance(at_ms, lookup, out);
        }
        self.clock_ms = self.clock_ms.max(at_ms);
        let Some(candidates) = self
            .by_kind
            .get_mut(event.kind as usize)
            .map(std::mem::take)
        else {
            return;
        };
        let hit = Hit {
            at_ms,
            id: event_id,
        };
        let mut last_key: Option<(usize, u64)> = None;
        for &index in &candidates {
            let Some(runtime) = self.rules.get_mut(index) else {
                continue;
            };
            let rule = &runtime.rule;
            if !rule.condition.matches(event, &self.calendar) {
                continue;
            }
            let mut steps = [0usize; kind::sequence::MAX_STEPS];
            let mut matched_steps = 0;
            if let Some(conditions) = rule.kind.steps() {
                for (step, (condition, _)) in conditions.iter().enumerate() {
                    if condition.matches(event, &self.calendar) && matched_steps < steps.len() {
                        steps[matched_steps] = step;
                        matched_steps += 1;
                    }
                }
                if matched_steps == 0 {
                    continue;
                }
            }
            if suppress::is_allowed(rule, event, &self.calendar) {
                continue;
            }
            let first_event_ms = *runtime.first_event_ms.get_or_insert(at_ms);
            if !keeps_state(rule) {
                runtime.detections += 1;
                let hits = kind::single::on_match(hit);
                let key = group_key(&rule.group_by, event, &mut self.key_buffer).to_string();
                out.push(self.build(index, &key, &hits, at_ms, Some(event), lookup));
                continue;
            }
            // Rules grouping by the same fields share one table, so the
            // key is built, hashed and probed (a cache miss with many keys)
            // once; the next rules' probes find it in the cache.
            let table_index = runtime.table;
            let Some(table) = self.tables.get_mut(table_index) else {
                continue;
            };
            let hash = match last_key {
                Some((seen, hash)) if seen == table_index => hash,
                _ => {
                    let key = group_key(&table.group_by, event, &mut self.key_buffer);
                    let hash = salted_hash(self.salt, key);
                    last_key = Some((table_index, hash));
                    table.prefetch(hash);
                    hash
                }
            };
            let Some(group) = table.touch(hash, at_ms, runtime) else {
                continue;
            };
            let rule = &runtime.rule;
            let fired = rule.kind.on_match(
                &mut group.state,
                event,
                hit,
                &mut MatchContext {
                    value_buffer: &mut self.value_buffer,
                    first_event_ms,
                    matched_steps: &steps[..matched_steps],
                },
            );
            let Some(hits) = fired else {
                continue;
            };
            let host = suppress::blocks_per_host(rule).then(|| salted_hash(self.salt, &event.host));
            let cooling_down = suppress::is_cooling_down(group.quiet_until_ms, at_ms);
            if cooling_down && !host.is_some_and(|host| suppress::follows_to(&group.fired_on, host))
            {
                continue;
            }
            if let Some(host) = host {
                suppress::remember_host(&mut group.fired_on, host, cooling_down);
            }
            if !cooling_down {
                group.quiet_until_ms = suppress::quiet_until(rule, at_ms);
            }
            let key = group_key(&rule.group_by, event, &mut self.key_buffer).to_string();
            runtime.detections += 1;
            out.push(self.build(index, &key, &hits, at_ms, Some(event), lookup));
        }
        if let Some(slot) = self.by_kind.get_mut(event.kind as usize) {
            *slot = candidates;
        }
    }

    /// Moves the event clock to `now_ms`: drops keys whose window has
    /// passed and fires absences that are due. Events advance it; replay
    /// and tests call it to move time past the last event.
    pub fn advance(&mut self, now_ms: i64, lookup: &mut Lookup<'_>, out: &mut Vec<Detection>) {
        self.clock_ms = self.clock_ms.max(now_ms);
        self.next_sweep_ms = now_ms.saturating_add(SWEEP_EVERY_MS);
        for table in &mut self.tables {
            table.expire(now_ms, &mut self.rules);
        }
        self.fire_absences(now_ms, lookup, out);
    }

    /// Fires the absences due at `now_ms` without dropping any window: a
    /// collector calls this with its wall clock, since silence is measured
    /// in real time, while windows follow the events' own time (events that
    /// arrive late, from a spool, must still count together).
    pub fn fire_absences(
        &mut self,
        now_ms: i64,
        lookup: &mut Lookup<'_>,
        out: &mut Vec<Detection>,
    ) {
        for index in 0..self.rules.len() {
            let Some(runtime) = self.rules.get_mut(index) else {
                continue;
            };
            if !runtime.rule.kind.fires_on_time() {
                continue;
            }
            let Some(table) = self.tables.get_mut(runtime.table) else {
                continue;
            };
            let mut due = Vec::new();
            let groups = table
                .map
                .values_mut()
                .filter_map(|entry| entry.slots.get_mut(runtime.slot)?.as_mut());
            for group in groups {
                if let Some(hit) = runtime.rule.kind.fire_due(&mut group.state, now_ms)
                    && !suppress::is_cooling_down(group.quiet_until_ms, now_ms)
                {
                    group.quiet_until_ms = suppress::quiet_until(&runtime.rule, now_ms);
                    due.push(hit);
                }
            }
            runtime.detections += due.len() as u64;
            for hit in due {
                let trigger = lookup(hit.id);
                let group_by = self
                    .rules
                    .get(index)
                    .map(|runtime| runtime.rule.group_by.clone())
                    .unwrap_or_default();
                let key = trigger
                    .as_ref()
                    .map(|event| group_key(&group_by, event, &mut self.key_buffer).to_string())
                    .unwrap_or_default();
                out.push(self.build(index, &key, &[hit], now_ms, trigger.as_ref(), lookup));
            }
        }
    }

    /// Builds the detection for rule `index` and key `key` from its hits.
    fn build(
        &mut self,
        index: usize,
        key: &str,
        hits: &[Hit],
        at_ms: i64,
        trigger: Option<&Event>,
        lookup: &mut Lookup<'_>,
    ) -> Detection {
        let Some(runtime) = self.rules.get(index) else {
            return Detection {
                rule_id: String::new(),
                title: String::new(),
                severity: crate::Severity::Info,
                group_key: key.to_string(),
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
                tags: Vec::new(),
                hosts: Vec::new(),
                at_ms,
                evidence: Vec::new(),
                response: None,
            };
        };
        let rule = &runtime.rule;
        let mut labels: BTreeMap<String, String> = rule.labels.iter().cloned().collect();
        if let Some(event) = trigger {
            for field in &rule.group_by {
                if let Some(value) = field.get(event) {
                    labels.insert(label_name(*field).into_owned(), value.to_text());
                }
            }
        }
        labels.insert("rule_id".to_string(), rule.id.clone());
        labels.insert("alertname".to_string(), rule.id.clone());
        labels.insert("severity".to_string(), rule.severity.as_str().to_string());
        // Templates see the event's fields, then the detection's labels
        // (a later pair replaces an earlier one of the same name); only
        // those their text names, since building the rest was most of the
        // cost of a detection.
        let event_values = runtime.template_fields.iter().filter_map(|field| {
            let value = trigger.and_then(|event| field.get(event))?;
            Some((label_name(*field), Cow::Owned(value.to_text())))
        });
        let template_labels = Labels::from_pairs(
            event_values.chain(
                labels
                    .iter()
                    .filter(|(name, _)| {
                        runtime.templates_read_all || runtime.template_text.contains(name.as_str())
                    })
                    .map(|(name, value)| {
                        (Cow::Borrowed(name.as_str()), Cow::Borrowed(value.as_str()))
                    }),
            ),
        );
        let external = BTreeMap::new();
        let data = Data {
            labels: &template_labels,
            external_labels: &external,
            value: hits.len() as f64,
        };
        let mut failures = 0;
        let mut render = |template: &countywatch_labels::template::Template| {
            template.render(&data).unwrap_or_else(|_| {
                failures += 1;
                template.source().to_string()
            })
        };
        let title = render(&rule.title);
        // Translated titles travel as `title_<language>` annotations, like
        // the alerting packs' `summary_zh`: the page and notifications show
        // them with the same fields as the title.
        let mut annotations: BTreeMap<String, String> = rule
            .annotations
            .iter()
            .map(|(name, template)| (name.clone(), render(template)))
            .collect();
        for (language, text) in &rule.i18n {
            if let Some(template) = &text.title {
                annotations.insert(format!("title_{language}"), render(template));
            }
        }
        let kept = &hits[hits.len().saturating_sub(rule.evidence)..];
        let mut evidence = Vec::with_capacity(kept.len());
        for hit in kept {
            let event = match trigger {
                Some(event) if event.timestamp_ms == hit.at_ms && Some(hit) == hits.last() => {
                    Some(event.clone())
                }
                _ => lookup(hit.id),
            };
            if let Some(event) = event {
                evidence.push(Evidence {
                    event_id: (hit.id >= 0).then_some(hit.id),
                    event,
                });
            }
        }
        let mut hosts: Vec<&str> = evidence
            .iter()
            .map(|item| item.event.host.as_str())
            .filter(|host| !host.is_empty())
            .collect();
        hosts.sort_unstable();
        hosts.dedup();
        let hosts = hosts.into_iter().map(str::to_string).collect();
        let detection = Detection {
            rule_id: rule.id.clone(),
            title,
            severity: rule.severity,
            group_key: key.to_string(),
            labels,
            annotations,
            tags: rule.tags.clone(),
            hosts,
            at_ms,
            evidence,
            response: rule.response.clone(),
        };
        self.template_failures += failures;
        detection
    }

    /// Per-rule counters.
    pub fn rule_stats(&self) -> Vec<RuleStats> {
        self.rules
            .iter()
            .map(|runtime| RuleStats {
                rule_id: runtime.rule.id.clone(),
                groups: runtime.held,
                evictions: runtime.evictions,
                detections: runtime.detections,
            })
            .collect()
    }

    /// Template expansions that failed so far.
    pub fn template_failures(&self) -> u64 {
        self.template_failures
    }

    /// Keys held across all rules.
    pub fn group_count(&self) -> usize {
        self.rules.iter().map(|runtime| runtime.held).sum()
    }

    /// An estimate of the memory the state takes, in bytes: the hash
    /// tables at their capacity, each key's slots and the kinds' lists.
    pub fn state_bytes(&self) -> usize {
        self.tables
            .iter()
            .map(|table| {
                let buckets = table.map.capacity() * (size_of::<(u64, Entry)>() + 1);
                let slots: usize = table
                    .map
                    .values()
                    .map(|entry| {
                        entry.slots.len() * size_of::<Option<Group>>()
                            + entry
                                .slots
                                .iter()
                                .flatten()
                                .map(|group| group.state.heap_bytes())
                                .sum::<usize>()
                    })
                    .sum();
                buckets + slots
            })
            .sum()
    }

    /// The state as bytes, for persistence.
    pub fn snapshot(&self) -> Vec<u8> {
        let snapshot = Snapshot {
            version: SNAPSHOT_VERSION,
            clock_ms: self.clock_ms,
            salt: self.salt,
            rules: self
                .rules
                .iter()
                .map(|runtime| RuleSnapshot {
                    id: runtime.rule.id.clone(),
                    signature: runtime.rule.signature.clone(),
                    first_event_ms: runtime.first_event_ms,
                    groups: self
                        .tables
                        .get(runtime.table)
                        .map(|table| {
                            table
                                .map
                                .iter()
                                .filter_map(|(hash, entry)| {
                                    let group = entry.slots.get(runtime.slot)?.as_ref()?;
                                    Some((*hash, group.clone()))
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect(),
        };
        serde_json::to_vec(&snapshot).unwrap_or_default()
    }

    /// Restores state saved by [`Engine::snapshot`] into the rules that
    /// still exist with the same meaning; the others' state is dropped.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<RestoreSummary, RestoreError> {
        let snapshot: Snapshot = serde_json::from_slice(bytes).map_err(RestoreError::Unreadable)?;
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(RestoreError::Version(snapshot.version));
        }
        let mut summary = RestoreSummary::default();
        self.clock_ms = self.clock_ms.max(snapshot.clock_ms);
        // The saved hashes are salted with the saved salt: adopt it, and
        // forget any key hashed with ours.
        self.salt = snapshot.salt;
        for table in &mut self.tables {
            table.map.clear();
            table.next_expiry_ms = i64::MIN;
        }
        for runtime in &mut self.rules {
            runtime.held = 0;
        }
        for saved in snapshot.rules {
            let Some(runtime) = self.rules.iter_mut().find(|runtime| {
                runtime.rule.id == saved.id && runtime.rule.signature == saved.signature
            }) else {
                summary.rules_dropped += 1;
                continue;
            };
            summary.rules_restored += 1;
            runtime.first_event_ms = saved.first_event_ms;
            let mut groups = saved.groups;
            groups.sort_by_key(|(_, group)| group.touched_ms);
            // Keep the most recently touched keys if the cap went down.
            let skip = groups.len().saturating_sub(runtime.rule.max_groups);
            let Some(table) = self.tables.get_mut(runtime.table) else {
                continue;
            };
            let slots = table.rules.len();
            for (hash, group) in groups.into_iter().skip(skip) {
                let entry = table.map.entry(hash).or_insert_with(|| Entry::new(slots));
                entry.touched_ms = entry.touched_ms.max(group.touched_ms);
                if let Some(slot) = entry.slots.get_mut(runtime.slot) {
                    *slot = Some(group);
                    runtime.held += 1;
                    summary.groups_restored += 1;
                }
            }
        }
        Ok(summary)
    }
}

impl Entry {
    /// A key with no rule's state yet.
    fn new(slots: usize) -> Entry {
        Entry {
            touched_ms: i64::MIN,
            slots: (0..slots).map(|_| None).collect(),
        }
    }
}

impl KeyTable {
    /// Reads the first word of each of the key's slots' lists before the
    /// rules run: with 100,000 keys each list is a cache miss, and asking
    /// for them all at once lets the misses overlap instead of each rule
    /// waiting for its own in turn.
    fn prefetch(&self, hash: u64) {
        if let Some(entry) = self.map.get(&hash) {
            for group in entry.slots.iter().flatten() {
                std::hint::black_box(group.state.first_heap_word());
            }
        }
    }

    /// The group of `runtime`'s rule for the key, created when new
    /// (evicting the rule's least recently touched keys if it is full),
    /// and marked touched at `at_ms`. `None` only if the rule has no slot
    /// here, which [`Engine::set_rules`] rules out.
    fn touch<'a>(
        &'a mut self,
        hash: u64,
        at_ms: i64,
        runtime: &mut RuleRuntime,
    ) -> Option<&'a mut Group> {
        let slot = runtime.slot;
        // Below the cap one hash lookup suffices (the entry below).
        if runtime.held >= runtime.rule.max_groups
            && !self
                .map
                .get(&hash)
                .is_some_and(|entry| entry.slots.get(slot).is_some_and(Option::is_some))
        {
            self.evict(runtime);
        }
        let slots = self.rules.len();
        let entry = self.map.entry(hash).or_insert_with(|| Entry::new(slots));
        entry.touched_ms = entry.touched_ms.max(at_ms);
        let place = entry.slots.get_mut(slot)?;
        if place.is_none() {
            runtime.held += 1;
            self.next_expiry_ms = self
                .next_expiry_ms
                .min(at_ms.saturating_add(retention_ms(&runtime.rule)));
        }
        let group = place.get_or_insert_with(|| Group {
            touched_ms: at_ms,
            quiet_until_ms: i64::MIN,
            fired_on: Vec::new(),
            state: runtime.rule.kind.initial_state(Hit { at_ms, id: -1 }),
        });
        group.touched_ms = group.touched_ms.max(at_ms);
        Some(group)
    }

    /// Makes room for one more key of `runtime`'s rule: removes its least
    /// recently touched keys, a sixteenth of its cap at a time (at least
    /// as many as needed), so that finding them, a pass over the table,
    /// costs each new key a few steps rather than a pass each.
    fn evict(&mut self, runtime: &mut RuleRuntime) {
        let slot = runtime.slot;
        let needed = (runtime.held + 1).saturating_sub(runtime.rule.max_groups);
        let mut touched: Vec<(i64, u64)> = self
            .map
            .iter()
            .filter_map(|(hash, entry)| {
                let group = entry.slots.get(slot)?.as_ref()?;
                Some((group.touched_ms, *hash))
            })
            .collect();
        let batch = needed
            .max(runtime.rule.max_groups / EVICTION_BATCH_DIVISOR)
            .min(touched.len());
        if batch == 0 {
            return;
        }
        if batch < touched.len() {
            touched.select_nth_unstable(batch - 1);
        }
        for (_, hash) in touched.iter().take(batch) {
            let Some(entry) = self.map.get_mut(hash) else {
                continue;
            };
            if let Some(place) = entry.slots.get_mut(slot)
                && place.take().is_some()
            {
                runtime.held = runtime.held.saturating_sub(1);
                runtime.evictions += 1;
            }
            if entry.slots.iter().all(Option::is_none) {
                self.map.remove(hash);
            }
        }
    }

    /// Drops the slots untouched for longer than they can matter to their
    /// rule. A pass over the table, so it runs only when a slot may be due,
    /// and at most every eighth of the shortest retention: a slot outlives
    /// its retention by at most that much, which no kind notices (each
    /// drops its own hits that left the window) and `max_groups` bounds.
    fn expire(&mut self, now_ms: i64, rules: &mut [RuleRuntime]) {
        if now_ms < self.next_expiry_ms {
            return;
        }
        let retentions: Vec<i64> = self
            .rules
            .iter()
            .map(|index| {
                rules
                    .get(*index)
                    .map_or(i64::MAX, |r| retention_ms(&r.rule))
            })
            .collect();
        let shortest = retentions.iter().copied().min().unwrap_or(i64::MAX);
        if shortest == i64::MAX {
            self.next_expiry_ms = i64::MAX;
            return;
        }
        let mut removed = vec![0usize; retentions.len()];
        let mut next = i64::MAX;
        self.map.retain(|_, entry| {
            let mut kept = false;
            for ((place, retention), removed) in entry
                .slots
                .iter_mut()
                .zip(&retentions)
                .zip(removed.iter_mut())
            {
                let Some(group) = place else {
                    continue;
                };
                let expiry = group.touched_ms.saturating_add(*retention);
                if expiry < now_ms {
                    *place = None;
                    *removed += 1;
                } else {
                    next = next.min(expiry);
                    kept = true;
                }
            }
            kept
        });
        for (index, removed) in self.rules.iter().zip(removed) {
            if let Some(runtime) = rules.get_mut(*index) {
                runtime.held = runtime.held.saturating_sub(removed);
            }
        }
        let gap = (shortest / 8).max(SWEEP_EVERY_MS);
        self.next_expiry_ms = next.max(now_ms.saturating_add(gap));
    }
}

/// Whether template text uses `$labels` or `.Labels` whole (not one label
/// of it, `$labels.user`).
fn names_all_labels(text: &str) -> bool {
    ["$labels", ".Labels"].iter().any(|operand| {
        text.match_indices(operand)
            .any(|(at, _)| !text[at + operand.len()..].starts_with('.'))
    })
}

/// Whether a rule keeps state per key: all but those that fire on every
/// match with no cooldown.
fn keeps_state(rule: &Rule) -> bool {
    !(matches!(rule.kind, KindSpec::Single) && rule.cooldown_ms == 0)
}

/// How long a rule's key can matter after its last touch.
fn retention_ms(rule: &Rule) -> i64 {
    rule.kind.retention_ms().max(rule.cooldown_ms)
}

/// The group key's hash, salted. `DefaultHasher::new()` is SipHash with
/// fixed keys (the salt is what makes it unpredictable); should a Rust
/// release change its algorithm, a snapshot taken before the upgrade would
/// restore into keys nothing matches: windows start empty, nothing worse.
fn salted_hash(salt: u64, key: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    salt.hash(&mut hasher);
    key.hash(&mut hasher);
    hasher.finish()
}

/// Builds the canonical group key (`src_ip=203.0.113.9,host=web1`) into
/// `buffer` and returns it; an unset field is written empty.
fn group_key<'a>(fields: &[Field], event: &Event, buffer: &'a mut String) -> &'a str {
    buffer.clear();
    for (index, field) in fields.iter().enumerate() {
        if index > 0 {
            buffer.push(',');
        }
        buffer.push_str(field.name());
        buffer.push('=');
        if let Some(value) = field.get(event) {
            value.write_to(buffer);
        }
    }
    buffer
}

/// The label name of a field (`after.sha256` becomes `after_sha256`).
fn label_name(field: Field) -> Cow<'static, str> {
    let name = field.name();
    if name.contains('.') {
        Cow::Owned(name.replace('.', "_"))
    } else {
        Cow::Borrowed(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rulefmt;
    use countywatch_wire::EventSource;
    use std::path::Path;

    fn engine(yaml: &str) -> Engine {
        let rules = rulefmt::parse(Path::new("r.yaml"), yaml).unwrap_or_else(|p| panic!("{p}"));
        Engine::new(rules, Calendar::default())
    }

    fn failed(at_ms: i64, ip: &str) -> Event {
        let mut event = Event::new(at_ms, EventSource::Auth, EventKind::SshLoginFailed);
        event.host = "web1".into();
        event.fields.src_ip = ip.parse().ok();
        event.fields.user = Some("root".into());
        event
    }

    /// Runs events (ids are positions) and returns the detections.
    fn run(engine: &mut Engine, events: &[Event]) -> Vec<Detection> {
        crate::unittest::run_events(engine, events, None)
    }

    const BRUTE: &str = "rules:\n  - {id: brute, title: 'from {{ $labels.src_ip }} as {{ $labels.user }}, {{ $value }} times', severity: high, match: {kind: ssh_login_failed}, group_by: [src_ip], max_groups: 3, threshold: {count: 3, window: 1m}, cooldown: 5m, labels: {team: sec}}\n";

    #[test]
    fn translated_titles_render_with_the_event_s_fields() {
        let mut engine = engine(
            "rules:\n  - {id: root, title: 'root on {{ $labels.host }}', i18n: {zh: {title: '{{ $labels.host }} 上 {{ $labels.user }} 登录失败'}}, severity: high, match: {kind: ssh_login_failed}}\n",
        );
        let detections = run(&mut engine, &[failed(0, "203.0.113.9")]);
        assert_eq!(detections[0].title, "root on web1");
        assert_eq!(
            detections[0]
                .annotations
                .get("title_zh")
                .map(String::as_str),
            Some("web1 上 root 登录失败")
        );
    }

    #[test]
    fn a_threshold_detection_carries_labels_evidence_and_templates() {
        let mut engine = engine(BRUTE);
        let events: Vec<Event> = (0..3).map(|i| failed(i * 1000, "203.0.113.9")).collect();
        let detections = run(&mut engine, &events);
        assert_eq!(detections.len(), 1);
        let detection = &detections[0];
        assert_eq!(detection.title, "from 203.0.113.9 as root, 3 times");
        assert_eq!(detection.group_key, "src_ip=203.0.113.9");
        assert_eq!(
            detection.labels.get("team").map(String::as_str),
            Some("sec")
        );
        assert_eq!(
            detection.labels.get("alertname").map(String::as_str),
            Some("brute")
        );
        assert_eq!(
            detection.labels.get("severity").map(String::as_str),
            Some("high")
        );
        assert_eq!(
            detection.labels.get("src_ip").map(String::as_str),
            Some("203.0.113.9")
        );
        assert_eq!(detection.hosts, vec!["web1".to_string()]);
        assert_eq!(detection.at_ms, 2000);
        let ids: Vec<Option<i64>> = detection.evidence.iter().map(|e| e.event_id).collect();
        assert_eq!(ids, vec![Some(0), Some(1), Some(2)]);
    }

    #[test]
    fn templates_get_the_labels_they_name_or_all_of_them() {
        let rule = |title: &str| {
            BRUTE
                .replace("max_groups: 3", "max_groups: 3, evidence: 1")
                .replace(
                    "'from {{ $labels.src_ip }} as {{ $labels.user }}, {{ $value }} times'",
                    title,
                )
        };
        let events: Vec<Event> = (0..3).map(|i| failed(i * 1000, "203.0.113.9")).collect();
        let mut named = engine(&rule(
            "'{{ $labels.method }}{{ .Labels.team }} {{ $labels.host }}'",
        ));
        assert_eq!(run(&mut named, &events)[0].title, "sec web1");
        let mut all = engine(&rule("'{{ $labels }}'"));
        let title = run(&mut all, &events)[0].title.clone();
        for part in [
            "host:web1",
            "src_ip:203.0.113.9",
            "team:sec",
            "user:root",
            "kind:ssh_login_failed",
        ] {
            assert!(title.contains(part), "{title}");
        }
        assert!(names_all_labels("{{ .Labels }}"));
        assert!(!names_all_labels("{{ .Labels.user }} {{ $labels.host }}"));
    }

    #[test]
    fn cooldown_keeps_a_key_quiet_and_other_keys_still_fire() {
        let mut engine = engine(BRUTE);
        let mut events: Vec<Event> = (0..9).map(|i| failed(i * 1000, "203.0.113.9")).collect();
        events.extend((0..3).map(|i| failed(10_000 + i, "203.0.113.10")));
        // After the cooldown the first key fires again.
        events.extend((0..3).map(|i| failed(400_000 + i, "203.0.113.9")));
        let detections = run(&mut engine, &events);
        let keys: Vec<&str> = detections.iter().map(|d| d.group_key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "src_ip=203.0.113.9",
                "src_ip=203.0.113.10",
                "src_ip=203.0.113.9"
            ]
        );
    }

    #[test]
    fn a_host_scoped_block_follows_the_attack_to_a_new_host_inside_the_cooldown() {
        let on = |host: &str, at_ms: i64| {
            let mut event = failed(at_ms, "203.0.113.9");
            event.host = host.into();
            event
        };
        let attack = |engine: &mut Engine| {
            let mut events: Vec<Event> = (0..3).map(|i| on("web1", i * 1000)).collect();
            // More failures on web1 inside the cooldown: quiet.
            events.extend((0..3).map(|i| on("web1", 10_000 + i * 1000)));
            // The same address moves to web2, then web3, then back to web1.
            events.extend((0..3).map(|i| on("web2", 20_000 + i * 1000)));
            events.extend((0..3).map(|i| on("web2", 30_000 + i * 1000)));
            events.extend((0..3).map(|i| on("web3", 40_000 + i * 1000)));
            events.extend((0..3).map(|i| on("web1", 50_000 + i * 1000)));
            run(engine, &events)
        };
        let blocking = BRUTE.replace(
            "labels: {team: sec}",
            "labels: {team: sec}, response: {action: block_source, duration: 1h, scope: host}",
        );
        let detections = attack(&mut engine(&blocking));
        let hosts: Vec<Vec<String>> = detections.iter().map(|d| d.hosts.clone()).collect();
        assert_eq!(
            detections.len(),
            3,
            "web1, then web2 and web3 once each: {hosts:?}"
        );
        assert!(hosts[0] == ["web1"], "{hosts:?}");
        assert!(hosts[1].contains(&"web2".to_string()), "{hosts:?}");
        assert!(hosts[2].contains(&"web3".to_string()), "{hosts:?}");
        assert!(
            detections
                .iter()
                .all(|d| d.group_key == "src_ip=203.0.113.9"),
            "one key, so one incident"
        );

        // A county-wide block already covers every host, and a rule
        // without a response only notifies: both keep their cooldown.
        let county = blocking.replace("scope: host", "scope: county");
        assert_eq!(attack(&mut engine(&county)).len(), 1);
        assert_eq!(attack(&mut engine(BRUTE)).len(), 1);
    }

    #[test]
    fn a_key_follows_at_most_max_hosts_followed_hosts_inside_one_cooldown() {
        let blocking = BRUTE.replace(
            "labels: {team: sec}",
            "labels: {team: sec}, response: {action: block_source, duration: 1h, scope: host}",
        );
        let mut engine = engine(&blocking);
        let mut events = Vec::new();
        for host in 0..(suppress::MAX_HOSTS_FOLLOWED + 10) {
            for i in 0..3 {
                let mut event = failed((host * 10 + i) as i64, "203.0.113.9");
                event.host = format!("web{host}");
                events.push(event);
            }
        }
        let detections = run(&mut engine, &events);
        assert_eq!(detections.len(), suppress::MAX_HOSTS_FOLLOWED);
    }

    #[test]
    fn keys_beyond_the_cap_evict_the_least_recently_touched_and_are_counted() {
        let mut engine = engine(BRUTE);
        let mut events = Vec::new();
        for (i, ip) in [
            "192.0.2.1",
            "192.0.2.2",
            "192.0.2.1",
            "192.0.2.3",
            "192.0.2.4",
            "192.0.2.1",
            "192.0.2.2",
        ]
        .iter()
        .enumerate()
        {
            events.push(failed(i as i64 * 10, ip));
        }
        let detections = run(&mut engine, &events);
        // 192.0.2.1 stays (touched often) and fires; .2 was evicted by .4,
        // so its count started over.
        assert_eq!(detections.len(), 1);
        assert_eq!(detections[0].group_key, "src_ip=192.0.2.1");
        let stats = &engine.rule_stats()[0];
        assert_eq!(stats.evictions, 2);
        assert!(stats.groups <= 3);
    }

    #[test]
    fn state_survives_a_snapshot_and_restore_in_the_middle_of_a_window() {
        let mut first = engine(BRUTE);
        let events: Vec<Event> = (0..3).map(|i| failed(i * 1000, "203.0.113.9")).collect();
        assert!(run(&mut first, &events[..2]).is_empty());
        let bytes = first.snapshot();
        let mut second = engine(BRUTE);
        let summary = second.restore(&bytes).unwrap();
        assert_eq!(
            summary,
            RestoreSummary {
                rules_restored: 1,
                groups_restored: 1,
                rules_dropped: 0
            }
        );
        let mut lookup = |id: i64| events.get(usize::try_from(id).ok()?).cloned();
        let mut out = Vec::new();
        second.process(&events[2], 2, &mut lookup, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].evidence.len(), 3);
        // A changed rule (another window) does not inherit the state.
        let mut changed = engine(&BRUTE.replace("window: 1m", "window: 2m"));
        assert_eq!(changed.restore(&bytes).unwrap().rules_dropped, 1);
        assert!(second.restore(b"garbage").is_err());
    }

    #[test]
    fn a_reload_keeps_the_state_of_unchanged_rules_only() {
        let two = format!(
            "{BRUTE}  - {{id: other, title: t, severity: low, match: {{kind: ssh_login_failed}}, threshold: {{count: 3, window: 1m}}}}\n"
        );
        let mut engine = engine(&two);
        let events: Vec<Event> = (0..3).map(|i| failed(i * 1000, "203.0.113.9")).collect();
        assert!(run(&mut engine, &events[..2]).is_empty());
        let changed = two.replace("count: 3, window: 1m}}\n", "count: 3, window: 5m}}\n");
        let rules = rulefmt::parse(Path::new("r.yaml"), &changed).unwrap();
        engine.replace_rules(rules, Calendar::default());
        let mut lookup = |id: i64| events.get(usize::try_from(id).ok()?).cloned();
        let mut out = Vec::new();
        engine.process(&events[2], 2, &mut lookup, &mut out);
        let fired: Vec<&str> = out.iter().map(|d| d.rule_id.as_str()).collect();
        assert_eq!(fired, vec!["brute"]);
    }

    /// Two rules grouping by `src_ip` with the same cap share one table;
    /// each keeps its own keys, evictions, expiry and snapshot.
    const SHARED: &str = "rules:\n  - {id: wide, title: t, severity: low, match: {kind: ssh_login_failed}, group_by: [src_ip], max_groups: 3, threshold: {count: 3, window: 1m}}\n  - {id: narrow, title: t, severity: low, match: {kind: ssh_login_failed, src_ip: {in: [192.0.2.1, 192.0.2.2, 192.0.2.3]}}, group_by: [src_ip], max_groups: 3, threshold: {count: 2, window: 10s}}\n";

    #[test]
    fn rules_sharing_a_key_table_keep_their_own_caps_expiry_and_snapshots() {
        // Another cap, another table.
        assert_eq!(
            self::engine(&SHARED.replacen("max_groups: 3", "max_groups: 4", 1))
                .tables
                .len(),
            2
        );
        let mut engine = engine(SHARED);
        assert_eq!(engine.tables.len(), 1);
        let events: Vec<Event> = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]
            .iter()
            .enumerate()
            .map(|(i, ip)| failed(i as i64 * 1000, ip))
            .collect();
        assert!(run(&mut engine, &events).is_empty());
        let stats = engine.rule_stats();
        // The wide rule's fourth key evicted its oldest, .1, for it only.
        assert_eq!((stats[0].groups, stats[0].evictions), (3, 1));
        assert_eq!((stats[1].groups, stats[1].evictions), (3, 0));
        assert_eq!(engine.group_count(), 6);
        let bytes = engine.snapshot();
        let mut restored = self::engine(SHARED);
        let summary = restored.restore(&bytes).unwrap();
        assert_eq!(summary.groups_restored, 6);
        assert_eq!(
            restored
                .rule_stats()
                .iter()
                .map(|s| s.groups)
                .collect::<Vec<_>>(),
            vec![3, 3]
        );
        // A second failure from .2 completes the narrow rule (10 s window)
        // but not the wide one (3 needed).
        let mut lookup = |id: i64| events.get(usize::try_from(id).ok()?).cloned();
        let mut out = Vec::new();
        let second = failed(5_000, "192.0.2.2");
        restored.process(&second, 9, &mut lookup, &mut out);
        let fired: Vec<&str> = out.iter().map(|d| d.rule_id.as_str()).collect();
        assert_eq!(fired, vec!["narrow"]);
        assert_eq!(out[0].evidence.len(), 2);
        // 30 s later the narrow rule's keys have expired, the wide rule's
        // (1 m window) have not.
        restored.advance(35_000, &mut lookup, &mut out);
        let stats = restored.rule_stats();
        assert_eq!((stats[0].groups, stats[1].groups), (3, 0));
        restored.advance(200_000, &mut lookup, &mut out);
        assert_eq!(restored.group_count(), 0);
        assert!(restored.tables[0].map.is_empty());
    }

    /// The snapshot format did not change when rules came to share key
    /// tables: state saved by the engine before that (written out here as
    /// it wrote it) still restores.
    #[test]
    fn a_snapshot_in_the_format_of_per_rule_tables_restores() {
        let mut engine = engine(BRUTE);
        let signature = engine.rules[0].rule.signature.clone();
        let salt = 7u64;
        let hash = salted_hash(salt, "src_ip=203.0.113.9");
        let saved = serde_json::json!({
            "version": 1,
            "clock_ms": 1000,
            "salt": salt,
            "rules": [{
                "id": "brute",
                "signature": signature,
                "first_event_ms": 0,
                "groups": [[hash, {
                    "touched_ms": 1000,
                    "quiet_until_ms": i64::MIN,
                    "state": {"hits": [{"at_ms": 0, "id": 0}, {"at_ms": 1000, "id": 1}]}
                }]]
            }]
        });
        let summary = engine.restore(saved.to_string().as_bytes()).unwrap();
        assert_eq!(summary.groups_restored, 1);
        let events: Vec<Event> = (0..3).map(|i| failed(i * 1000, "203.0.113.9")).collect();
        let mut lookup = |id: i64| events.get(usize::try_from(id).ok()?).cloned();
        let mut out = Vec::new();
        engine.process(&events[2], 2, &mut lookup, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].evidence.len(), 3);
    }

    #[test]
    fn a_full_rule_evicts_a_sixteenth_of_its_cap_at_once() {
        let mut engine = engine(&SHARED.replacen("max_groups: 3", "max_groups: 64", 1));
        let events: Vec<Event> = (0..65)
            .map(|i| failed(i * 10, &format!("198.51.100.{i}")))
            .collect();
        assert!(run(&mut engine, &events).is_empty());
        let stats = &engine.rule_stats()[0];
        // The 65th key found the rule full: the 4 oldest went.
        assert_eq!((stats.groups, stats.evictions), (61, 4));
    }

    #[test]
    fn absence_fires_once_when_a_seen_key_goes_quiet() {
        let mut engine = engine(
            "rules:\n  - {id: quiet, title: '{{ $labels.host }} quiet', severity: medium, match: {kind: sudo_command}, group_by: [host], absence: {window: 10m}}\n",
        );
        let mut event = Event::new(0, EventSource::Auth, EventKind::SudoCommand);
        event.host = "db1".into();
        let events = vec![event];
        let detections = crate::unittest::run_events(&mut engine, &events, Some(30 * 60_000));
        assert_eq!(detections.len(), 1);
        assert_eq!(detections[0].title, "db1 quiet");
        assert_eq!(detections[0].at_ms, 10 * 60_000);
        assert_eq!(detections[0].evidence.len(), 1);
    }

    #[test]
    fn rules_only_see_the_kinds_they_can_match() {
        let engine = engine(BRUTE);
        let offered: usize = engine.by_kind.iter().map(Vec::len).sum();
        assert_eq!(offered, 1);
        assert_eq!(engine.by_kind[EventKind::SshLoginFailed as usize], vec![0]);
    }

    #[test]
    fn the_shipped_ssh_rules_grouping_by_address_share_one_table() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/detection/ssh.yaml");
        let rules = rulefmt::load(&path).unwrap_or_else(|p| panic!("{p}"));
        let engine = Engine::new(rules, Calendar::default());
        let by_address: Vec<&KeyTable> = engine
            .tables
            .iter()
            .filter(|table| table.group_by == [Field::SrcIp])
            .collect();
        assert_eq!(by_address.len(), 1);
        assert_eq!(by_address[0].rules.len(), 4);
    }

    #[test]
    fn odd_events_never_panic() {
        let packs =
            rulefmt::rule_files(
                &[Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/detection")],
            )
            .unwrap();
        let rules = rulefmt::load_all(&packs).unwrap_or_else(|_| panic!("packs load"));
        let mut engine = Engine::new(rules, Calendar::default());
        let mut events = Vec::new();
        for (index, kind) in EventKind::ALL.iter().enumerate() {
            for at in [i64::MIN, -1, 0, i64::MAX] {
                // Bare events: every field missing.
                events.push(Event::new(at, EventSource::Auth, *kind));
                let mut odd = Event::new(at, EventSource::Syslog, *kind);
                odd.fields.user = Some("\u{0}{n}\u{202e}".repeat(100));
                odd.fields.src_ip = Some(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED));
                odd.fields.users_changed = vec![String::new(); 3];
                odd.fields.path = Some(String::from("/etc/sudoers.d/").repeat(index));
                events.push(odd);
            }
        }
        let mut lookup = |_id: i64| None;
        let mut out = Vec::new();
        for (id, event) in events.iter().enumerate() {
            engine.process(event, id as i64, &mut lookup, &mut out);
        }
        engine.advance(i64::MAX, &mut lookup, &mut out);
        // Some fired (root logins are not needed: agent_silent alone does).
        assert!(
            out.iter()
                .any(|detection| detection.rule_id == "agent_silent")
        );
    }
}
