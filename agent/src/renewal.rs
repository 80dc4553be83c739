//! Renewing the agent's client certificate before it expires, over the
//! mutual TLS the agent already has (`POST /v1/renew`): no token, no
//! re-enrolment, no restart.
//!
//! At two thirds of the certificate's validity the agent makes a new key
//! and certificate signing request, and the collector signs the new key for
//! the name of the certificate the request came with. The new pair is
//! written atomically (`IdentityFiles::write_renewed`) and every transport
//! switches to it before its next request; the collector retires the old
//! certificate when the new one is first presented. A failed renewal
//! leaves the old certificate in use and is retried with backoff, counted
//! in `countywatch_agent_cert_renewal_failures_total`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use countywatch_wire::{RENEW_PATH, RenewRequest, RenewResponse};

use crate::collection::TransportStats;
use crate::enroll::signing_request;
use crate::identity::IdentityFiles;
use crate::transport::{Transport, mutual_tls};

/// The first wait after a failed renewal; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(5);
/// The longest wait between failed renewals.
const RETRY_MAX: Duration = Duration::from_secs(600);
/// The longest sleep before looking at the certificate again, so that a
/// clock that jumps (or a certificate replaced by a re-enrolment) is noticed.
const LOOK_AGAIN: Duration = Duration::from_secs(3600);

/// Renews the certificate in `identity` whenever it is due, through
/// `transport` (a sibling of the batches' one: replacing its TLS settings
/// replaces theirs). Runs until aborted.
pub async fn renewal_loop(
    mut transport: Transport,
    identity: IdentityFiles,
    agent: String,
    stats: Arc<TransportStats>,
) {
    let mut retry = RETRY_FIRST;
    loop {
        let wait = match renewal_due_in(&identity, SystemTime::now()) {
            Ok(wait) => wait,
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "cannot read the client certificate's validity; renewal waits");
                LOOK_AGAIN
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait.min(LOOK_AGAIN)).await;
            continue;
        }
        match renew(&mut transport, &identity, &agent).await {
            Ok(()) => {
                stats.cert_renewals.fetch_add(1, Ordering::Relaxed);
                retry = RETRY_FIRST;
                tracing::info!(agent, "client certificate renewed");
            }
            Err(error) => {
                stats.cert_renewal_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(agent, error = %format!("{error:#}"), retry_in = ?retry, "certificate renewal failed; the current certificate stays in use");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

/// How long until the certificate in `identity` is due for renewal (zero
/// when it is due): at two thirds of its validity.
fn renewal_due_in(identity: &IdentityFiles, now: SystemTime) -> anyhow::Result<Duration> {
    let pem = std::fs::read_to_string(identity.certificate())
        .with_context(|| format!("cannot read {}", identity.certificate().display()))?;
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|error| anyhow::anyhow!("{error}"))
        .with_context(|| format!("no certificate in {}", identity.certificate().display()))?;
    let certificate = block
        .parse_x509()
        .map_err(|error| anyhow::anyhow!("{error}"))
        .with_context(|| format!("cannot parse {}", identity.certificate().display()))?;
    let not_before = certificate.validity().not_before.timestamp();
    let not_after = certificate.validity().not_after.timestamp();
    let renew_at = not_before.saturating_add(not_after.saturating_sub(not_before) / 3 * 2);
    let now = i64::try_from(now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs())
        .unwrap_or(i64::MAX);
    Ok(Duration::from_secs(
        u64::try_from(renew_at.saturating_sub(now)).unwrap_or(0),
    ))
}

/// One renewal: a new key, the collector's signature, the files, the switch.
async fn renew(
    transport: &mut Transport,
    identity: &IdentityFiles,
    agent: &str,
) -> anyhow::Result<()> {
    let (key, csr_pem) = signing_request(agent)?;
    let body =
        serde_json::to_vec(&RenewRequest { csr_pem }).context("cannot encode the request")?;
    let answer = transport
        .post(RENEW_PATH, None, Bytes::from(body))
        .await
        .context("the collector did not renew the certificate")?;
    let answer: RenewResponse =
        serde_json::from_slice(&answer).context("the collector's answer is not a renewal")?;
    if answer.agent != agent {
        anyhow::bail!(
            "the collector renewed the certificate for {:?}, not {agent:?}",
            answer.agent
        );
    }
    identity.write_renewed(&key.serialize_pem(), &answer.certificate_pem)?;
    transport.replace_tls(mutual_tls(identity)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_at_two_thirds_of_the_validity() {
        let dir = tempfile::tempdir().unwrap();
        let identity = IdentityFiles::new(dir.path());
        std::fs::create_dir_all(&identity.directory).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["web-01".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2030, 1, 1);
        params.not_after = params.not_before + Duration::from_secs(300);
        let start = UNIX_EPOCH + Duration::from_secs(params.not_before.unix_timestamp() as u64);
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        std::fs::write(identity.certificate(), certificate.pem()).unwrap();
        let due = renewal_due_in(&identity, start).unwrap();
        assert_eq!(due, Duration::from_secs(200));
        let later = start + Duration::from_secs(250);
        assert_eq!(renewal_due_in(&identity, later).unwrap(), Duration::ZERO);
    }
}
