//! Password guessing against the collector's own login form (issue 21,
//! item 3): many wrong passwords at once from one address must neither get
//! past the rate limit nor cost memory in proportion to their number.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use countywatch_e2e::Collector;
use countywatch_e2e::http::request;
use countywatch_e2e::process::add_user;

use crate::abuse::peak_rss_kib;

/// Parallel login attempts.
const ATTEMPTS: usize = 128;
/// Generous ceiling on the collector's peak memory: two argon2 checks of
/// 19 MiB plus the daemon's own ~40 MiB, with room for a debug build. The
/// unbounded code reached 2.8 GB.
const PEAK_CEILING_KIB: u64 = 192 * 1024;

/// The login form's body and its cookie header, with a double-submit token
/// of our own making (any token matching its cookie is accepted).
fn login_form(user: &str, password: &str) -> (String, String) {
    let token = "00112233445566778899aabbccddeeff";
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", token)
        .append_pair("username", user)
        .append_pair("password", password)
        .finish();
    (body, format!("Cookie: cw_login_csrf={token}"))
}

/// Posts the login form; returns the status.
fn post_login(collector: &Collector, user: &str, password: &str) -> u16 {
    let (body, cookie) = login_form(user, password);
    request(
        collector.http_addr,
        "POST",
        "/login",
        &[&cookie, "Content-Type: application/x-www-form-urlencoded"],
        &body,
    )
    .map_or(0, |response| response.status)
}

/// The resident memory of `pid` now, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_hundred_and_twenty_eight_parallel_wrong_passwords_get_five_tries_and_bounded_memory() {
    let collector = Arc::new(Collector::start());
    add_user(
        &collector.data_dir,
        "admin1",
        "admin",
        "the-right-password-1",
    );
    let before = rss_kib(collector.pid());
    let barrier = Arc::new(Barrier::new(ATTEMPTS));
    let threads: Vec<_> = (0..ATTEMPTS)
        .map(|index| {
            let collector = Arc::clone(&collector);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                post_login(&collector, "admin1", &format!("wrong-password-{index}"))
            })
        })
        .collect();
    let statuses: Vec<u16> = threads
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .collect();
    let count = |status: u16| statuses.iter().filter(|&&got| got == status).count();
    let peak = peak_rss_kib(collector.pid());
    let after = rss_kib(collector.pid());
    println!(
        "{ATTEMPTS} parallel wrong passwords: {} x 401, {} x 429, {} x 503; RSS {before} KiB before, peak {peak} KiB, {after} KiB after",
        count(401),
        count(429),
        count(503)
    );
    // Only the attempts the limits allow (five for the address, three for
    // the account) were counted, checked or turned away as busy (503);
    // every other attempt was refused before argon2 ran.
    assert!(count(401) <= 3, "{statuses:?}");
    assert!((1..=5).contains(&(count(401) + count(503))), "{statuses:?}");
    assert_eq!(
        count(401) + count(429) + count(503),
        ATTEMPTS,
        "{statuses:?}"
    );
    assert!(peak < PEAK_CEILING_KIB, "peak {peak} KiB");
    // The limit still holds against the right password from that address.
    assert_eq!(
        post_login(&collector, "admin1", "the-right-password-1"),
        429
    );
    // Every refusal is a web_login_failed event.
    assert!(countywatch_e2e::process::wait_until(
        Duration::from_secs(10),
        || collector.event_count("collector", "web_login_failed") == ATTEMPTS as i64 + 1
    ));
}

/// Posts a wrong or right password for `user` from loopback address
/// `source` (curl binds it); returns the status.
fn post_login_from(collector: &Collector, source: &str, user: &str, password: &str) -> u16 {
    let (body, cookie) = login_form(user, password);
    let output = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--interface",
            source,
        ])
        .args(["-H", &cookie])
        .args(["--data", &body])
        .arg(format!("http://{}/login", collector.http_addr))
        .output()
        .expect("curl is installed by tests/run.sh");
    String::from_utf8_lossy(&output.stdout).parse().unwrap_or(0)
}

#[test]
fn twenty_addresses_guessing_one_account_meet_its_backoff_and_the_right_password_waits() {
    let collector = Arc::new(Collector::start());
    add_user(
        &collector.data_dir,
        "admin1",
        "admin",
        "the-right-password-1",
    );
    // 20 addresses x 5 guesses: within the per-address limit each time.
    let threads: Vec<_> = (2..22)
        .map(|host| {
            let collector = Arc::clone(&collector);
            std::thread::spawn(move || {
                (0..5)
                    .map(|guess| {
                        post_login_from(
                            &collector,
                            &format!("127.0.0.{host}"),
                            "admin1",
                            &format!("guess-{host}-{guess}"),
                        )
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    let statuses: Vec<u16> = threads
        .into_iter()
        .flat_map(|thread| thread.join().unwrap())
        .collect();
    let checked = statuses.iter().filter(|&&status| status == 401).count();
    println!("100 guesses from 20 addresses: {checked} checked, the rest refused");
    // Three free attempts, then one a second at most, doubling: the
    // 100 guesses take seconds, so only a handful are ever checked.
    assert!(checked <= 8, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|&status| [401, 429, 503].contains(&status)),
        "{statuses:?}"
    );
    // The right password, from an address that never failed, right after:
    // the account is still backing off.
    assert_eq!(
        post_login_from(&collector, "127.0.0.40", "admin1", "the-right-password-1"),
        429
    );
    // Every refusal was recorded for detection.
    assert!(countywatch_e2e::process::wait_until(
        Duration::from_secs(10),
        || collector.event_count("collector", "web_login_failed") == 101
    ));
}
