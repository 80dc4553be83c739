//! The vmstat collector: /proc/vmstat fields as node_exporter serves them,
//! `node_vmstat_<field>` untyped, filtered by node_exporter's default
//! `--collector.vmstat.fields` (`^(oom_kill|pgpg|pswp|pg.*fault).*`): OOM
//! kills, paging and swapping, page faults.

use std::path::Path;

use countywatch_wire::{MetricFamily, MetricKind};

use super::file_probe::FileProbe;

/// The probe reading `<procfs>/vmstat`.
pub fn probe(procfs: &Path, _sysfs: &Path) -> FileProbe {
    FileProbe::new("vmstat", vec![procfs.join("vmstat")], |texts| {
        Ok(parse(texts[0].as_deref().unwrap_or_default()))
    })
}

/// node_exporter's default field filter, without a regex engine.
fn reported(field: &str) -> bool {
    field.starts_with("oom_kill")
        || field.starts_with("pgpg")
        || field.starts_with("pswp")
        || field
            .strip_prefix("pg")
            .is_some_and(|rest| rest.contains("fault"))
}

/// Turns /proc/vmstat text (`name value` lines) into families.
pub fn parse(text: &str) -> Vec<MetricFamily> {
    text.lines()
        .filter_map(|line| {
            let (field, value) = line.split_once(' ')?;
            if !reported(field) {
                return None;
            }
            let value = value.trim().parse::<f64>().ok()?;
            let name = format!("node_vmstat_{field}");
            countywatch_wire::is_valid_metric_name(&name).then(|| {
                MetricFamily::single(
                    name,
                    format!("/proc/vmstat information field {field}."),
                    MetricKind::Untyped,
                    value,
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_field_filter_as_node_exporter() {
        // From a Debian 12 (6.1) host; a CentOS 7 (3.10) kernel has the
        // same shape but no oom_kill line (added in 4.13).
        let text = "nr_free_pages 808357\npgpgin 2581925\npgpgout 12780464\npswpin 0\n\
pswpout 0\npgfault 12767707\npgmajfault 1034\npgrefill 7\noom_kill 3\nthp_fault_alloc 1\n\
pgfault-bad x\n";
        let got: Vec<(String, f64)> = parse(text)
            .into_iter()
            .map(|family| {
                assert_eq!(family.kind, MetricKind::Untyped);
                (family.name.to_string(), family.samples[0].value)
            })
            .collect();
        let want = [
            ("node_vmstat_pgpgin", 2581925.0),
            ("node_vmstat_pgpgout", 12780464.0),
            ("node_vmstat_pswpin", 0.0),
            ("node_vmstat_pswpout", 0.0),
            ("node_vmstat_pgfault", 12767707.0),
            ("node_vmstat_pgmajfault", 1034.0),
            ("node_vmstat_oom_kill", 3.0),
        ];
        let want: Vec<(String, f64)> = want
            .iter()
            .map(|(name, value)| (name.to_string(), *value))
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            parse("oom_kill 1\n")[0].help,
            "/proc/vmstat information field oom_kill."
        );
    }
}
