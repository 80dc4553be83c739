//! Parsing throughput of `countywatch-agent replay --source auth` on a
//! large synthetic auth.log, side by side with Debian's `fail2ban-regex`
//! and its `sshd` filter on the same file (the tool users run today to
//! check auth-log parsing).
//!
//! Needs the agent binary built in the same profile (build with
//! `--release`) and, for the peer figure, the `fail2ban` package
//! (`/usr/bin/fail2ban-regex`, `/etc/fail2ban/filter.d/sshd.conf`); the
//! benchmark installs nothing and reports only our figure without it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{Benchmark, Figure};

/// Registration.
pub const BENCHMARK: Benchmark = Benchmark {
    name: "auth_replay",
    about: "replay 1,000,000 synthetic auth.log lines (vs fail2ban-regex sshd)",
    run,
};

/// Lines generated.
const LINES: usize = 1_000_000;

/// Writes `LINES` lines in the real formats of OpenSSH, PAM and sudo, with
/// some noise no parser knows, deterministically.
pub fn generate(path: &Path, lines: usize) {
    let file = std::fs::File::create(path).unwrap();
    let mut out = std::io::BufWriter::new(file);
    let users = [
        "root", "admin", "oracle", "test", "ubuntu", "postgres", "git",
    ];
    for index in 0..lines {
        let seconds = index / 40;
        let stamp = format!(
            "Nov 28 {:02}:{:02}:{:02}",
            (seconds / 3600) % 24,
            (seconds / 60) % 60,
            seconds % 60
        );
        let ip = format!(
            "{}.{}.{}.{}",
            11 + index % 200,
            (index / 7) % 250,
            (index / 13) % 250,
            1 + index % 254
        );
        let port = 1024 + (index * 7919) % 60_000;
        let user = users[index % users.len()];
        let pid = 1000 + index / 10 % 30_000;
        let message = match index % 20 {
            0..=7 => format!("sshd[{pid}]: Failed password for root from {ip} port {port} ssh2"),
            8..=10 => format!("sshd[{pid}]: Invalid user {user} from {ip} port {port}"),
            11..=12 => format!(
                "sshd[{pid}]: Failed password for invalid user {user} from {ip} port {port} ssh2"
            ),
            13 => format!(
                "sshd[{pid}]: Connection closed by authenticating user root {ip} port {port} [preauth]"
            ),
            14 => format!(
                "sshd[{pid}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user=root"
            ),
            15 => format!(
                "sshd[{pid}]: Accepted publickey for deploy from {ip} port {port} ssh2: ED25519 SHA256:q1w2e3r4t5y6u7i8o9p0"
            ),
            16 => format!(
                "sshd[{pid}]: pam_unix(sshd:session): session opened for user deploy(uid=1001) by (uid=0)"
            ),
            17 => "sudo:   deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx".to_string(),
            18 => format!("sshd[{pid}]: Received disconnect from {ip} port {port}:11: Bye Bye [preauth]"),
            _ => format!("systemd-logind[400]: New session {index} of user deploy."),
        };
        writeln!(out, "{stamp} web-01 {message}").unwrap();
    }
    out.flush().unwrap();
}

/// Runs `command` to completion and returns (wall seconds, CPU seconds).
/// CPU time (user + system of the waited child, from this process's
/// `cutime`/`cstime`) is the fairer figure on a machine shared with other
/// work; wall time is what a user waits.
fn timed(command: &mut Command) -> Option<(f64, f64)> {
    let cpu_before = children_cpu_seconds();
    let started = Instant::now();
    let status = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = children_cpu_seconds() - cpu_before;
    status.success().then_some((wall, cpu))
}

/// User plus system time of every waited-for child so far.
fn children_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; cutime and cstime are
    // fields 16 and 17 of the whole line.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks: u64 = fields[13].parse::<u64>().unwrap() + fields[14].parse::<u64>().unwrap();
    ticks as f64 / rustix::param::clock_ticks_per_second() as f64
}

fn run() -> Vec<Figure> {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    generate(&log, LINES);
    let agent = crate::binary("countywatch-agent");
    let (wall, cpu) = timed(
        Command::new(&agent)
            .args(["replay", "--source", "auth"])
            .arg(&log),
    )
    .expect("countywatch-agent replay failed");
    let lines = LINES as f64;
    let mut wall_figure = Figure::new("auth_replay_lines_per_second", lines / wall, "lines/s");
    let mut cpu_figure = Figure::new("auth_replay_lines_per_cpu_second", lines / cpu, "lines/s");
    let filter = Path::new("/etc/fail2ban/filter.d/sshd.conf");
    let peer = if filter.exists() {
        timed(Command::new("fail2ban-regex").arg(&log).arg(filter))
    } else {
        None
    };
    match peer {
        Some((peer_wall, peer_cpu)) => {
            wall_figure = wall_figure.with_peer("fail2ban-regex sshd", lines / peer_wall);
            cpu_figure = cpu_figure.with_peer("fail2ban-regex sshd", lines / peer_cpu);
        }
        None => eprintln!(
            "fail2ban-regex or its sshd filter is missing: install the fail2ban package for the peer figure"
        ),
    }
    vec![wall_figure, cpu_figure]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_log_is_what_the_parsers_expect() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("auth.log");
        generate(&log, 40);
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text.lines().count(), 40);
        assert!(text.starts_with("Nov 28 00:00:00 web-01 sshd[1000]: Failed password for root from 11.0.0.1 port 1024 ssh2\n"));
    }
}
