//! Certificate renewal over mutual TLS: `POST /v1/renew` on the ingest
//! listener. The agent sends only a new public key (in a certificate
//! signing request); the name the new certificate carries is the one of the
//! certificate the request arrived with, never anything in the body.

use serde::{Deserialize, Serialize};

/// Where an enrolled agent renews its client certificate.
pub const RENEW_PATH: &str = "/v1/renew";

/// What the agent sends.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// PKCS#10 request in PEM, signed with the agent's new key. Only its
    /// public key is used.
    pub csr_pem: String,
}

/// What the collector answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewResponse {
    /// The name the new certificate is bound to: the presenting
    /// certificate's.
    pub agent: String,
    /// The new client certificate, PEM. It replaces the old one once the
    /// agent connects with it.
    pub certificate_pem: String,
}
