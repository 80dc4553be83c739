//! CSV and JSON exports of a filtered incident list, for the monthly report
//! to the county leadership (and the CSV writer the events and audit
//! exports share). CSV cells that a spreadsheet would run as a
//! formula (`=`, `+`, `-`, `@`) are prefixed with `'`: titles and group keys
//! carry attacker-chosen text.

use crate::incident::store::Incident;

/// The CSV header.
const HEADER: &str = "id,rule_id,title,severity,status,group_key,hosts,first_seen,last_seen,assignee,reason,evidence_count";

/// Renders incidents as CSV (RFC 4180, CRLF line ends, UTF-8 with BOM so
/// that spreadsheet programs show Chinese text correctly).
pub fn csv(incidents: &[Incident]) -> String {
    csv_table(
        HEADER,
        incidents.iter().map(|incident| {
            vec![
                incident.id.to_string(),
                incident.rule_id.clone(),
                incident.title.clone(),
                incident.severity.as_str().to_string(),
                incident.status.as_str().to_string(),
                incident.group_key.clone(),
                incident.hosts.join(" "),
                rfc3339(incident.first_seen_ms),
                rfc3339(incident.last_seen_ms),
                incident.assignee.clone().unwrap_or_default(),
                incident.reason.clone().unwrap_or_default(),
                incident.evidence_count.to_string(),
            ]
        }),
    )
}

/// Renders rows as CSV under `header` (comma-separated names), the same
/// way as [`csv`]: BOM, CRLF, formula-looking cells defused.
pub fn csv_table(header: &str, rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut out = String::from("\u{feff}");
    out.push_str(header);
    out.push_str("\r\n");
    for cells in rows {
        let line: Vec<String> = cells.iter().map(|cell| cell_text(cell)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// Renders incidents as a JSON array.
pub fn json(incidents: &[Incident]) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(incidents)?)
}

fn cell_text(cell: &str) -> String {
    let guarded = if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_string()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

/// A Unix-milliseconds time as RFC 3339 UTC.
pub fn rfc3339(ms: i64) -> String {
    countywatch_notify::alert::rfc3339(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(cell_text("plain"), "plain");
        assert_eq!(cell_text("a,b"), "\"a,b\"");
        assert_eq!(cell_text("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell_text("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }
}
