//! Agent certificate renewal, `POST /v1/renew` on the ingest listener.
//!
//! An enrolled agent renews its client certificate over the mutual TLS it
//! already has: no token, no re-enrolment. The new certificate is bound to
//! the name of the certificate the request arrived with (looked up by
//! `ingest.rs` like every ingest request), never to a name in the request:
//! the body carries only a certificate signing request, whose subject is
//! ignored. The new certificate is recorded as the agent's pending one and
//! accepted beside the old until the agent first presents it, which
//! retires the old one (`Registry::identify`). Every renewal and every
//! refusal is audited and counted in `countywatch_enroll_requests_total`
//! (`renewed`, `renewal_refused`), except one: an agent renews at most once
//! a tenth of the lifetime (at most a minute), and a request sooner gets
//! 429, counted as `rate_limited` but not audited, so that an agent asking
//! in a loop cannot flood the trail with certificates.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::audit::Outcome;
use crate::ca::CertificateAuthority;
use crate::enroll::Refusal;
use crate::registry::Registry;
use crate::telemetry::Telemetry;

/// What a renewal needs.
pub struct Renewal {
    /// Signs the new certificate.
    pub ca: Arc<CertificateAuthority>,
    /// Records the new certificate's fingerprint.
    pub registry: Arc<Registry>,
    /// Counts renewals and refusals.
    pub telemetry: Arc<Telemetry>,
    /// The data dir whose audit trail records renewals; `None` in tests.
    pub audit_dir: Option<PathBuf>,
    /// When each agent last renewed, so that an agent asking in a loop
    /// cannot flood the audit trail or keep the CA busy.
    pub last_renewed: Mutex<HashMap<String, Instant>>,
}

/// The shortest time between two renewals of one agent: a tenth of the
/// certificate lifetime, at most a minute. An agent whose answer was lost
/// retries after 5 s, then 10 s, ..., so it still renews well before its
/// old certificate expires.
fn renewal_interval(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(60))
}

/// Whether `agent` renewed less than `interval` before `now`.
fn renewed_recently(
    last_renewed: &Mutex<HashMap<String, Instant>>,
    agent: &str,
    interval: Duration,
    now: Instant,
) -> bool {
    last_renewed
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .get(agent)
        .is_some_and(|at| now.duration_since(*at) < interval)
}

/// Notes that `agent` renewed at `now`.
fn note_renewal(last_renewed: &Mutex<HashMap<String, Instant>>, agent: &str, now: Instant) {
    last_renewed
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .insert(agent.to_string(), now);
}

/// Renews `agent`'s certificate (the name of the certificate the request
/// came with) from `body`, a [`countywatch_wire::RenewRequest`], and
/// returns the answer's JSON. `peer` is for the audit trail.
pub async fn renew(
    renewal: &Renewal,
    agent: &str,
    body: &[u8],
    peer: std::net::SocketAddr,
) -> Result<String, Refusal> {
    let interval = renewal_interval(renewal.ca.agent_validity());
    if renewed_recently(&renewal.last_renewed, agent, interval, Instant::now()) {
        // Counted, not audited: the limit exists to keep the trail small.
        renewal.telemetry.enroll_result("rate_limited");
        return Err(Refusal::RenewedRecently {
            agent: agent.to_string(),
            interval,
        });
    }
    let outcome = issue(renewal, agent, body).await;
    if outcome.is_ok() {
        note_renewal(&renewal.last_renewed, agent, Instant::now());
    }
    let (result, action, audit_outcome, details) = match &outcome {
        Ok((sha256, _)) => (
            "renewed",
            "agent.certificate_renewed",
            Outcome::Success,
            format!("from {peer}, new certificate SHA-256 {sha256}"),
        ),
        Err(refusal) => (
            "renewal_refused",
            "agent.certificate_renewal_refused",
            Outcome::Failure,
            format!("from {peer}: {refusal}"),
        ),
    };
    renewal.telemetry.enroll_result(result);
    match &outcome {
        Ok(_) => tracing::info!(agent, peer = %peer, "agent certificate renewed"),
        Err(refusal) => {
            tracing::warn!(agent, peer = %peer, error = %refusal, "agent certificate renewal refused")
        }
    }
    if let Some(data_dir) = renewal.audit_dir.clone() {
        let actor = format!("agent:{agent}");
        let target = format!("agent/{agent}");
        let _ = tokio::task::spawn_blocking(move || {
            crate::audit::record_outcome(
                &data_dir,
                &actor,
                action,
                &target,
                audit_outcome,
                &details,
            );
        })
        .await;
    }
    outcome.map(|(_, answer)| answer)
}

/// Signs and records the new certificate; returns its SHA-256 and the answer.
async fn issue(renewal: &Renewal, agent: &str, body: &[u8]) -> Result<(String, String), Refusal> {
    let request: countywatch_wire::RenewRequest =
        serde_json::from_slice(body).map_err(Refusal::InvalidRenewal)?;
    let ca = Arc::clone(&renewal.ca);
    let registry = Arc::clone(&renewal.registry);
    let agent = agent.to_string();
    let outcome = tokio::task::spawn_blocking(move || {
        let issued = ca
            .sign_agent(&request.csr_pem, &agent)
            .map_err(Refusal::Sign)?;
        let recorded = registry
            .offer_renewal(&agent, &issued.sha256, issued.not_after_ms)
            .map_err(Refusal::Storage)?;
        if !recorded {
            return Err(Refusal::NotEnrolled { agent });
        }
        let answer = countywatch_wire::RenewResponse {
            agent,
            certificate_pem: issued.pem,
        };
        let answer = serde_json::to_string(&answer).map_err(Refusal::Encode)?;
        Ok((issued.sha256, answer))
    })
    .await;
    crate::enroll::joined(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_renews_at_most_once_an_interval_and_others_are_not_held_up() {
        let last = Mutex::new(HashMap::new());
        let interval = renewal_interval(Duration::from_secs(365 * 24 * 3600));
        assert_eq!(interval, Duration::from_secs(60));
        assert_eq!(
            renewal_interval(Duration::from_secs(60)),
            Duration::from_secs(6)
        );
        let now = Instant::now();
        assert!(!renewed_recently(&last, "web-01", interval, now));
        note_renewal(&last, "web-01", now);
        let soon = now + Duration::from_secs(59);
        assert!(renewed_recently(&last, "web-01", interval, soon));
        assert!(!renewed_recently(&last, "web-02", interval, soon));
        assert!(!renewed_recently(&last, "web-01", interval, now + interval));
    }
}
