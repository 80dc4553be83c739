//! The enrolment endpoint, `POST /v1/enroll` on its own TLS listener.
//!
//! An agent presents a single-use token and a certificate signing request;
//! it gets back a client certificate bound to its name and the CA
//! certificate. Enrolment has its own listener (as Wazuh separates its
//! enrolment port from its event port) so that the ingest listener can
//! refuse every connection without a client certificate during the TLS
//! handshake, and so that enrolment can be firewalled when not in use.
//!
//! Failed attempts are rate-limited per source address and overall, so a
//! token cannot be guessed by brute force (it has 192 random bits anyway).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use countywatch_daemon::clock::now_ms;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::ca::CertificateAuthority;
use crate::registry::{Registry, TokenError};
use crate::response::json;
use crate::serve::Peer;
use crate::telemetry::Telemetry;

/// Where agents enrol.
pub const ENROLL_PATH: &str = "/v1/enroll";

/// Largest enrolment request body.
const MAX_BODY: usize = 64 * 1024;

/// Failed attempts allowed per source address per window.
const FAILURES_PER_ADDRESS: u32 = 10;
/// Failed attempts allowed from everyone together per window.
const FAILURES_OVERALL: u32 = 100;
/// The rate-limit window.
const WINDOW: Duration = Duration::from_secs(60);

/// What an agent sends to enrol.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The token from `countywatch-collector token create`.
    pub token: String,
    /// The name the agent asks for explicitly; a token bound to another
    /// name refuses it.
    pub name: Option<String>,
    /// The agent's host name, used when neither the token nor `name` gives one.
    #[serde(default)]
    pub host_name: Option<String>,
    /// PKCS#10 request in PEM, signed with the agent's new key.
    pub csr_pem: String,
}

/// What the collector answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollResponse {
    /// The name the certificate is bound to.
    pub agent: String,
    /// The agent's client certificate, PEM.
    pub certificate_pem: String,
    /// The CA certificate, PEM, which the agent trusts from now on.
    pub ca_pem: String,
    /// The port of the ingest listener, on the same host the agent enrolled with.
    pub ingest_port: u16,
    /// The first batch sequence number the agent must use: one above the
    /// last stored under this name, so a re-enrolled agent is not replayed.
    pub first_seq: u64,
}

/// What the enrolment handler needs.
pub struct EnrollState {
    /// Signs agent certificates.
    pub ca: Arc<CertificateAuthority>,
    /// Tokens and agents.
    pub registry: Arc<Registry>,
    /// Self-metrics.
    pub telemetry: Arc<Telemetry>,
    /// Told to agents so that they know where to send batches.
    pub ingest_port: u16,
    /// The data dir whose audit trail records enrolments; `None` in tests.
    pub audit_dir: Option<std::path::PathBuf>,
    /// Failed attempts per address and overall.
    limiter: Mutex<FailureLimiter>,
}

impl EnrollState {
    /// The state for a new listener.
    pub fn new(
        ca: Arc<CertificateAuthority>,
        registry: Arc<Registry>,
        telemetry: Arc<Telemetry>,
        ingest_port: u16,
    ) -> Self {
        EnrollState {
            ca,
            registry,
            telemetry,
            ingest_port,
            audit_dir: None,
            limiter: Mutex::new(FailureLimiter::default()),
        }
    }
}

/// Counts failures in fixed windows.
#[derive(Default)]
struct FailureLimiter {
    /// Start of the current window.
    window_start: Option<Instant>,
    /// Failures per address in the window.
    by_address: HashMap<IpAddr, u32>,
    /// Failures overall in the window.
    overall: u32,
}

impl FailureLimiter {
    fn roll(&mut self, now: Instant) {
        if self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= WINDOW)
        {
            self.window_start = Some(now);
            self.by_address.clear();
            self.overall = 0;
        }
    }

    fn is_limited(&mut self, address: IpAddr, now: Instant) -> bool {
        self.roll(now);
        self.overall >= FAILURES_OVERALL
            || self.by_address.get(&address).copied().unwrap_or(0) >= FAILURES_PER_ADDRESS
    }

    fn record_failure(&mut self, address: IpAddr, now: Instant) {
        self.roll(now);
        self.overall = self.overall.saturating_add(1);
        let count = self.by_address.entry(address).or_insert(0);
        *count = count.saturating_add(1);
    }
}

/// Handles one enrolment request.
pub async fn handle(
    state: Arc<EnrollState>,
    request: Request<Incoming>,
    peer: Peer,
) -> Response<Full<Bytes>> {
    let address = peer.addr.ip();
    let limited = state
        .limiter
        .lock()
        .map(|mut limiter| limiter.is_limited(address, Instant::now()))
        .unwrap_or(true);
    if limited {
        state.telemetry.enroll_result("rate_limited");
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed enrolment attempts; wait a minute",
        );
    }
    let outcome = enrol(&state, request).await;
    match outcome {
        Ok((response, replaced)) => {
            state.telemetry.enroll_result("enrolled");
            tracing::info!(agent = %response.agent, peer = %peer.addr, replaced, "agent enrolled");
            let action = match replaced {
                true => "agent.replaced",
                false => "agent.enrolled",
            };
            let agent = response.agent.clone();
            audit_enrolment(
                &state,
                format!("agent:{agent}"),
                action,
                format!("agent/{agent}"),
                crate::audit::Outcome::Success,
                format!("from {}", peer.addr),
            )
            .await;
            let body = serde_json::to_string(&response).unwrap_or_default();
            json(StatusCode::OK, &body)
        }
        Err(refusal) => {
            let (status, result, message) =
                (refusal.status(), refusal.result(), refusal.to_string());
            state.telemetry.enroll_result(result);
            if let Ok(mut limiter) = state.limiter.lock() {
                limiter.record_failure(address, Instant::now());
            }
            tracing::warn!(peer = %peer.addr, status = status.as_u16(), error = %message, "enrolment refused");
            // Refusals are audited too (a takeover attempt, token
            // guessing); the rate limit above bounds how many.
            audit_enrolment(
                &state,
                format!("anonymous@{}", peer.addr.ip()),
                "agent.enrolment_refused",
                "enroll".to_string(),
                crate::audit::Outcome::Failure,
                format!("{result}: {message}"),
            )
            .await;
            error(status, &message)
        }
    }
}

/// Why an enrolment or a certificate renewal was refused: its text is
/// the answer's `error`, the log line's and the audit entry's reason;
/// [`Refusal::status`] and [`Refusal::result`] (the bounded label of the
/// enrolment counter) follow from the variant.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// A path other than the enrolment path.
    #[error("agents enrol at {ENROLL_PATH}")]
    NotFound,
    /// A method other than POST.
    #[error("use POST")]
    NotPost,
    /// The body did not arrive within 30 s.
    #[error("request body not received in time")]
    BodyTimeout,
    /// The body could not be read (or was too large).
    #[error("cannot read the body: {0}")]
    ReadBody(Box<dyn std::error::Error + Send + Sync>),
    /// The body is not an enrolment request.
    #[error("invalid enrolment request: {0}")]
    InvalidEnrolment(serde_json::Error),
    /// A name that cannot be an agent's.
    #[error("invalid agent name {0:?}")]
    AgentName(String),
    /// The token was refused.
    #[error(transparent)]
    Token(TokenError),
    /// The registry failed while redeeming the token.
    #[error("storage error: {0}")]
    TokenStorage(rusqlite::Error),
    /// The CSR cannot be signed (not a CSR, a wrong key type).
    #[error("{0:#}")]
    Sign(anyhow::Error),
    /// The registry failed while recording the certificate.
    #[error("{0:#}")]
    Storage(anyhow::Error),
    /// The agent renewed within the last part of its validity already.
    #[error("agent {agent:?} renewed less than {interval:?} ago")]
    RenewedRecently {
        /// The agent.
        agent: String,
        /// How long it must wait between renewals.
        interval: Duration,
    },
    /// The body is not a renewal request.
    #[error("invalid renewal request: {0}")]
    InvalidRenewal(serde_json::Error),
    /// The certificate's agent is not enrolled, or is revoked.
    #[error("agent {agent:?} is not enrolled or is revoked")]
    NotEnrolled {
        /// The agent.
        agent: String,
    },
    /// The answer could not be encoded.
    #[error("{0}")]
    Encode(serde_json::Error),
    /// The task that signs panicked: our own failure.
    #[error("{0}")]
    Panicked(tokio::task::JoinError),
}

impl Refusal {
    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::NotFound => StatusCode::NOT_FOUND,
            Refusal::NotPost => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::BodyTimeout
            | Refusal::ReadBody(_)
            | Refusal::InvalidEnrolment(_)
            | Refusal::AgentName(_)
            | Refusal::Sign(_)
            | Refusal::InvalidRenewal(_) => StatusCode::BAD_REQUEST,
            Refusal::Token(TokenError::NameTaken(_)) => StatusCode::CONFLICT,
            Refusal::Token(_) | Refusal::NotEnrolled { .. } => StatusCode::FORBIDDEN,
            Refusal::TokenStorage(_) | Refusal::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::RenewedRecently { .. } => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Encode(_) | Refusal::Panicked(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `result` label of the enrolment counter and the ingest refusal.
    pub fn result(&self) -> &'static str {
        match self {
            Refusal::NotFound => "not_found",
            Refusal::NotPost
            | Refusal::BodyTimeout
            | Refusal::ReadBody(_)
            | Refusal::InvalidEnrolment(_)
            | Refusal::AgentName(_)
            | Refusal::Sign(_)
            | Refusal::InvalidRenewal(_) => "bad_request",
            Refusal::Token(TokenError::NameTaken(_)) => "name_taken",
            Refusal::Token(_) => "invalid_token",
            Refusal::NotEnrolled { .. } => "unauthorized",
            Refusal::RenewedRecently { .. } => "rate_limited",
            Refusal::TokenStorage(_)
            | Refusal::Storage(_)
            | Refusal::Encode(_)
            | Refusal::Panicked(_) => "error",
        }
    }
}

/// The outcome of a blocking task that signs: a task that panicked is our
/// own failure, 500.
pub(crate) fn joined<T>(
    outcome: Result<Result<T, Refusal>, tokio::task::JoinError>,
) -> Result<T, Refusal> {
    outcome.unwrap_or_else(|error| Err(Refusal::Panicked(error)))
}

/// Appends an enrolment's audit entry, when the collector keeps a trail.
async fn audit_enrolment(
    state: &Arc<EnrollState>,
    actor: String,
    action: &'static str,
    target: String,
    outcome: crate::audit::Outcome,
    details: String,
) {
    let Some(data_dir) = state.audit_dir.clone() else {
        return;
    };
    let _ = tokio::task::spawn_blocking(move || {
        crate::audit::record_outcome(&data_dir, &actor, action, &target, outcome, &details);
    })
    .await;
}

/// Enrols; returns the answer and whether it replaced an enrolled agent.
async fn enrol(
    state: &Arc<EnrollState>,
    request: Request<Incoming>,
) -> Result<(EnrollResponse, bool), Refusal> {
    if request.uri().path() != ENROLL_PATH {
        return Err(Refusal::NotFound);
    }
    if request.method() != Method::POST {
        return Err(Refusal::NotPost);
    }
    let body = tokio::time::timeout(
        Duration::from_secs(30),
        Limited::new(request.into_body(), MAX_BODY).collect(),
    )
    .await
    .map_err(|_| Refusal::BodyTimeout)?
    .map_err(Refusal::ReadBody)?
    .to_bytes();
    let enroll: EnrollRequest = serde_json::from_slice(&body).map_err(Refusal::InvalidEnrolment)?;
    for name in enroll.name.iter().chain(enroll.host_name.iter()) {
        if !countywatch_wire::is_valid_agent_name(name) {
            return Err(Refusal::AgentName(name.clone()));
        }
    }
    let state = Arc::clone(state);
    let outcome = tokio::task::spawn_blocking(move || {
        let now = now_ms();
        let redeemed = state
            .registry
            .redeem_token(
                &enroll.token,
                enroll.name.as_deref(),
                enroll.host_name.as_deref(),
                now,
            )
            .map_err(|error| match error {
                TokenError::Storage(error) => Refusal::TokenStorage(error),
                other => Refusal::Token(other),
            })?;
        let name = redeemed.name;
        let issued = state
            .ca
            .sign_agent(&enroll.csr_pem, &name)
            .map_err(Refusal::Sign)?;
        let first_seq = state
            .registry
            .enrol(&name, &issued.sha256, now)
            .and_then(|first_seq| {
                state
                    .registry
                    .record_cert_expiry(&name, issued.not_after_ms)
                    .map(|()| first_seq)
            })
            .map_err(Refusal::Storage)?;
        Ok((
            EnrollResponse {
                agent: name,
                certificate_pem: issued.pem,
                ca_pem: state.ca.certificate_pem().to_string(),
                ingest_port: state.ingest_port,
                first_seq,
            },
            redeemed.replaces,
        ))
    })
    .await;
    joined(outcome)
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_limited_per_address_and_overall() {
        let mut limiter = FailureLimiter::default();
        let now = Instant::now();
        let one: IpAddr = "127.0.0.1".parse().unwrap();
        let two: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..FAILURES_PER_ADDRESS {
            assert!(!limiter.is_limited(one, now));
            limiter.record_failure(one, now);
        }
        assert!(limiter.is_limited(one, now));
        assert!(!limiter.is_limited(two, now));
        assert!(
            !limiter.is_limited(one, now + WINDOW),
            "a new window forgives"
        );
    }
}
