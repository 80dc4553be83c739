//! The login form's guard against password guessing: failed logins
//! counted per source address, a backoff per account, a global budget,
//! and the argon2 memory password checks are lent, a fixed number at a
//! time. It is the HTTP side's state (one in [`crate::http::State`]); the
//! passwords, users and sessions it guards are `incident::auth`'s.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::incident::auth::{HashMemory, HashMemoryPool};

/// Failed logins allowed per address within [`FAILURE_WINDOW_MS`].
pub const MAX_FAILURES: u32 = 5;
/// Attempts on one account let through without delay; after that each
/// waits twice as long as the one before (1 s, 2 s, 4 s...), up to
/// [`MAX_ACCOUNT_DELAY_MS`], until a success.
pub const FREE_ACCOUNT_ATTEMPTS: u32 = 3;
/// The longest wait between attempts on one account: 15 minutes.
pub const MAX_ACCOUNT_DELAY_MS: i64 = 15 * 60 * 1000;
/// Failed logins allowed over every address and account within
/// [`FAILURE_WINDOW_MS`]; beyond it every login waits for the window (a
/// guessing campaign from many addresses is stopped at the cost of
/// locking everyone out for minutes, which the audit trail and the
/// `web_login_failed` events show).
pub const GLOBAL_FAILURES: u32 = 100;

/// How long after the `attempts`-th attempt the next one on the same
/// account must wait.
fn account_delay_ms(attempts: u32) -> i64 {
    match attempts.checked_sub(FREE_ACCOUNT_ATTEMPTS) {
        None => 0,
        Some(over) => 1000_i64
            .saturating_mul(1_i64 << over.min(20))
            .min(MAX_ACCOUNT_DELAY_MS),
    }
}
/// The window failed logins are counted in.
pub const FAILURE_WINDOW_MS: i64 = 5 * 60 * 1000;
/// Most addresses tracked; beyond it the oldest windows are forgotten.
const MAX_TRACKED: usize = 10_000;

/// Password checks run at once. Each holds
/// [`HASH_MEMORY_BLOCKS`](crate::incident::auth::HASH_MEMORY_BLOCKS) KiB of
/// argon2 memory, so logins cost at most this many times 19 MiB however
/// many arrive together; a login arriving when all are busy is answered
/// 503 at once instead of waiting with its own memory.
pub const CONCURRENT_PASSWORD_CHECKS: usize = 2;

/// Guards the login form: counts failed logins per source address and
/// refuses further attempts from an address that failed [`MAX_FAILURES`]
/// times within the window, so passwords cannot be guessed at argon2's
/// speed; and lends the argon2 memory, [`CONCURRENT_PASSWORD_CHECKS`] at a
/// time. An attempt is counted as a failure *before* its password is
/// checked (and forgiven if it succeeds), so parallel requests cannot all
/// pass the check before any failure is counted.
pub struct LoginLimiter {
    /// Address -> (window start, attempts counted in it).
    failures: Mutex<HashMap<IpAddr, (i64, u32)>>,
    /// Account name -> (attempts since its last success, when the last
    /// one was let through): per-account backoff, so that many addresses
    /// cannot share the guessing of one password.
    accounts: Mutex<HashMap<String, (u32, i64)>>,
    /// (window start, attempts in it) over every address and account: the
    /// global failed-login budget.
    global: Mutex<(i64, u32)>,
    /// The argon2 memory password checks are lent.
    memory: HashMemoryPool,
}

/// Which limit turned a login attempt away before its password was
/// checked; the text is the reason the login-failure event, log line and
/// audit entry give.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccountRefusal {
    /// Every account together has used the window's failed-login budget.
    #[error("global failed-login budget spent")]
    GlobalBudget,
    /// The account's own backoff has not passed since its last attempt.
    #[error("account backoff")]
    Backoff,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter {
            failures: Mutex::new(HashMap::new()),
            accounts: Mutex::new(HashMap::new()),
            global: Mutex::new((0, 0)),
            memory: HashMemoryPool::new(CONCURRENT_PASSWORD_CHECKS),
        }
    }
}

impl LoginLimiter {
    /// Counts an attempt from `address` now, before its password is
    /// checked; returns the attempts in the window, or `None` when the
    /// address is over its limit (nothing counted).
    pub fn reserve(&self, address: IpAddr, now_ms: i64) -> Option<u32> {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, (start, _)| now_ms - *start <= FAILURE_WINDOW_MS);
        }
        if failures.len() >= MAX_TRACKED {
            failures.clear();
        }
        let entry = failures.entry(address).or_insert((now_ms, 0));
        if now_ms - entry.0 > FAILURE_WINDOW_MS {
            *entry = (now_ms, 0);
        }
        if entry.1 >= MAX_FAILURES {
            return None;
        }
        entry.1 = entry.1.saturating_add(1);
        Some(entry.1)
    }

    /// Counts an attempt on `account` (the name as typed, known or not)
    /// against its backoff and against the global budget, before its
    /// password is checked; `Err` names which refused it (nothing counted).
    pub fn reserve_account(&self, account: &str, now_ms: i64) -> Result<(), AccountRefusal> {
        let key: String = account.chars().take(64).collect::<String>().to_lowercase();
        let mut accounts = self
            .accounts
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut global = self
            .global
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if now_ms - global.0 > FAILURE_WINDOW_MS {
            *global = (now_ms, 0);
        }
        if global.1 >= GLOBAL_FAILURES {
            return Err(AccountRefusal::GlobalBudget);
        }
        if accounts.len() >= MAX_TRACKED {
            accounts.retain(|_, (_, last)| now_ms - *last <= MAX_ACCOUNT_DELAY_MS);
        }
        if accounts.len() >= MAX_TRACKED {
            accounts.clear();
        }
        let entry = accounts.entry(key).or_insert((0, now_ms));
        if now_ms - entry.1 > MAX_ACCOUNT_DELAY_MS + FAILURE_WINDOW_MS {
            *entry = (0, now_ms);
        }
        if now_ms < entry.1.saturating_add(account_delay_ms(entry.0)) {
            return Err(AccountRefusal::Backoff);
        }
        *entry = (entry.0.saturating_add(1), now_ms);
        global.1 = global.1.saturating_add(1);
        Ok(())
    }

    /// Forgets an address's and an account's attempts after a successful
    /// login, and gives its attempt back to the global budget.
    pub fn succeeded(&self, address: IpAddr, account: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(&address);
        let key: String = account.chars().take(64).collect::<String>().to_lowercase();
        self.accounts
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(&key);
        let mut global = self
            .global
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        global.1 = global.1.saturating_sub(1);
    }

    /// Argon2 memory for one password check, or `None` when
    /// [`CONCURRENT_PASSWORD_CHECKS`] are running. The memory is allocated
    /// on first use and kept.
    pub fn lease_memory(&self) -> Option<HashMemory> {
        self.memory.lease()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_counts_attempts_before_checking_and_lends_two_memories() {
        let limiter = LoginLimiter::default();
        let address: IpAddr = "192.0.2.7".parse().unwrap();
        for attempt in 1..=MAX_FAILURES {
            assert_eq!(limiter.reserve(address, 1_000), Some(attempt));
        }
        assert_eq!(limiter.reserve(address, 1_000), None);
        assert_eq!(
            limiter.reserve("192.0.2.8".parse().unwrap(), 1_000),
            Some(1)
        );
        assert_eq!(
            limiter.reserve(address, 1_000 + FAILURE_WINDOW_MS + 1),
            Some(1)
        );
        // Per account: three free attempts, then 1 s, 2 s... between them.
        for _ in 0..FREE_ACCOUNT_ATTEMPTS {
            assert_eq!(limiter.reserve_account("Admin1", 1_000), Ok(()));
        }
        assert_eq!(
            limiter.reserve_account("admin1", 1_500),
            Err(AccountRefusal::Backoff)
        );
        assert_eq!(limiter.reserve_account("admin1", 2_000), Ok(()));
        assert_eq!(
            limiter.reserve_account("admin1", 3_000),
            Err(AccountRefusal::Backoff)
        );
        assert_eq!(limiter.reserve_account("admin1", 4_000), Ok(()));
        limiter.succeeded(address, "ADMIN1");
        assert_eq!(limiter.reserve_account("admin1", 4_001), Ok(()));
        assert_eq!(AccountRefusal::Backoff.to_string(), "account backoff");
        assert_eq!(account_delay_ms(100), MAX_ACCOUNT_DELAY_MS);
        let first = limiter.lease_memory().unwrap();
        let second = limiter.lease_memory().unwrap();
        assert!(limiter.lease_memory().is_none());
        drop(first);
        assert!(limiter.lease_memory().is_some());
        drop(second);
    }
}
