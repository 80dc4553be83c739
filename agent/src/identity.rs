//! The agent's identity, obtained by enrolling: its private key, its client
//! certificate, the collector's CA, and where to send batches. Kept in
//! `<state_dir>/identity/`, the key with mode 0600.

use std::path::{Path, PathBuf};

use anyhow::Context;
use countywatch_daemon::durable_file;
use serde::{Deserialize, Serialize};

/// What enrolment recorded besides the key and certificates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    /// The name the certificate is bound to.
    pub agent: String,
    /// The ingest URL derived from the enrolment URL and the collector's answer.
    pub ingest_url: String,
    /// The first batch sequence number the collector expects from this name.
    pub first_seq: u64,
}

/// Paths of the identity files.
pub struct IdentityFiles {
    /// The directory holding them.
    pub directory: PathBuf,
}

impl IdentityFiles {
    /// The identity files under `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        IdentityFiles {
            directory: state_dir.join("identity"),
        }
    }

    /// The private key, PEM, mode 0600.
    pub fn key(&self) -> PathBuf {
        self.directory.join("agent.key")
    }

    /// The client certificate, PEM.
    pub fn certificate(&self) -> PathBuf {
        self.directory.join("agent.crt")
    }

    /// The collector's CA certificate, PEM.
    pub fn ca(&self) -> PathBuf {
        self.directory.join("ca.crt")
    }

    /// The enrolment record, JSON.
    pub fn enrollment(&self) -> PathBuf {
        self.directory.join("enrollment.json")
    }

    /// Reads the enrolment record, with a message that says what to do when
    /// the agent has not enrolled.
    pub fn read_enrollment(&self) -> anyhow::Result<Enrollment> {
        let path = self.enrollment();
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "this agent has not enrolled ({} is missing): run `countywatch-agent enroll` with a token from \
                 `countywatch-collector token create`",
                path.display()
            )
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("corrupt enrolment record {}", path.display()))
    }

    /// Writes every file of a new identity, replacing an old one. Each file
    /// is written to a temporary name and renamed, so a crash leaves either
    /// the old identity or the new one.
    pub fn write(
        &self,
        key_pem: &str,
        certificate_pem: &str,
        ca_pem: &str,
        enrollment: &Enrollment,
    ) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.directory)
            .with_context(|| format!("cannot create {}", self.directory.display()))?;
        let record = serde_json::to_string_pretty(enrollment)
            .context("cannot encode the enrolment record")?;
        durable_file::replace(&self.key(), key_pem.as_bytes(), 0o600)?;
        durable_file::replace(&self.certificate(), certificate_pem.as_bytes(), 0o644)?;
        durable_file::replace(&self.ca(), ca_pem.as_bytes(), 0o644)?;
        durable_file::replace(&self.enrollment(), record.as_bytes(), 0o644)?;
        Ok(())
    }

    /// Where a renewed key waits until it is moved into place.
    fn next_key(&self) -> PathBuf {
        self.directory.join("agent.key.next")
    }

    /// Where a renewed certificate waits until it is moved into place.
    fn next_certificate(&self) -> PathBuf {
        self.directory.join("agent.crt.next")
    }

    /// Replaces the key and certificate with renewed ones. Both are
    /// written and synced beside the old ones before either is renamed
    /// into place, so that a crash at any point leaves a pair that belongs
    /// together once [`IdentityFiles::finish_renewal`] has run.
    pub fn write_renewed(&self, key_pem: &str, certificate_pem: &str) -> anyhow::Result<()> {
        durable_file::replace(&self.next_key(), key_pem.as_bytes(), 0o600)?;
        durable_file::replace(&self.next_certificate(), certificate_pem.as_bytes(), 0o644)?;
        self.finish_renewal()
    }

    /// Completes a renewal that a crash interrupted (called at start): a
    /// new key without its certificate is dropped (the old pair stands),
    /// otherwise whatever is still waiting is moved into place.
    pub fn finish_renewal(&self) -> anyhow::Result<()> {
        let (next_key, next_certificate) = (self.next_key(), self.next_certificate());
        if !next_certificate.exists() {
            if next_key.exists() {
                std::fs::remove_file(&next_key)
                    .with_context(|| format!("cannot remove {}", next_key.display()))?;
            }
            return Ok(());
        }
        if next_key.exists() {
            std::fs::rename(&next_key, self.key())
                .with_context(|| format!("cannot move {} into place", next_key.display()))?;
        }
        std::fs::rename(&next_certificate, self.certificate())
            .with_context(|| format!("cannot move {} into place", next_certificate.display()))?;
        std::fs::File::open(&self.directory)
            .and_then(|directory| directory.sync_all())
            .with_context(|| format!("cannot sync {}", self.directory.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn web_01() -> Enrollment {
        Enrollment {
            agent: "web-01".to_string(),
            ingest_url: "https://c:9781".to_string(),
            first_seq: 1,
        }
    }

    #[test]
    fn written_identity_reads_back_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let files = IdentityFiles::new(dir.path());
        let record = web_01();
        files.write("KEY", "CERT", "CA", &record).unwrap();
        files.write("KEY2", "CERT2", "CA", &record).unwrap();
        assert_eq!(files.read_enrollment().unwrap(), record);
        assert_eq!(std::fs::read_to_string(files.key()).unwrap(), "KEY2");
        let mode = std::fs::metadata(files.key()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_renewal_cut_short_by_a_crash_leaves_a_matching_pair() {
        let dir = tempfile::tempdir().unwrap();
        let files = IdentityFiles::new(dir.path());
        let record = web_01();
        files.write("KEY1", "CERT1", "CA", &record).unwrap();
        // Crash after the new key only: the old pair stands.
        std::fs::write(files.next_key(), "KEY2").unwrap();
        files.finish_renewal().unwrap();
        assert_eq!(std::fs::read_to_string(files.key()).unwrap(), "KEY1");
        assert!(!files.next_key().exists());
        // Crash after the key was moved but before the certificate was.
        std::fs::write(files.key(), "KEY3").unwrap();
        std::fs::write(files.next_certificate(), "CERT3").unwrap();
        files.finish_renewal().unwrap();
        assert_eq!(
            std::fs::read_to_string(files.certificate()).unwrap(),
            "CERT3"
        );
        files.write_renewed("KEY4", "CERT4").unwrap();
        assert_eq!(std::fs::read_to_string(files.key()).unwrap(), "KEY4");
        assert_eq!(
            std::fs::read_to_string(files.certificate()).unwrap(),
            "CERT4"
        );
        let mode = std::fs::metadata(files.key()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!files.next_key().exists() && !files.next_certificate().exists());
    }

    #[test]
    fn a_missing_enrolment_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let error = format!(
            "{:#}",
            IdentityFiles::new(dir.path())
                .read_enrollment()
                .unwrap_err()
        );
        assert!(error.contains("has not enrolled"), "{error}");
        assert!(error.contains("countywatch-agent enroll"), "{error}");
    }
}
