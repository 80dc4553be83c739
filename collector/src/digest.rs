//! Digests the collector prints and compares: SHA-256 in lower-case hex
//! (certificate fingerprints, token and session hashes, the audit chain).
//! A leaf module, so that the registry, the accept loop and the audit trail
//! need not import the certificate authority for it.

use sha2::{Digest, Sha256};

/// SHA-256 of bytes, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_of_abc_is_the_fips_180_vector() {
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
