//! The mdadm collector: Linux software RAID arrays from /proc/mdstat, as
//! node_exporter 1.5 serves them: `node_md_state{device,state}` (one series
//! per state, the current one 1), `node_md_disks{device,state}` (active,
//! failed, spare), `node_md_disks_required`, `node_md_blocks` and
//! `node_md_blocks_synced`. A degraded array (`[2/1] [U_]`) is what the
//! community's RAID alert rules look for.
//!
//! A host without the md driver has no /proc/mdstat: the collector is
//! absent there, as in node_exporter, and does not look again.

use std::path::Path;

use countywatch_wire::{MetricFamily, MetricKind};

use super::file_probe::FileProbe;
use super::parse_error::ProbeParseError;

/// The probe reading `<procfs>/mdstat`.
pub fn probe(procfs: &Path, _sysfs: &Path) -> FileProbe {
    FileProbe::new("mdadm", vec![procfs.join("mdstat")], parse)
}

/// One array's figures.
#[derive(Debug, PartialEq)]
pub struct Array {
    /// `md0`.
    pub name: String,
    /// `active`, `inactive`, `recovering`, `resyncing` or `checking`.
    pub state: String,
    /// Disks in use.
    pub active: f64,
    /// Disks the array needs.
    pub required: f64,
    /// Disks marked `(F)`.
    pub failed: f64,
    /// Disks marked `(S)`.
    pub spare: f64,
    /// Size in blocks.
    pub blocks: f64,
    /// Blocks in sync: all of them unless a sync is running.
    pub blocks_synced: f64,
}

/// The mdstat text to the five families.
pub fn parse(texts: &[Option<String>]) -> Result<Vec<MetricFamily>, ProbeParseError> {
    let text = texts
        .first()
        .and_then(Option::as_ref)
        .ok_or(ProbeParseError::Malformed("no mdstat"))?;
    Ok(families(&arrays(text)?))
}

/// The arrays in mdstat, in the file's order. Each array is a line
/// `md0 : active raid1 sdb1[1] sda1[0]`, then an indented status line with
/// its size and disks, then possibly a bitmap line and a sync line.
pub fn arrays(text: &str) -> Result<Vec<Array>, ProbeParseError> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut found = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if line.trim().is_empty()
            || line.starts_with(' ')
            || line.starts_with("Personalities")
            || line.starts_with("unused")
        {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(name), Some(state)) = (fields.first(), fields.get(2)) else {
            return Err(ProbeParseError::line(
                "not enough fields in the array line",
                line,
            ));
        };
        let status = lines.get(index + 1).copied().unwrap_or("");
        let (active, required, blocks) = status_line(line, status)?;
        let mut sync_line = lines.get(index + 2).copied().unwrap_or("");
        if sync_line.contains("bitmap") {
            sync_line = lines.get(index + 3).copied().unwrap_or("");
        }
        let mut state = (*state).to_string();
        let mut blocks_synced = blocks;
        let (recovering, resyncing, checking) = (
            sync_line.contains("recovery"),
            sync_line.contains("resync"),
            sync_line.contains("check"),
        );
        if recovering || resyncing || checking {
            state = if recovering {
                "recovering"
            } else if checking {
                "checking"
            } else {
                "resyncing"
            }
            .to_string();
            blocks_synced = if sync_line.contains("PENDING") || sync_line.contains("DELAYED") {
                0.0
            } else {
                synced_blocks(sync_line).ok_or_else(|| ProbeParseError::SyncLine {
                    array: (*name).to_string(),
                    line: sync_line.to_string(),
                })?
            };
        }
        found.push(Array {
            name: (*name).to_string(),
            state,
            active,
            required,
            failed: line.matches("(F)").count() as f64,
            spare: line.matches("(S)").count() as f64,
            blocks,
            blocks_synced,
        });
    }
    Ok(found)
}

/// (active disks, required disks, blocks) from an array's line and its
/// status line (`312319552 blocks [2/1] [U_]`). Striped and linear arrays
/// have no `[n/m]`: every disk listed is needed and active; an inactive
/// array counts none.
fn status_line(array_line: &str, status: &str) -> Result<(f64, f64, f64), ProbeParseError> {
    let blocks: f64 = status
        .split_whitespace()
        .next()
        .and_then(|size| size.parse::<u64>().ok())
        .ok_or_else(|| ProbeParseError::line("unexpected status line", status))?
        as f64;
    if array_line.contains("raid0") || array_line.contains("linear") {
        let disks = array_line.matches('[').count() as f64;
        return Ok((disks, disks, blocks));
    }
    if array_line.contains("inactive") {
        return Ok((0.0, 0.0, blocks));
    }
    let after_blocks = status
        .find(" blocks ")
        .map(|at| &status[at..])
        .ok_or_else(|| ProbeParseError::line("no block count in", status))?;
    // The last `[required/active] [UU_]` of the line.
    after_blocks
        .match_indices('[')
        .rev()
        .find_map(|(at, _)| disk_counts(&after_blocks[at..]))
        .map(|(required, active)| (active, required, blocks))
        .ok_or_else(|| ProbeParseError::line("no disk counts in", status))
}

/// `[2/1] [U_]` at the start of `text` to (required, active).
fn disk_counts(text: &str) -> Option<(f64, f64)> {
    let (counts, rest) = text.strip_prefix('[')?.split_once(']')?;
    let (required, active) = counts.split_once('/')?;
    let flags = rest.strip_prefix(" [")?.split_once(']')?.0;
    if flags.is_empty() || !flags.chars().all(|c| c == 'U' || c == '_') {
        return None;
    }
    Some((required.parse().ok()?, active.parse().ok()?))
}

/// The synced blocks of a sync line (`recovery = 8.5% (16775552/195310144)
/// finish=...`).
fn synced_blocks(line: &str) -> Option<f64> {
    line.match_indices('(').find_map(|(at, _)| {
        let (inside, _) = line[at + 1..].split_once(')')?;
        let (done, total) = inside.split_once('/')?;
        total.parse::<u64>().ok()?;
        done.parse::<u64>().ok().map(|done| done as f64)
    })
}

/// The families for the arrays.
pub fn families(arrays: &[Array]) -> Vec<MetricFamily> {
    let gauge = MetricKind::Gauge;
    let mut required = MetricFamily::new(
        "node_md_disks_required",
        "Total number of disks of device.",
        gauge,
    );
    let mut disks = MetricFamily::new(
        "node_md_disks",
        "Number of active/failed/spare disks of device.",
        gauge,
    );
    let mut state = MetricFamily::new("node_md_state", "Indicates the state of md-device.", gauge);
    let mut blocks =
        MetricFamily::new("node_md_blocks", "Total number of blocks on device.", gauge);
    let mut synced = MetricFamily::new(
        "node_md_blocks_synced",
        "Number of blocks synced on device.",
        gauge,
    );
    for array in arrays {
        let device = array.name.as_str();
        required.push(&[("device", device)], array.required);
        for (name, count) in [
            ("active", array.active),
            ("failed", array.failed),
            ("spare", array.spare),
        ] {
            disks.push(&[("device", device), ("state", name)], count);
        }
        // node_exporter's label values, against the parsed state's words.
        for (label, parsed) in [
            ("active", "active"),
            ("inactive", "inactive"),
            ("recovering", "recovering"),
            ("resync", "resyncing"),
            ("check", "checking"),
        ] {
            let value = if array.state == parsed { 1.0 } else { 0.0 };
            state.push(&[("device", device), ("state", label)], value);
        }
        blocks.push(&[("device", device)], array.blocks);
        synced.push(&[("device", device)], array.blocks_synced);
    }
    let mut families = vec![required, disks, state, blocks, synced];
    families.retain(|family| !family.samples.is_empty());
    families
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arrays in the shapes the kernel writes: a healthy mirror, a degraded
    /// one rebuilding, a RAID 6 with a bitmap line and a failed disk, a
    /// delayed resync, a check, a stripe, a linear array and an inactive
    /// container of spares.
    const MDSTAT: &str = "Personalities : [raid1] [raid6] [raid5] [raid4] [raid0] [linear]
md1 : active raid1 sdb2[1] sda2[0]
      976630464 blocks super 1.2 [2/2] [UU]
      bitmap: 2/8 pages [8KB], 65536KB chunk

md2 : active raid1 sdd1[2] sdc1[0] sde1[3](S) sdf1[1](F)
      488253440 blocks [2/1] [U_]
      [====>................]  recovery = 22.1% (107905024/488253440) finish=41.3min speed=153401K/sec

md3 : active raid6 sdg1[0] sdh1[1] sdi1[2] sdj1[3](F)
      3906764800 blocks super 1.2 level 6, 512k chunk, algorithm 2 [4/3] [UU_U]
      bitmap: 1/15 pages [4KB], 65536KB chunk

md4 : active raid1 sdk1[1] sdl1[0]
      1048512 blocks super 1.2 [2/2] [UU]
      resync=DELAYED

md5 : active raid1 sdm1[1] sdn1[0]
      2095104 blocks super 1.2 [2/2] [UU]
      [==>..................]  check = 14.0% (293312/2095104) finish=0.3min speed=97770K/sec

md6 : active raid0 sdo1[1] sdp1[0]
      625137664 blocks super 1.2 512k chunks

md7 : active linear sdq1[1] sdr1[0]
      41908224 blocks super 1.2 0k rounding

md8 : inactive sds[1](S) sdt[0](S)
      10402 blocks super external:imsm

unused devices: <none>
";

    /// An expected array: name, state, then active, required, failed and
    /// spare disks, blocks and blocks synced.
    fn array(name: &str, state: &str, figures: [f64; 6]) -> Array {
        let [active, required, failed, spare, blocks, blocks_synced] = figures;
        Array {
            name: name.to_string(),
            state: state.to_string(),
            active,
            required,
            failed,
            spare,
            blocks,
            blocks_synced,
        }
    }

    #[test]
    fn arrays_in_every_state() {
        assert_eq!(
            arrays(MDSTAT).unwrap(),
            vec![
                array(
                    "md1",
                    "active",
                    [2.0, 2.0, 0.0, 0.0, 976630464.0, 976630464.0]
                ),
                array(
                    "md2",
                    "recovering",
                    [1.0, 2.0, 1.0, 1.0, 488253440.0, 107905024.0]
                ),
                array(
                    "md3",
                    "active",
                    [3.0, 4.0, 1.0, 0.0, 3906764800.0, 3906764800.0]
                ),
                array("md4", "resyncing", [2.0, 2.0, 0.0, 0.0, 1048512.0, 0.0]),
                array("md5", "checking", [2.0, 2.0, 0.0, 0.0, 2095104.0, 293312.0]),
                array(
                    "md6",
                    "active",
                    [2.0, 2.0, 0.0, 0.0, 625137664.0, 625137664.0]
                ),
                array(
                    "md7",
                    "active",
                    [2.0, 2.0, 0.0, 0.0, 41908224.0, 41908224.0]
                ),
                array("md8", "inactive", [0.0, 0.0, 0.0, 2.0, 10402.0, 10402.0]),
            ]
        );
    }

    #[test]
    fn families_with_node_exporter_names_and_labels() {
        let families = parse(&[Some(MDSTAT.to_string())]).unwrap();
        let names: Vec<&str> = families.iter().map(|family| family.name.as_ref()).collect();
        assert_eq!(
            names,
            vec![
                "node_md_disks_required",
                "node_md_disks",
                "node_md_state",
                "node_md_blocks",
                "node_md_blocks_synced"
            ]
        );
        let state = &families[2];
        let md2: Vec<(&str, f64)> = state
            .samples
            .iter()
            .filter(|sample| sample.labels[0].1 == "md2")
            .map(|sample| (sample.labels[1].1.as_ref(), sample.value))
            .collect();
        assert_eq!(
            md2,
            vec![
                ("active", 0.0),
                ("inactive", 0.0),
                ("recovering", 1.0),
                ("resync", 0.0),
                ("check", 0.0)
            ]
        );
        let md2_disks: Vec<(&str, f64)> = families[1]
            .samples
            .iter()
            .filter(|sample| sample.labels[0].1 == "md2")
            .map(|sample| (sample.labels[1].1.as_ref(), sample.value))
            .collect();
        assert_eq!(
            md2_disks,
            vec![("active", 1.0), ("failed", 1.0), ("spare", 1.0)]
        );
    }

    #[test]
    fn no_arrays_and_broken_text() {
        // A host with the driver but no array.
        let empty = "Personalities : \nunused devices: <none>\n";
        assert!(parse(&[Some(empty.to_string())]).unwrap().is_empty());
        assert!(arrays("md0 :\n").is_err());
        assert!(arrays("md0 : active raid1 sda1[0]\n      lots of blocks\n").is_err());
        assert!(arrays("md0 : active raid1 sda1[0]\n      100 blocks [2/x] [U_]\n").is_err());
        assert!(
            arrays("md0 : active raid1 a[0] b[1]\n      100 blocks [2/2] [UU]\n      resync = 1% (x/100)\n")
                .is_err()
        );
    }
}
