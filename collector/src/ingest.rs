//! The ingest endpoint: `POST /v1/batches` from enrolled agents.
//!
//! The TLS handshake has already required a client certificate signed by our
//! CA; here the certificate is looked up on every request (so a revocation
//! takes effect at once, even on an open connection) and the agent's name
//! comes from it, never from the payload: a batch claiming another host is
//! refused, and events and samples are held to the hosts the agent may
//! speak for (`host_binding.rs`). A body is read under a size cap and a deadline, decoded under a
//! decompression cap, validated, and stored exactly once: its sequence
//! number must be above the agent's last, else it is acknowledged as a
//! duplicate and nothing is written. Every refusal gets a status that says
//! why (400 malformed or carrying the collector's own metric families or
//! event kinds, 403 unknown/revoked/forged, 413 too large, 408 too
//! slow, 404, 405, 503 with `Retry-After` when the decompressed bytes in
//! flight would pass `ingest_budget.rs`'s budget) and a one-line JSON error, is counted in
//! `countywatch_ingest_requests_total{result}`, and leaves the collector
//! serving everyone else.
//!
//! Agents renew their certificates here too (`POST /v1/renew`,
//! `renewal.rs`), identified the same way.
//!
//! The same listener serves the active-response endpoints
//! (`/v1/decisions`, `/v1/decisions/ack`, `/v1/decisions/local`): the
//! agent is identified and the body read here, under the same caps, and
//! `active_response::feed` answers (counted as `result="decisions"`). A
//! batch request carrying the decisions cursor header gets the agent's
//! decision feed in its answer beside `accepted_seq`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use countywatch_wire::{Batch, DecodeError, INGEST_PATH};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::active_response::feed::{self, Endpoint, FeedState};
use crate::metric_store::MetricStore;
use crate::registry::{BatchOutcome, Registry, SamplesForOutputs};
use crate::response::json;
use crate::serve::Peer;
use crate::telemetry::Telemetry;
use countywatch_daemon::clock::now_ms;

/// What the ingest handler needs.
pub struct IngestState {
    /// Where accepted metrics go.
    pub store: Arc<MetricStore>,
    /// Enrolled agents, sequence numbers and events.
    pub registry: Arc<Registry>,
    /// Self-metrics.
    pub telemetry: Arc<Telemetry>,
    /// Scale-out outputs that get every stored batch's samples.
    pub outputs: Arc<crate::output::Outputs>,
    /// Which hosts each agent may speak for.
    pub hosts: Arc<crate::host_binding::HostBinding>,
    /// The decision endpoints and the feed batch answers carry.
    pub decisions: Arc<FeedState>,
    /// The county report's history, which follows every stored batch.
    pub history: Arc<crate::history::History>,
    /// Largest compressed body.
    pub max_body_bytes: usize,
    /// Largest decompressed body.
    pub max_decompressed_bytes: usize,
    /// Decompressed bytes all requests in flight may hold together.
    pub budget: Arc<crate::ingest_budget::InflightBudget>,
    /// Deadline for reading a whole body.
    pub request_timeout: Duration,
    /// Signs agents' renewed certificates (`POST /v1/renew`).
    pub renewal: crate::renewal::Renewal,
}

/// Handles one ingest request.
pub async fn handle(
    state: Arc<IngestState>,
    request: Request<Incoming>,
    peer: Peer,
) -> Response<Full<Bytes>> {
    if let Some(endpoint) = Endpoint::at(request.uri().path()) {
        return decisions(&state, endpoint, request, &peer).await;
    }
    if request.uri().path() == countywatch_wire::RENEW_PATH {
        return renew(&state, request, &peer).await;
    }
    let decisions_after = feed::after_header(request.headers());
    let outcome = match accept(&state, request, &peer).await {
        // The room the batch holds is given back once it is stored.
        Ok((batch, _room)) => {
            let agent = batch.agent.clone();
            store(&state, batch, peer.addr.ip())
                .await
                .map(|(seq, outcome)| (agent, seq, outcome))
        }
        Err(refusal) => Err(refusal),
    };
    match outcome {
        Ok((agent, seq, outcome)) => {
            let mut answer = serde_json::Map::new();
            answer.insert("accepted_seq".to_string(), seq.into());
            if outcome == BatchOutcome::Duplicate {
                answer.insert("duplicate".to_string(), true.into());
            }
            // The decisions ride on the answer only when the agent asks
            // with its cursor; older agents get the answer they know.
            if let Some(after) = decisions_after
                && let Some(feed) = feed::batch_feed(&state.decisions, &agent, after).await
                && let Ok(feed) = serde_json::to_value(feed)
            {
                answer.insert("decisions".to_string(), feed);
            }
            state.telemetry.ingest_result(match outcome {
                BatchOutcome::Stored => "accepted",
                BatchOutcome::Duplicate => "duplicate",
            });
            json(
                StatusCode::OK,
                &serde_json::Value::Object(answer).to_string(),
            )
        }
        Err(refusal) => refused(&state, refusal, &peer),
    }
}

/// The answer to a refused request: counted, logged (but 404s) and said.
fn refused(state: &IngestState, refusal: Refusal, peer: &Peer) -> Response<Full<Bytes>> {
    state.telemetry.ingest_result(refusal.result);
    if refusal.status != StatusCode::NOT_FOUND {
        tracing::warn!(peer = %peer.addr, status = refusal.status.as_u16(), error = %refusal.message, "ingest request refused");
    }
    let body = serde_json::json!({ "error": refusal.message }).to_string();
    let mut response = json(refusal.status, &body);
    if refusal.result == BUSY {
        response.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from(crate::ingest_budget::RETRY_AFTER_SECONDS),
        );
    }
    response
}

/// A request to one of the decision endpoints (`active_response::feed`):
/// the same identification and body caps as a batch.
async fn decisions(
    state: &IngestState,
    endpoint: Endpoint,
    request: Request<Incoming>,
    peer: &Peer,
) -> Response<Full<Bytes>> {
    let answered = async {
        let agent = identify(state, peer).await?;
        if request.method() != endpoint.method() {
            return Err(Refusal::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("use {}", endpoint.method()),
            ));
        }
        let query = request.uri().query().map(str::to_string);
        let (body, encoding) = read_body(state, request).await?;
        if encoding.is_some() {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "decision requests are plain JSON, not encoded",
            ));
        }
        feed::answer(&state.decisions, &agent, endpoint, query.as_deref(), &body)
            .await
            .map_err(|error| Refusal::new(error.status, error.result, error.message))
    }
    .await;
    match answered {
        Ok(body) => {
            state.telemetry.ingest_result("decisions");
            json(StatusCode::OK, &body)
        }
        Err(refusal) => refused(state, refusal, peer),
    }
}

/// A certificate renewal (`renewal.rs`): the agent is the one the
/// presenting certificate names, identified and read like a batch.
async fn renew(
    state: &IngestState,
    request: Request<Incoming>,
    peer: &Peer,
) -> Response<Full<Bytes>> {
    let answered = async {
        let agent = identify(state, peer).await?;
        if request.method() != Method::POST {
            return Err(Refusal::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "use POST",
            ));
        }
        let (body, _) = read_body(state, request).await?;
        crate::renewal::renew(&state.renewal, &agent, &body, peer.addr)
            .await
            .map_err(|refusal| {
                Refusal::new(refusal.status(), refusal.result(), refusal.to_string())
            })
    }
    .await;
    match answered {
        Ok(body) => json(StatusCode::OK, &body),
        Err(refusal) => refused(state, refusal, peer),
    }
}

/// Why a request was refused.
struct Refusal {
    /// The HTTP status.
    status: StatusCode,
    /// The `result` label value.
    result: &'static str,
    /// One line for the log and the response body.
    message: String,
}

impl Refusal {
    /// A failure of our own (a blocking task that panicked): 500.
    fn internal(error: impl std::fmt::Display) -> Self {
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "error",
            error.to_string(),
        )
    }

    fn new(status: StatusCode, result: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            result,
            message: message.into(),
        }
    }
}

/// The `result` label of a request refused for want of room in the budget.
const BUSY: &str = "busy";

async fn accept(
    state: &IngestState,
    request: Request<Incoming>,
    peer: &Peer,
) -> Result<(Batch, crate::ingest_budget::InflightPermit), Refusal> {
    let agent = identify(state, peer).await?;
    if request.uri().path() != INGEST_PATH {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such endpoint; agents POST to {INGEST_PATH}"),
        ));
    }
    if request.method() != Method::POST {
        return Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use POST",
        ));
    }
    let (bytes, encoding) = read_body(state, request).await?;
    let body_bytes = bytes.len();
    let (batch, room) = decode(state, bytes, encoding).await?;
    // The collector's own series share the namespace; an agent must not
    // shadow them (agents report countywatch_agent_* and countywatch_snmp_*).
    if let Some(family) = batch
        .metrics
        .iter()
        .find(|family| !countywatch_wire::is_agent_metric_name(&family.name))
    {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!(
                "metric {} is in the collector's reserved namespace",
                family.name
            ),
        ));
    }
    if let Some(reserved) = crate::host_binding::reserved_content(&batch) {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "reserved", reserved));
    }
    if batch.agent != agent {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "forged_identity",
            format!(
                "batch claims to come from {:?} but the certificate is {agent:?}'s",
                batch.agent
            ),
        ));
    }
    state.telemetry.ingest_bytes.inc_by(body_bytes as u64);
    Ok((batch, room))
}

/// Inflates and decodes the body within the budget, off the runtime: a
/// large body takes a while to inflate and parse.
async fn decode(
    state: &IngestState,
    bytes: Bytes,
    encoding: Option<String>,
) -> Result<(Batch, crate::ingest_budget::InflightPermit), Refusal> {
    let max = state.max_decompressed_bytes;
    let budget = Arc::clone(&state.budget);
    let decoded =
        tokio::task::spawn_blocking(move || budget.decode(&bytes, encoding.as_deref(), max))
            .await
            .map_err(Refusal::internal)?;
    decoded.map_err(|error| match error {
        DecodeError::NoRoom(_) => Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            BUSY,
            format!(
                "the collector holds {} decompressed bytes of other requests; retry later",
                state.budget.in_use_bytes()
            ),
        ),
        error if error.is_too_large() => Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            error.to_string(),
        ),
        error => Refusal::new(StatusCode::BAD_REQUEST, "bad_request", error.to_string()),
    })
}

/// Reads a request's body under the size cap and the deadline; returns it
/// with its `Content-Encoding`, if any.
async fn read_body(
    state: &IngestState,
    request: Request<Incoming>,
) -> Result<(Bytes, Option<String>), Refusal> {
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("request body exceeds {} bytes", state.max_body_bytes),
        )
    };
    let declared = request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > state.max_body_bytes as u64) {
        return Err(too_large());
    }
    let encoding = match request.headers().get(hyper::header::CONTENT_ENCODING) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| {
                    Refusal::new(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "Content-Encoding is not ASCII",
                    )
                })?
                .to_string(),
        ),
    };
    let body = Limited::new(request.into_body(), state.max_body_bytes);
    let collected = tokio::time::timeout(state.request_timeout, body.collect())
        .await
        .map_err(|_| {
            Refusal::new(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                "request body not received in time",
            )
        })?;
    let bytes = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(error) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("cannot read the body: {error}"),
            ));
        }
    };
    Ok((bytes, encoding))
}

/// The agent name the peer's certificate belongs to, if it is enrolled and
/// not revoked.
async fn identify(state: &IngestState, peer: &Peer) -> Result<String, Refusal> {
    let unauthorized = |message: &str| Refusal::new(StatusCode::FORBIDDEN, "unauthorized", message);
    let Some(fingerprint) = peer.certificate_sha256.clone() else {
        return Err(unauthorized("a client certificate is required"));
    };
    let registry = Arc::clone(&state.registry);
    let found = tokio::task::spawn_blocking(move || registry.identify(&fingerprint)).await;
    match found {
        Ok(Ok(Some(name))) => Ok(name),
        Ok(Ok(None)) => Err(unauthorized("certificate revoked or not enrolled")),
        Ok(Err(error)) => Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "error",
            format!("{error:#}"),
        )),
        Err(error) => Err(Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "error",
            error.to_string(),
        )),
    }
}

/// Longest version string kept for `agents list`; an agent's build info is
/// authenticated but still not trusted to be short.
const MAX_VERSION_CHARS: usize = 64;

/// The `version` label of the batch's `countywatch_agent_build_info`.
fn reported_version(metrics: &[countywatch_wire::MetricFamily]) -> Option<String> {
    metrics
        .iter()
        .filter(|family| family.name == "countywatch_agent_build_info")
        .flat_map(|family| family.samples.first())
        .find_map(|sample| {
            sample
                .labels
                .iter()
                .find(|(name, _)| name == "version")
                .map(|(_, version)| version.chars().take(MAX_VERSION_CHARS).collect())
        })
}

/// Stores a batch exactly once and returns its sequence number and whether
/// it was new. Metrics of a duplicate are older than what is stored and are
/// not applied.
async fn store(
    state: &IngestState,
    batch: Batch,
    address: std::net::IpAddr,
) -> Result<(u64, BatchOutcome), Refusal> {
    let registry = Arc::clone(&state.registry);
    let Batch {
        agent,
        seq,
        mut metrics,
        mut events,
        collected_at_ms,
        ..
    } = batch;
    let event_count = events.len();
    let mut kinds: std::collections::BTreeMap<&'static str, u64> = Default::default();
    for event in &events {
        *kinds.entry(event.kind.as_str()).or_default() += 1;
    }
    let agent_for_store = agent.clone();
    let hosts = Arc::clone(&state.hosts);
    let version = reported_version(&metrics);
    let outputs = Arc::clone(&state.outputs);
    let (outcome, metrics) = tokio::task::spawn_blocking(move || {
        // Events and samples speak only for the agent and its devices.
        if let Err(error) = hosts.apply(&agent_for_store, &mut events, &mut metrics, now_ms()) {
            return (Err(error), metrics);
        }
        // The outputs' share goes into the outbox in the batch's own
        // transaction, then is relayed to their queues.
        let for_outputs = outputs.wants_agent_samples().then_some(SamplesForOutputs {
            job: crate::metric_store::JOB,
            collected_at_ms,
            families: &metrics,
        });
        let outcome = registry.accept_batch_for_outputs(
            &agent_for_store,
            seq,
            &events,
            for_outputs.as_ref(),
            now_ms(),
        );
        if for_outputs.is_some() && matches!(outcome, Ok(BatchOutcome::Stored)) {
            countywatch_daemon::failpoint::hit("ingest.batch_stored");
            outputs.relay_agent_samples(&registry);
        }
        // The address and version are for people (the agents page and
        // `agents list`); failing to note them must not refuse a batch
        // that was stored, and a batch that was not stored (the database
        // is locked) does not wait for the lock a second time to note them.
        if outcome.is_ok()
            && let Err(error) =
                registry.note_sender(&agent_for_store, &address.to_string(), version.as_deref())
        {
            tracing::warn!(agent = %agent_for_store, "cannot note the agent's address: {error:#}");
        }
        (outcome, metrics)
    })
    .await
    .map_err(Refusal::internal)?;
    let outcome = outcome.map_err(|error| {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "error",
            format!("{error:#}"),
        )
    })?;
    if outcome == BatchOutcome::Stored {
        let samples: usize = metrics.iter().map(|family| family.samples.len()).sum();
        state.telemetry.ingest_samples.inc_by(samples as u64);
        state.telemetry.ingest_events.inc_by(event_count as u64);
        for (kind, count) in kinds {
            state.telemetry.security_events(&agent, kind, count);
        }
        state
            .history
            .observe_batch(&agent, now_ms(), collected_at_ms, &metrics);
        if !metrics.is_empty() {
            state.store.update(&agent, metrics, collected_at_ms);
        } else {
            state.store.touch(&agent);
        }
    }
    Ok((seq, outcome))
}
