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
//! (`renewed`, `renewal_refused`).

use std::path::PathBuf;
use std::sync::Arc;

use hyper::StatusCode;

use crate::ca::CertificateAuthority;
use crate::enroll::Refusal;
use crate::incident::audit::Outcome;
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
    let outcome = issue(renewal, agent, body).await;
    let (result, action, audit_outcome, details) = match &outcome {
        Ok((sha256, _)) => (
            "renewed",
            "agent.certificate_renewed",
            Outcome::Success,
            format!("from {peer}, new certificate SHA-256 {sha256}"),
        ),
        Err((_, _, message)) => (
            "renewal_refused",
            "agent.certificate_renewal_refused",
            Outcome::Failure,
            format!("from {peer}: {message}"),
        ),
    };
    renewal.telemetry.enroll_result(result);
    match &outcome {
        Ok(_) => tracing::info!(agent, peer = %peer, "agent certificate renewed"),
        Err((_, _, message)) => {
            tracing::warn!(agent, peer = %peer, error = %message, "agent certificate renewal refused")
        }
    }
    if let Some(data_dir) = renewal.audit_dir.clone() {
        let actor = format!("agent:{agent}");
        let target = format!("agent/{agent}");
        let _ = tokio::task::spawn_blocking(move || {
            crate::incident::audit::record_outcome(
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
        serde_json::from_slice(body).map_err(|error| {
            (
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("invalid renewal request: {error}"),
            )
        })?;
    let ca = Arc::clone(&renewal.ca);
    let registry = Arc::clone(&renewal.registry);
    let agent = agent.to_string();
    let outcome = tokio::task::spawn_blocking(move || {
        let issued = ca
            .sign_agent(&request.csr_pem, &agent)
            .map_err(|error| (StatusCode::BAD_REQUEST, "bad_request", format!("{error:#}")))?;
        let recorded = registry
            .offer_renewal(&agent, &issued.sha256, issued.not_after_ms)
            .map_err(|error| {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "error",
                    format!("{error:#}"),
                )
            })?;
        if !recorded {
            return Err((
                StatusCode::FORBIDDEN,
                "unauthorized",
                format!("agent {agent:?} is not enrolled or is revoked"),
            ));
        }
        let answer = countywatch_wire::RenewResponse {
            agent,
            certificate_pem: issued.pem,
        };
        let answer = serde_json::to_string(&answer).map_err(|error| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "error",
                error.to_string(),
            )
        })?;
        Ok((issued.sha256, answer))
    })
    .await;
    crate::enroll::joined(outcome)
}
