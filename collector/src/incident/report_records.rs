//! The incident store's side of the county report: every incident as the
//! report history keeps it (`history::IncidentRecord`), read from
//! `incidents` and the first acknowledgement on its timeline. The history
//! copies these every hour, so that its copy outlives the incident store's
//! retention purge.

use rusqlite::params;

use crate::history::IncidentRecord;
use crate::incident::store::IncidentStore;

impl IncidentStore {
    /// Every incident kept, oldest first, with when it was first
    /// acknowledged and closed.
    pub fn report_records(&self) -> anyhow::Result<Vec<IncidentRecord>> {
        let connection = self.read();
        let mut statement = connection.prepare_cached(
            "SELECT i.id, i.rule_id, i.severity, i.status, i.first_seen_ms, i.closed_ms,
                i.group_key, i.labels, i.hosts,
                (SELECT MIN(at_ms) FROM timeline t WHERE t.incident_id = i.id
                    AND t.action = 'acknowledged')
             FROM incidents i ORDER BY i.id",
        )?;
        let rows = statement.query_map(params![], |row| {
            let group_key: String = row.get(6)?;
            let labels: String = row.get(7)?;
            let hosts: String = row.get(8)?;
            Ok(IncidentRecord {
                id: row.get(0)?,
                rule_id: row.get(1)?,
                severity: row.get(2)?,
                status: row.get(3)?,
                department: String::new(),
                opened_ms: row.get(4)?,
                acknowledged_ms: row.get(9)?,
                closed_ms: row.get(5)?,
                source: source_address(&labels, &group_key),
                hosts: serde_json::from_str(&hosts).unwrap_or_default(),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// The incident's source address: its `src_ip` label, else the `src_ip=`
/// part of its group key, else nothing.
fn source_address(labels: &str, group_key: &str) -> String {
    let labels: std::collections::BTreeMap<String, String> =
        serde_json::from_str(labels).unwrap_or_default();
    if let Some(address) = labels.get("src_ip") {
        return address.clone();
    }
    group_key
        .split(',')
        .find_map(|part| part.strip_prefix("src_ip="))
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_source_comes_from_the_label_else_the_group_key() {
        assert_eq!(
            super::source_address(r#"{"src_ip":"203.0.113.9"}"#, ""),
            "203.0.113.9"
        );
        assert_eq!(
            super::source_address("{}", "host=a,src_ip=198.51.100.7"),
            "198.51.100.7"
        );
        assert_eq!(super::source_address("{}", "user=root"), "");
    }
}
