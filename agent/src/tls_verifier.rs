//! Custom server-certificate verification for the agent's TLS clients
//! (enrolment's pinned CA, the service probe's accept-any-chain): a
//! [`ChainCheck`] decides on the presented chain only, and [`client_config`]
//! wraps it in a rustls verifier that checks the handshake signatures with
//! the crypto provider's algorithms, which every custom verifier must do,
//! and the same way.
//!
//! **Invariant:** no check here can skip the signature checks, so a server
//! always proves it holds the key of the certificate it presents.

use std::fmt::Debug;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct};

/// What a custom verifier decides: whether the presented chain is trusted.
pub trait ChainCheck: Debug + Send + Sync + 'static {
    /// Accepts or refuses `chain`.
    fn check_chain(&self, chain: &PresentedChain<'_>) -> Result<ServerCertVerified, rustls::Error>;
}

/// What the server presented, and for which name: rustls's arguments to
/// [`ServerCertVerifier::verify_server_cert`].
pub struct PresentedChain<'a> {
    /// The server's own certificate.
    pub end_entity: &'a CertificateDer<'a>,
    /// The rest of the chain, as sent.
    pub intermediates: &'a [CertificateDer<'a>],
    /// The name the certificate must carry.
    pub server_name: &'a ServerName<'a>,
    /// A stapled OCSP response, possibly empty.
    pub ocsp_response: &'a [u8],
    /// The time to check validity at.
    pub now: UnixTime,
}

impl PresentedChain<'_> {
    /// Verifies the chain with `verifier` (a standard one, for a check
    /// that delegates once it has chosen the roots).
    pub fn verify_with(
        &self,
        verifier: &dyn ServerCertVerifier,
    ) -> Result<ServerCertVerified, rustls::Error> {
        verifier.verify_server_cert(
            self.end_entity,
            self.intermediates,
            self.server_name,
            self.ocsp_response,
            self.now,
        )
    }
}

/// A TLS client configuration (safe default versions, no client
/// certificate) that trusts what `check` accepts.
pub fn client_config(
    provider: Arc<CryptoProvider>,
    check: impl ChainCheck,
) -> Result<ClientConfig, rustls::Error> {
    let verifier = Arc::new(SignaturesChecked {
        check,
        algorithms: provider.signature_verification_algorithms,
    });
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// A [`ChainCheck`] with the handshake signatures checked.
#[derive(Debug)]
struct SignaturesChecked<C> {
    /// Decides on the chain.
    check: C,
    /// The signature algorithms of the crypto provider.
    algorithms: WebPkiSupportedAlgorithms,
}

impl<C: ChainCheck> ServerCertVerifier for SignaturesChecked<C> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check.check_chain(&PresentedChain {
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
