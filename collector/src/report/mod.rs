//! The county report: one [`Report`] for a month or any range, built from
//! `history.db` (availability, outages, incidents), the audit trail, the
//! event log and the registry, and written as JSON (the struct itself),
//! CSV (`csv.rs`, one file per section) or self-contained HTML
//! (`html.rs`). `cli.rs` is `countywatch-collector report`; `schedule.rs`
//! mails last month's report on the 1st; `texts.rs` holds its words in
//! Chinese and English.
//!
//! Figures are defined once, here: availability is milliseconds up over
//! milliseconds whose state is known (a probe whose agent was silent is
//! unknown, not down; a silent agent is down); downtime is known minus up;
//! an outage counts in a range when it overlaps it and its length is
//! clipped to the range; times to acknowledge and resolve run from the
//! incident's first evidence, and their median and 90th percentile are by
//! nearest rank.

pub mod cli;
pub mod config;
pub mod csv;
pub mod gather;
pub mod html;
pub mod schedule;
pub mod texts;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::history::{IncidentRecord, OutageRecord, SeriesKind, SeriesSummary};
use countywatch_notify::display::{Display, Language};

/// Days a certificate may have left before the report lists it.
pub const CERTIFICATE_WARNING_DAYS: i64 = 30;
/// Days of events MLPS 2.0 asks a county to keep.
pub const REQUIRED_RETENTION_DAYS: i64 = 180;
/// How many source addresses and hosts the security section lists.
pub const TOP: usize = 10;

/// The whole report, as `--format json` writes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The range it covers.
    pub period: Period,
    /// The department it is limited to, if any.
    pub department: Option<String>,
    /// The language of its words (`zh` or `en`).
    pub language: &'static str,
    /// When it was made, local time.
    pub generated_at: String,
    /// Per department: its services taken together.
    pub departments: Vec<DepartmentRow>,
    /// Per service probe target.
    pub services: Vec<AvailabilityRow>,
    /// Per agent (host).
    pub hosts: Vec<AvailabilityRow>,
    /// Per network device and interface.
    pub devices: Vec<AvailabilityRow>,
    /// Every outage overlapping the range, oldest first.
    pub outages: Vec<OutageRow>,
    /// Certificates expiring within 30 days of the range's end.
    pub certificates: Vec<CertificateRow>,
    /// Incidents and how they were handled.
    pub security: Security,
    /// The MLPS 2.0 checklist with its evidence.
    pub compliance: Vec<ComplianceLine>,
}

/// The range a report covers, `[from, to)`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Period {
    /// Its start, local time.
    pub from: String,
    /// Its end (exclusive), local time.
    pub to: String,
    /// Its start, Unix milliseconds.
    pub from_ms: i64,
    /// Its end, Unix milliseconds.
    pub to_ms: i64,
    /// The zone its times are written in.
    pub timezone: String,
}

/// Availability of one series over the range.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AvailabilityRow {
    /// `service`, `agent`, `device` or `interface`.
    pub kind: SeriesKind,
    /// Its department.
    pub department: String,
    /// Its service name (probe targets and devices).
    pub service: String,
    /// The agent or device.
    pub name: String,
    /// The probe's or interface's name.
    pub target: String,
    /// Percent of known time up, three decimals; `None` with no known time.
    pub availability_percent: Option<f64>,
    /// Minutes down (known but not up), one decimal.
    pub downtime_minutes: f64,
    /// Outages overlapping the range.
    pub outages: usize,
    /// The longest of them inside the range, minutes, one decimal.
    pub longest_outage_minutes: f64,
    /// Hours of the range whose state is known, one decimal.
    pub observed_hours: f64,
    /// The last HTTP status (HTTP probes).
    pub http_status: Option<i64>,
}

/// One department's services together.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DepartmentRow {
    /// The department (empty: none configured).
    pub department: String,
    /// How many service targets it has.
    pub services: usize,
    /// Up over known of all of them, percent, three decimals.
    pub availability_percent: Option<f64>,
    /// Their downtime, minutes.
    pub downtime_minutes: f64,
    /// Their outages.
    pub outages: usize,
}

/// One outage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutageRow {
    /// What went down.
    pub kind: SeriesKind,
    /// Its department.
    pub department: String,
    /// Its service name.
    pub service: String,
    /// The agent or device.
    pub name: String,
    /// The probe's or interface's name.
    pub target: String,
    /// When it went down, local time.
    pub start: String,
    /// When it came back, local time; `None` while still down.
    pub end: Option<String>,
    /// Its length inside the range, minutes, one decimal.
    pub minutes: f64,
}

/// A certificate close to expiry.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CertificateRow {
    /// Its department.
    pub department: String,
    /// Its service name.
    pub service: String,
    /// The agent probing it.
    pub name: String,
    /// The probe's name.
    pub target: String,
    /// When it expires, local time.
    pub expires: String,
    /// Whole days left at the range's end (negative: expired).
    pub days_left: i64,
}

/// Incidents over the range.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Security {
    /// Incidents opened in the range.
    pub incidents: usize,
    /// By severity.
    pub by_severity: BTreeMap<String, usize>,
    /// By status now.
    pub by_status: BTreeMap<String, usize>,
    /// By rule.
    pub by_rule: BTreeMap<String, usize>,
    /// By department (empty: unknown).
    pub by_department: BTreeMap<String, usize>,
    /// From first evidence to first acknowledgement.
    pub time_to_acknowledge: Durations,
    /// From first evidence to resolution (resolved or false positive).
    pub time_to_resolve: Durations,
    /// The addresses most incidents came from, most first.
    pub top_sources: Vec<Count>,
    /// The hosts most incidents were about, most first.
    pub top_hosts: Vec<Count>,
    /// The same figures for the period before.
    pub previous: Previous,
}

/// A count of something.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Count {
    /// What.
    pub name: String,
    /// How many.
    pub count: usize,
}

/// How long something took across incidents, in minutes (one decimal).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Durations {
    /// Incidents it happened to.
    pub count: usize,
    /// The median, nearest rank.
    pub median_minutes: Option<f64>,
    /// The 90th percentile, nearest rank.
    pub p90_minutes: Option<f64>,
}

/// The period before, for comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Previous {
    /// Its start, local time.
    pub from: String,
    /// Its end, local time.
    pub to: String,
    /// Incidents opened in it.
    pub incidents: usize,
    /// By severity.
    pub by_severity: BTreeMap<String, usize>,
    /// Its time to acknowledge.
    pub time_to_acknowledge: Durations,
    /// Its time to resolve.
    pub time_to_resolve: Durations,
}

/// One line of the MLPS 2.0 checklist.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ComplianceLine {
    /// A stable id (`log_retention`, `audit_trail`, `agents_reporting`,
    /// `time_sync`, `backups`).
    pub id: &'static str,
    /// The requirement, in the report's language.
    pub requirement: String,
    /// Whether the evidence meets it.
    pub status: Compliance,
    /// The evidence, in the report's language.
    pub evidence: String,
}

/// Whether a checklist line is met.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compliance {
    /// The evidence meets the requirement.
    Pass,
    /// It does not.
    Fail,
    /// There is nothing to judge by.
    NoData,
}

/// Everything a report is computed from, read by [`gather`].
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// The range, Unix milliseconds.
    pub from_ms: i64,
    /// Its end (exclusive).
    pub to_ms: i64,
    /// The period before, for comparison.
    pub previous_from_ms: i64,
    /// Its end (the range's start).
    pub previous_to_ms: i64,
    /// When the report is made.
    pub now_ms: i64,
    /// Only this department, when given.
    pub department: Option<String>,
    /// Series summed over the range.
    pub series: Vec<SeriesSummary>,
    /// Outages overlapping the range.
    pub outages: Vec<OutageRecord>,
    /// Incidents opened in the range.
    pub incidents: Vec<IncidentRecord>,
    /// Incidents opened in the period before.
    pub previous_incidents: Vec<IncidentRecord>,
    /// The oldest event kept, Unix milliseconds.
    pub oldest_event_ms: Option<i64>,
    /// The audit trail's verification: intact or the problem, entries,
    /// and the newest checkpoint's time.
    pub audit: Option<AuditEvidence>,
    /// Agents enrolled and not revoked.
    pub agents_enrolled: usize,
    /// Of them, those heard from within `agents.silent_after` of now.
    pub agents_reporting: usize,
    /// When backups were recorded in the audit trail during the range.
    pub backups_ms: Vec<i64>,
}

/// What `audit verify` found.
#[derive(Clone, Debug, Default)]
pub struct AuditEvidence {
    /// The first problem, if any.
    pub problem: Option<String>,
    /// Entries checked.
    pub entries: i64,
    /// Signed checkpoints checked.
    pub checkpoints: i64,
    /// The newest checkpoint's time.
    pub newest_checkpoint_ms: Option<i64>,
}

/// Builds the report from its inputs: pure, so every figure is tested
/// without IO.
pub fn build(inputs: &Inputs, display: &Display, language: Language) -> Report {
    let texts = texts::Texts::new(language);
    let keep = |department: &str| {
        inputs
            .department
            .as_deref()
            .is_none_or(|wanted| wanted == department)
    };
    let outages: Vec<&OutageRecord> = inputs
        .outages
        .iter()
        .filter(|outage| keep(&outage.department))
        .collect();
    let row = |summary: &SeriesSummary| {
        let own: Vec<i64> = outages
            .iter()
            .filter(|outage| {
                outage.kind == summary.kind
                    && outage.name == summary.name
                    && outage.target == summary.target
            })
            .map(|outage| clipped_ms(outage, inputs.from_ms, inputs.to_ms, inputs.now_ms))
            .collect();
        AvailabilityRow {
            kind: summary.kind,
            department: summary.department.clone(),
            service: summary.service.clone(),
            name: summary.name.clone(),
            target: summary.target.clone(),
            availability_percent: percent(summary.up_ms, summary.known_ms),
            downtime_minutes: minutes(summary.known_ms - summary.up_ms),
            outages: own.len(),
            longest_outage_minutes: minutes(own.iter().copied().max().unwrap_or(0)),
            observed_hours: round(summary.known_ms as f64 / 3_600_000.0, 1),
            http_status: summary.http_status,
        }
    };
    let kept: Vec<&SeriesSummary> = inputs
        .series
        .iter()
        .filter(|summary| keep(&summary.department))
        .collect();
    let of_kind = |kinds: &[SeriesKind]| -> Vec<AvailabilityRow> {
        kept.iter()
            .filter(|summary| kinds.contains(&summary.kind))
            .map(|summary| row(summary))
            .collect()
    };
    let services = of_kind(&[SeriesKind::Service]);
    let mut departments: BTreeMap<String, (usize, i64, i64, usize)> = BTreeMap::new();
    for (summary, service) in kept
        .iter()
        .filter(|summary| summary.kind == SeriesKind::Service)
        .zip(&services)
    {
        let entry = departments.entry(summary.department.clone()).or_default();
        entry.0 += 1;
        entry.1 += summary.up_ms;
        entry.2 += summary.known_ms;
        entry.3 += service.outages;
    }
    let certificates = kept
        .iter()
        .filter(|summary| summary.kind == SeriesKind::Service)
        .filter_map(|summary| {
            let expiry = summary.tls_expiry_ms?;
            let days_left = (expiry - inputs.to_ms).div_euclid(86_400_000);
            (days_left < CERTIFICATE_WARNING_DAYS).then(|| CertificateRow {
                department: summary.department.clone(),
                service: summary.service.clone(),
                name: summary.name.clone(),
                target: summary.target.clone(),
                expires: display.time(expiry),
                days_left,
            })
        })
        .collect();
    let incidents: Vec<&IncidentRecord> = inputs
        .incidents
        .iter()
        .filter(|incident| keep(&incident.department))
        .collect();
    let previous_incidents: Vec<&IncidentRecord> = inputs
        .previous_incidents
        .iter()
        .filter(|incident| keep(&incident.department))
        .collect();
    Report {
        period: Period {
            from: display.time(inputs.from_ms),
            to: display.time(inputs.to_ms),
            from_ms: inputs.from_ms,
            to_ms: inputs.to_ms,
            timezone: display.zone_name(),
        },
        department: inputs.department.clone(),
        language: texts.code(),
        generated_at: display.time(inputs.now_ms),
        departments: departments
            .into_iter()
            .map(
                |(department, (services, up_ms, known_ms, outages))| DepartmentRow {
                    department,
                    services,
                    availability_percent: percent(up_ms, known_ms),
                    downtime_minutes: minutes(known_ms - up_ms),
                    outages,
                },
            )
            .collect(),
        services,
        hosts: of_kind(&[SeriesKind::Agent]),
        devices: of_kind(&[SeriesKind::Device, SeriesKind::Interface]),
        outages: outages
            .iter()
            .map(|outage| OutageRow {
                kind: outage.kind,
                department: outage.department.clone(),
                service: outage.service.clone(),
                name: outage.name.clone(),
                target: outage.target.clone(),
                start: display.time(outage.start_ms),
                end: outage.end_ms.map(|end| display.time(end)),
                minutes: minutes(clipped_ms(
                    outage,
                    inputs.from_ms,
                    inputs.to_ms,
                    inputs.now_ms,
                )),
            })
            .collect(),
        certificates,
        security: security(&incidents, &previous_incidents, inputs, display),
        compliance: compliance(inputs, &kept, display, &texts),
    }
}

fn security(
    incidents: &[&IncidentRecord],
    previous: &[&IncidentRecord],
    inputs: &Inputs,
    display: &Display,
) -> Security {
    let count_by = |key: &dyn Fn(&IncidentRecord) -> String| {
        let mut counts = BTreeMap::new();
        for incident in incidents {
            *counts.entry(key(incident)).or_insert(0) += 1;
        }
        counts
    };
    let mut sources: BTreeMap<String, usize> = BTreeMap::new();
    let mut hosts: BTreeMap<String, usize> = BTreeMap::new();
    for incident in incidents {
        if !incident.source.is_empty() {
            *sources.entry(incident.source.clone()).or_insert(0) += 1;
        }
        for host in &incident.hosts {
            *hosts.entry(host.clone()).or_insert(0) += 1;
        }
    }
    let mut previous_by_severity = BTreeMap::new();
    for incident in previous {
        *previous_by_severity
            .entry(incident.severity.clone())
            .or_insert(0) += 1;
    }
    Security {
        incidents: incidents.len(),
        by_severity: count_by(&|incident| incident.severity.clone()),
        by_status: count_by(&|incident| incident.status.clone()),
        by_rule: count_by(&|incident| incident.rule_id.clone()),
        by_department: count_by(&|incident| incident.department.clone()),
        time_to_acknowledge: durations(incidents, |incident| incident.acknowledged_ms),
        time_to_resolve: durations(incidents, |incident| incident.closed_ms),
        top_sources: top(sources),
        top_hosts: top(hosts),
        previous: Previous {
            from: display.time(inputs.previous_from_ms),
            to: display.time(inputs.previous_to_ms),
            incidents: previous.len(),
            by_severity: previous_by_severity,
            time_to_acknowledge: durations(previous, |incident| incident.acknowledged_ms),
            time_to_resolve: durations(previous, |incident| incident.closed_ms),
        },
    }
}

fn compliance(
    inputs: &Inputs,
    series: &[&SeriesSummary],
    display: &Display,
    texts: &texts::Texts,
) -> Vec<ComplianceLine> {
    let mut lines = Vec::new();
    let retention = match inputs.oldest_event_ms {
        None => (Compliance::NoData, texts.no_events()),
        Some(oldest) => {
            let days = (inputs.now_ms - oldest).div_euclid(86_400_000);
            let status = if days >= REQUIRED_RETENTION_DAYS {
                Compliance::Pass
            } else {
                Compliance::Fail
            };
            (
                status,
                texts.events_kept(days, REQUIRED_RETENTION_DAYS, &display.time(oldest)),
            )
        }
    };
    lines.push(ComplianceLine {
        id: "log_retention",
        requirement: texts.requirement("log_retention"),
        status: retention.0,
        evidence: retention.1,
    });
    let audit = match &inputs.audit {
        None => (Compliance::NoData, texts.no_audit()),
        Some(audit) => {
            let checkpoint = audit
                .newest_checkpoint_ms
                .map(|ms| display.time(ms))
                .unwrap_or_else(|| "-".to_string());
            match &audit.problem {
                None => (
                    Compliance::Pass,
                    texts.audit_intact(audit.entries, audit.checkpoints, &checkpoint),
                ),
                Some(problem) => (Compliance::Fail, texts.audit_broken(problem, &checkpoint)),
            }
        }
    };
    lines.push(ComplianceLine {
        id: "audit_trail",
        requirement: texts.requirement("audit_trail"),
        status: audit.0,
        evidence: audit.1,
    });
    let agents = if inputs.agents_enrolled == 0 {
        Compliance::NoData
    } else if inputs.agents_reporting == inputs.agents_enrolled {
        Compliance::Pass
    } else {
        Compliance::Fail
    };
    lines.push(ComplianceLine {
        id: "agents_reporting",
        requirement: texts.requirement("agents_reporting"),
        status: agents,
        evidence: texts.agents(inputs.agents_enrolled, inputs.agents_reporting),
    });
    let clocks: Vec<&&SeriesSummary> = series
        .iter()
        .filter(|summary| summary.kind == SeriesKind::TimeSync)
        .collect();
    let time_sync = if clocks.is_empty() {
        (Compliance::NoData, texts.no_timex())
    } else {
        let in_sync = clocks
            .iter()
            .filter(|clock| clock.known_ms > 0 && clock.up_ms == clock.known_ms)
            .count();
        let status = if in_sync == clocks.len() {
            Compliance::Pass
        } else {
            Compliance::Fail
        };
        (status, texts.clocks(clocks.len(), in_sync))
    };
    lines.push(ComplianceLine {
        id: "time_sync",
        requirement: texts.requirement("time_sync"),
        status: time_sync.0,
        evidence: time_sync.1,
    });
    let backups = match inputs.backups_ms.last() {
        None => (Compliance::Fail, texts.no_backups()),
        Some(last) => (
            Compliance::Pass,
            texts.backups(inputs.backups_ms.len(), &display.time(*last)),
        ),
    };
    lines.push(ComplianceLine {
        id: "backups",
        requirement: texts.requirement("backups"),
        status: backups.0,
        evidence: backups.1,
    });
    lines
}

/// An outage's length inside `[from_ms, to_ms)`; one still going on ends
/// at `now_ms`.
fn clipped_ms(outage: &OutageRecord, from_ms: i64, to_ms: i64, now_ms: i64) -> i64 {
    let end = outage.end_ms.unwrap_or(now_ms).min(to_ms);
    (end - outage.start_ms.max(from_ms)).max(0)
}

fn durations(
    incidents: &[&IncidentRecord],
    at: impl Fn(&IncidentRecord) -> Option<i64>,
) -> Durations {
    let mut taken: Vec<i64> = incidents
        .iter()
        .filter_map(|incident| at(incident).map(|ms| (ms - incident.opened_ms).max(0)))
        .collect();
    taken.sort_unstable();
    Durations {
        count: taken.len(),
        median_minutes: nearest_rank(&taken, 50).map(minutes),
        p90_minutes: nearest_rank(&taken, 90).map(minutes),
    }
}

/// The `percentile`th value of sorted `values` by nearest rank: the
/// smallest value with at least that percent of values at or below it.
fn nearest_rank(values: &[i64], percentile: usize) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    let rank = (percentile * values.len()).div_ceil(100).max(1);
    values.get(rank - 1).copied()
}

fn top(counts: BTreeMap<String, usize>) -> Vec<Count> {
    let mut counts: Vec<Count> = counts
        .into_iter()
        .map(|(name, count)| Count { name, count })
        .collect();
    counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    counts.truncate(TOP);
    counts
}

fn percent(up_ms: i64, known_ms: i64) -> Option<f64> {
    (known_ms > 0).then(|| round(up_ms as f64 * 100.0 / known_ms as f64, 3))
}

fn minutes(ms: i64) -> f64 {
    round(ms as f64 / 60_000.0, 1)
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10_f64.powi(decimals);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_picks_the_smallest_value_covering_the_percentile() {
        assert_eq!(nearest_rank(&[], 50), None);
        assert_eq!(nearest_rank(&[7], 90), Some(7));
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(nearest_rank(&[1, 2, 3, 4, 5], 50), Some(3));
        let ten: Vec<i64> = (1..=10).collect();
        assert_eq!(nearest_rank(&ten, 90), Some(9));
    }

    #[test]
    fn an_outage_is_clipped_to_the_range_and_an_open_one_ends_now() {
        let outage = OutageRecord {
            kind: SeriesKind::Service,
            name: "a".into(),
            target: "t".into(),
            department: String::new(),
            service: String::new(),
            start_ms: 50,
            end_ms: Some(200),
        };
        assert_eq!(clipped_ms(&outage, 100, 150, 999), 50);
        let open = OutageRecord {
            end_ms: None,
            ..outage
        };
        assert_eq!(clipped_ms(&open, 0, 1000, 120), 70);
    }
}
