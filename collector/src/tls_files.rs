//! The certificate-and-key file pair the config names for a TLS listener
//! or the CA: a leaf module, so that `ca` and `tls` need not import the
//! whole config for it.

use std::path::PathBuf;

use serde::Deserialize;

/// Certificate and key files in PEM.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}
