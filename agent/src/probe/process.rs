//! The process probe: CPU seconds, memory, open file descriptors, start
//! time and count of processes, grouped and labelled by process name, never
//! by pid, so series survive restarts and their number stays bounded.
//!
//! Names and labels are process-exporter's
//! (`namedprocess_namegroup_cpu_seconds_total{groupname,mode}` and
//! siblings), so its Grafana dashboards work unchanged; the collector keeps
//! the `countywatch_` namespace for itself.
//!
//! node_exporter refuses per-process metrics; county ops teams ask which
//! process ate the memory, so this probe answers for a configured list of
//! names, the top N by CPU and by memory, or both. It is off by default.
//!
//! A group's CPU counter never goes backwards: when a process exits, its
//! last CPU time is kept in the group's total (as process-exporter does).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use countywatch_config::config_file::Problems;
use countywatch_config::duration::PromDuration;
use countywatch_wire::{MetricFamily, MetricKind};
use serde::Deserialize;

use super::parse_error::ProbeParseError;
use super::toggle::{ProbeSection, ProbeToggle};
use super::{Probe, ProbeError, read_file};

/// The process probe's config section; off, with nothing listed, by default.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessConfig {
    /// Whether the probe runs (off unless set).
    pub enabled: bool,
    /// How often the probe runs; defaults to the agent's interval.
    pub interval: Option<PromDuration>,
    /// Process names (the kernel's `comm`, at most 15 characters) always
    /// reported.
    pub names: Vec<String>,
    /// Also report the N names using the most CPU since the last run, and
    /// the N using the most resident memory. 0 turns this off.
    pub top: usize,
}

impl ProbeSection for ProcessConfig {
    fn toggle(&self) -> ProbeToggle {
        ProbeToggle {
            enabled: self.enabled,
            interval: self.interval,
        }
    }

    fn validate(&self, _probe_timeout: Duration, problems: &mut Problems) {
        validate(self, problems);
    }
}

/// An enabled probe must have something to report, and a bounded amount.
pub fn validate(config: &ProcessConfig, problems: &mut Problems) {
    if config.enabled && config.names.is_empty() && config.top == 0 {
        problems.general("probes.process is enabled but has neither names nor top");
    }
    if config.top > 100 {
        problems.general(format!(
            "probes.process.top {} is above 100: that many series per host is not a summary",
            config.top
        ));
    }
    for name in &config.names {
        if name.is_empty() || name.len() > 15 {
            problems.general(format!(
                "probes.process.names: {name:?} is not a process name (1 to 15 characters, as in /proc/PID/comm)"
            ));
        }
    }
}

/// One process as /proc/PID/stat describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessStat {
    /// `comm`: the executable name, truncated by the kernel to 15 bytes.
    pub name: String,
    /// User CPU time, in clock ticks.
    pub user_ticks: f64,
    /// System CPU time, in clock ticks.
    pub system_ticks: f64,
    /// Virtual memory size, in bytes.
    pub virtual_bytes: f64,
    /// Start time, in clock ticks after boot.
    pub start_ticks: f64,
    /// Resident set size, in pages.
    pub rss_pages: f64,
}

/// Parses /proc/PID/stat. The name is in parentheses and may itself hold
/// spaces and parentheses, so the fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcessStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // fields[0] is field 3 (state) of proc(5).
    let field = |number: usize| -> Option<f64> { fields.get(number - 3)?.parse().ok() };
    Some(ProcessStat {
        name,
        user_ticks: field(14)?,
        system_ticks: field(15)?,
        virtual_bytes: field(23)?,
        start_ticks: field(22)?,
        rss_pages: field(24)?,
    })
}

/// What a name group adds up to in one run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Group {
    /// User CPU seconds of live processes plus those of exited ones.
    pub user_seconds: f64,
    /// System CPU seconds, likewise.
    pub system_seconds: f64,
    /// Virtual memory of live processes.
    pub virtual_bytes: f64,
    /// Resident bytes of live processes.
    pub rss_bytes: f64,
    /// Open file descriptors of live processes (those we may read).
    pub open_fds: f64,
    /// Start of the oldest live process, seconds since the epoch.
    pub start_time: f64,
    /// Live processes.
    pub count: f64,
}

/// Reads /proc/PID/* and keeps per-pid CPU so that exits do not make the
/// group counters go backwards.
pub struct ProcessProbe {
    /// procfs root, `/proc` unless configured.
    procfs: PathBuf,
    /// Names always reported.
    names: HashSet<String>,
    /// How many top names by CPU and by memory.
    top: usize,
    /// Clock ticks per second (USER_HZ).
    ticks_per_second: f64,
    /// Bytes per page.
    page_size: f64,
    /// Boot time, seconds since the epoch, read once.
    boot_time: Option<f64>,
    /// Live processes last run: pid -> (name, start ticks, user and system
    /// CPU seconds).
    seen: HashMap<i32, (String, f64, [f64; 2])>,
    /// User and system CPU seconds of exited processes, per name.
    exited: HashMap<String, [f64; 2]>,
    /// Each group's CPU total last run, to rank by recent CPU use.
    last_cpu: HashMap<String, f64>,
}

impl ProcessProbe {
    /// A probe reading under `procfs`.
    pub fn new(procfs: PathBuf, config: &ProcessConfig) -> Self {
        let ticks = rustix::param::clock_ticks_per_second();
        ProcessProbe {
            procfs,
            names: config.names.iter().cloned().collect(),
            top: config.top,
            ticks_per_second: if ticks == 0 { 100.0 } else { ticks as f64 },
            page_size: rustix::param::page_size() as f64,
            boot_time: None,
            seen: HashMap::new(),
            exited: HashMap::new(),
            last_cpu: HashMap::new(),
        }
    }

    fn boot_time(&mut self) -> Result<f64, ProbeError> {
        if let Some(boot_time) = self.boot_time {
            return Ok(boot_time);
        }
        let (path, text) = read_file(self.procfs.join("stat"))?;
        let boot_time = text
            .lines()
            .find_map(|line| line.strip_prefix("btime "))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .ok_or(ProbeError::Parse {
                path,
                source: ProbeParseError::Malformed("no btime line"),
            })?;
        self.boot_time = Some(boot_time);
        Ok(boot_time)
    }
}

impl Probe for ProcessProbe {
    fn name(&self) -> &'static str {
        "process"
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let boot_time = self.boot_time()?;
        let entries = std::fs::read_dir(&self.procfs).map_err(|source| ProbeError::Read {
            path: self.procfs.clone(),
            source,
        })?;
        let mut live: HashMap<i32, ProcessStat> = HashMap::new();
        for entry in entries.filter_map(Result::ok) {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse().ok())
            else {
                continue;
            };
            // A process may exit between the listing and the read.
            let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if let Some(stat) = parse_stat(&text) {
                live.insert(pid, stat);
            }
        }
        // Processes gone since the last run keep their CPU in their group.
        let seen = std::mem::take(&mut self.seen);
        for (pid, (name, start, cpu)) in seen {
            let same = live
                .get(&pid)
                .is_some_and(|stat| stat.start_ticks == start && stat.name == name);
            if !same {
                let total = self.exited.entry(name).or_default();
                total[0] += cpu[0];
                total[1] += cpu[1];
            }
        }
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        for (pid, stat) in &live {
            let cpu = [
                stat.user_ticks / self.ticks_per_second,
                stat.system_ticks / self.ticks_per_second,
            ];
            self.seen
                .insert(*pid, (stat.name.clone(), stat.start_ticks, cpu));
            let group = groups.entry(stat.name.clone()).or_default();
            group.user_seconds += cpu[0];
            group.system_seconds += cpu[1];
            group.virtual_bytes += stat.virtual_bytes;
            group.rss_bytes += stat.rss_pages * self.page_size;
            let start = boot_time + stat.start_ticks / self.ticks_per_second;
            if group.count == 0.0 || start < group.start_time {
                group.start_time = start;
            }
            group.count += 1.0;
        }
        for (name, group) in &mut groups {
            let exited = self.exited.get(name).copied().unwrap_or_default();
            group.user_seconds += exited[0];
            group.system_seconds += exited[1];
        }
        let chosen = choose(&groups, &self.names, self.top, &self.last_cpu);
        self.last_cpu = groups
            .iter()
            .map(|(name, group)| (name.clone(), group.cpu_seconds()))
            .collect();
        // Counting descriptors lists a directory per process: done only for
        // the processes reported.
        for (pid, stat) in &live {
            if let Some(group) = groups.get_mut(&stat.name)
                && chosen.contains(&stat.name)
            {
                group.open_fds += count_fds(&self.procfs.join(pid.to_string()).join("fd"));
            }
        }
        // Configured names with no live process report zero, so their alerts
        // see "not running" rather than nothing.
        for name in &self.names {
            let exited = self.exited.get(name).copied().unwrap_or_default();
            groups.entry(name.clone()).or_insert_with(|| Group {
                user_seconds: exited[0],
                system_seconds: exited[1],
                ..Group::default()
            });
        }
        let reported: Vec<(&str, &Group)> = groups
            .iter()
            .filter(|(name, _)| chosen.contains(*name) || self.names.contains(*name))
            .map(|(name, group)| (name.as_str(), group))
            .collect();
        out.extend(families(&reported));
        Ok(())
    }
}

fn count_fds(dir: &Path) -> f64 {
    std::fs::read_dir(dir)
        .map(|entries| entries.count() as f64)
        .unwrap_or(0.0)
}

/// The configured names plus the top `top` by CPU used since the last run
/// (by total CPU on the first run) and the top `top` by resident memory.
pub fn choose(
    groups: &BTreeMap<String, Group>,
    names: &HashSet<String>,
    top: usize,
    last_cpu: &HashMap<String, f64>,
) -> HashSet<String> {
    let mut chosen: HashSet<String> = names.clone();
    if top == 0 {
        return chosen;
    }
    let mut by_cpu: Vec<(&String, f64)> = groups
        .iter()
        .map(|(name, group)| {
            let before = last_cpu.get(name).copied().unwrap_or(0.0);
            (name, group.cpu_seconds() - before)
        })
        .collect();
    by_cpu.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    chosen.extend(by_cpu.iter().take(top).map(|(name, _)| (*name).clone()));
    let mut by_memory: Vec<(&String, f64)> = groups
        .iter()
        .map(|(name, group)| (name, group.rss_bytes))
        .collect();
    by_memory.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    chosen.extend(by_memory.iter().take(top).map(|(name, _)| (*name).clone()));
    chosen
}

/// The families of the reported groups, as process-exporter names them.
pub fn families(groups: &[(&str, &Group)]) -> Vec<MetricFamily> {
    let mut cpu = MetricFamily::new(
        "namedprocess_namegroup_cpu_seconds_total",
        "Cpu user usage in seconds",
        MetricKind::Counter,
    );
    let mut memory = MetricFamily::new(
        "namedprocess_namegroup_memory_bytes",
        "number of bytes of memory in use",
        MetricKind::Gauge,
    );
    let mut fds = MetricFamily::new(
        "namedprocess_namegroup_open_filedesc",
        "number of open file descriptors for this group",
        MetricKind::Gauge,
    );
    let mut start = MetricFamily::new(
        "namedprocess_namegroup_oldest_start_time_seconds",
        "start time in seconds since 1970/01/01 of oldest process in group",
        MetricKind::Gauge,
    );
    let mut count = MetricFamily::new(
        "namedprocess_namegroup_num_procs",
        "number of processes in this group",
        MetricKind::Gauge,
    );
    for (name, group) in groups {
        let label = ("groupname", *name);
        cpu.push(&[label, ("mode", "user")], group.user_seconds);
        cpu.push(&[label, ("mode", "system")], group.system_seconds);
        memory.push(&[label, ("memtype", "resident")], group.rss_bytes);
        memory.push(&[label, ("memtype", "virtual")], group.virtual_bytes);
        fds.push(&[label], group.open_fds);
        // A name with no process has no start time; 0 would read as 1970.
        if group.count > 0.0 {
            start.push(&[label], group.start_time);
        }
        count.push(&[label], group.count);
    }
    let mut all = vec![cpu, memory, fds, start, count];
    all.retain(|family| !family.samples.is_empty());
    all
}

impl Group {
    /// User plus system CPU seconds.
    pub fn cpu_seconds(&self) -> f64 {
        self.user_seconds + self.system_seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat_line(pid: i32, name: &str, utime: u64, start: u64, rss: u64) -> String {
        format!(
            "{pid} ({name}) S 1 1 1 0 -1 4194560 100 0 0 0 {utime} 5 0 0 20 0 1 0 {start} 1000 {rss} 18446744073709551615\n"
        )
    }

    #[test]
    fn stat_names_may_hold_spaces_and_parentheses() {
        let stat = parse_stat(&stat_line(7, "tmux: (server)", 95, 300, 12)).unwrap();
        assert_eq!(
            stat,
            ProcessStat {
                name: "tmux: (server)".into(),
                user_ticks: 95.0,
                system_ticks: 5.0,
                virtual_bytes: 1000.0,
                start_ticks: 300.0,
                rss_pages: 12.0
            }
        );
        assert_eq!(parse_stat("7 (x) S 1 2"), None);
    }

    fn write_process(procfs: &Path, pid: i32, name: &str, utime: u64, start: u64, fds: usize) {
        let dir = procfs.join(pid.to_string());
        std::fs::create_dir_all(dir.join("fd")).unwrap();
        std::fs::write(dir.join("stat"), stat_line(pid, name, utime, start, 10)).unwrap();
        for fd in 0..fds {
            std::fs::write(dir.join("fd").join(fd.to_string()), "").unwrap();
        }
    }

    /// The value of `family{groupname=name[,second label=second]}`.
    fn value(out: &[MetricFamily], family: &str, name: &str, second: Option<&str>) -> Option<f64> {
        out.iter()
            .find(|f| f.name == family)?
            .samples
            .iter()
            .find(|sample| {
                sample.owned_labels()[0] == ("groupname".to_string(), name.to_string())
                    && second.is_none_or(|second| sample.labels[1].1 == second)
            })
            .map(|sample| sample.value)
    }

    const CPU: &str = "namedprocess_namegroup_cpu_seconds_total";
    const COUNT: &str = "namedprocess_namegroup_num_procs";

    #[test]
    fn groups_by_name_and_never_goes_backwards_when_a_process_exits() {
        let procfs = tempfile::tempdir().unwrap();
        let root = procfs.path();
        std::fs::write(root.join("stat"), "cpu 1 2 3\nbtime 1700000000\n").unwrap();
        write_process(root, 10, "postgres", 95, 100, 3);
        write_process(root, 11, "postgres", 195, 200, 2);
        write_process(root, 12, "sshd", 0, 50, 1);
        let config = ProcessConfig {
            enabled: true,
            names: vec!["postgres".into(), "httpd".into()],
            ..ProcessConfig::default()
        };
        let mut probe = ProcessProbe::new(root.to_path_buf(), &config);
        probe.ticks_per_second = 100.0;
        probe.page_size = 4096.0;
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        assert_eq!(value(&out, CPU, "postgres", Some("user")), Some(2.9));
        assert_eq!(value(&out, CPU, "postgres", Some("system")), Some(0.1));
        assert_eq!(value(&out, COUNT, "postgres", None), Some(2.0));
        assert_eq!(
            value(
                &out,
                "namedprocess_namegroup_open_filedesc",
                "postgres",
                None
            ),
            Some(5.0)
        );
        assert_eq!(
            value(
                &out,
                "namedprocess_namegroup_memory_bytes",
                "postgres",
                Some("resident")
            ),
            Some(2.0 * 10.0 * 4096.0)
        );
        assert_eq!(
            value(
                &out,
                "namedprocess_namegroup_memory_bytes",
                "postgres",
                Some("virtual")
            ),
            Some(2000.0)
        );
        let oldest = "namedprocess_namegroup_oldest_start_time_seconds";
        assert_eq!(value(&out, oldest, "postgres", None), Some(1700000001.0));
        assert_eq!(value(&out, COUNT, "httpd", None), Some(0.0));
        assert_eq!(value(&out, oldest, "httpd", None), None);
        assert_eq!(value(&out, COUNT, "sshd", None), None);
        // The busier postgres exits: its CPU stays in the counter.
        std::fs::remove_dir_all(root.join("11")).unwrap();
        out.clear();
        probe.collect(&mut out).unwrap();
        assert_eq!(value(&out, CPU, "postgres", Some("user")), Some(2.9));
        assert_eq!(value(&out, COUNT, "postgres", None), Some(1.0));
    }

    #[test]
    fn top_n_by_recent_cpu_and_by_memory() {
        let group = |cpu: f64, rss: f64| Group {
            user_seconds: cpu,
            rss_bytes: rss,
            ..Group::default()
        };
        let groups: BTreeMap<String, Group> = [
            ("idle-but-old".to_string(), group(1000.0, 1.0)),
            ("busy".to_string(), group(50.0, 2.0)),
            ("fat".to_string(), group(0.0, 1e9)),
        ]
        .into();
        let last: HashMap<String, f64> = [
            ("idle-but-old".to_string(), 1000.0),
            ("busy".to_string(), 10.0),
        ]
        .into();
        let chosen = choose(&groups, &HashSet::new(), 1, &last);
        let mut chosen: Vec<String> = chosen.into_iter().collect();
        chosen.sort();
        assert_eq!(chosen, vec!["busy".to_string(), "fat".to_string()]);
    }

    #[test]
    fn the_section_is_checked() {
        let mut problems = Problems::new("a.yaml");
        let config = ProcessConfig {
            enabled: true,
            top: 1000,
            names: vec!["a-name-longer-than-fifteen".into()],
            ..ProcessConfig::default()
        };
        validate(&config, &mut problems);
        assert_eq!(problems.problems.len(), 2);
    }
}
