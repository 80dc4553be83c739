//! The report as CSV: one file per section (`departments.csv`,
//! `services.csv`, `hosts.csv`, `devices.csv`, `outages.csv`,
//! `certificates.csv`, `security.csv`, `incidents_by.csv`,
//! `compliance.csv`), written the way incident exports are (BOM for Excel,
//! CRLF, formula-looking cells defused), headers in the report's language.

use super::texts::Texts;
use super::{AvailabilityRow, Compliance, Durations, Report};
use crate::incident::export::csv_table;

/// Each section's file name and contents.
pub fn sections(report: &Report, texts: &Texts) -> Vec<(&'static str, String)> {
    let header = |keys: &[&str]| {
        keys.iter()
            .map(|key| texts.word(key))
            .collect::<Vec<_>>()
            .join(",")
    };
    let number = |value: Option<f64>| value.map(|value| value.to_string()).unwrap_or_default();
    let availability = |rows: &[AvailabilityRow]| {
        csv_table(
            &header(&[
                "kind",
                "department",
                "service",
                "name",
                "target",
                "availability",
                "downtime",
                "outage_count",
                "longest",
                "observed",
                "http_status",
            ]),
            rows.iter().map(|row| {
                vec![
                    row.kind.as_str().to_string(),
                    row.department.clone(),
                    row.service.clone(),
                    row.name.clone(),
                    row.target.clone(),
                    number(row.availability_percent),
                    row.downtime_minutes.to_string(),
                    row.outages.to_string(),
                    row.longest_outage_minutes.to_string(),
                    row.observed_hours.to_string(),
                    row.http_status.map(|s| s.to_string()).unwrap_or_default(),
                ]
            }),
        )
    };
    let security = &report.security;
    let durations = |name: &str, durations: &Durations| {
        vec![
            vec![
                format!("{name} {}", texts.word("median")),
                number(durations.median_minutes),
            ],
            vec![
                format!("{name} {}", texts.word("p90")),
                number(durations.p90_minutes),
            ],
        ]
    };
    let mut summary = vec![
        vec![
            texts.word("incidents").to_string(),
            security.incidents.to_string(),
        ],
        vec![
            format!("{} {}", texts.word("previous"), texts.word("incidents")),
            security.previous.incidents.to_string(),
        ],
    ];
    summary.extend(durations(texts.word("ack"), &security.time_to_acknowledge));
    summary.extend(durations(texts.word("resolve"), &security.time_to_resolve));
    let mut by = Vec::new();
    for (group, counts) in [
        ("severity", &security.by_severity),
        ("status", &security.by_status),
        ("rule", &security.by_rule),
        ("department", &security.by_department),
    ] {
        for (name, count) in counts {
            by.push(vec![
                texts.word(group).to_string(),
                name.clone(),
                count.to_string(),
            ]);
        }
    }
    for (group, counts) in [
        ("top_sources", &security.top_sources),
        ("top_hosts", &security.top_hosts),
    ] {
        for count in counts {
            by.push(vec![
                texts.word(group).to_string(),
                count.name.clone(),
                count.count.to_string(),
            ]);
        }
    }
    vec![
        (
            "departments.csv",
            csv_table(
                &header(&[
                    "department",
                    "services_count",
                    "availability",
                    "downtime",
                    "outage_count",
                ]),
                report.departments.iter().map(|row| {
                    vec![
                        row.department.clone(),
                        row.services.to_string(),
                        number(row.availability_percent),
                        row.downtime_minutes.to_string(),
                        row.outages.to_string(),
                    ]
                }),
            ),
        ),
        ("services.csv", availability(&report.services)),
        ("hosts.csv", availability(&report.hosts)),
        ("devices.csv", availability(&report.devices)),
        (
            "outages.csv",
            csv_table(
                &header(&[
                    "kind",
                    "department",
                    "service",
                    "name",
                    "target",
                    "start",
                    "end",
                    "minutes",
                ]),
                report.outages.iter().map(|row| {
                    vec![
                        row.kind.as_str().to_string(),
                        row.department.clone(),
                        row.service.clone(),
                        row.name.clone(),
                        row.target.clone(),
                        row.start.clone(),
                        row.end.clone().unwrap_or_default(),
                        row.minutes.to_string(),
                    ]
                }),
            ),
        ),
        (
            "certificates.csv",
            csv_table(
                &header(&[
                    "department",
                    "service",
                    "name",
                    "target",
                    "expires",
                    "days_left",
                ]),
                report.certificates.iter().map(|row| {
                    vec![
                        row.department.clone(),
                        row.service.clone(),
                        row.name.clone(),
                        row.target.clone(),
                        row.expires.clone(),
                        row.days_left.to_string(),
                    ]
                }),
            ),
        ),
        (
            "security.csv",
            csv_table(&header(&["metric", "value"]), summary.into_iter()),
        ),
        (
            "incidents_by.csv",
            csv_table(&header(&["metric", "name", "count"]), by.into_iter()),
        ),
        (
            "compliance.csv",
            csv_table(
                &header(&["requirement", "result", "evidence"]),
                report.compliance.iter().map(|line| {
                    vec![
                        line.requirement.clone(),
                        texts.word(compliance_key(line.status)).to_string(),
                        line.evidence.clone(),
                    ]
                }),
            ),
        ),
    ]
}

/// The word key of a checklist result.
pub fn compliance_key(status: Compliance) -> &'static str {
    match status {
        Compliance::Pass => "pass",
        Compliance::Fail => "fail",
        Compliance::NoData => "no_data",
    }
}
