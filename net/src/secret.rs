//! Secret files (passwords, bearer tokens) named in the config: read once
//! where they are used, without the trailing newline editors add. The one
//! reader the outputs, the receivers and `/metrics` authentication share.

use std::path::{Path, PathBuf};

/// A secret file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read secret file {}: {source}", path.display())]
pub struct SecretError {
    /// The file named in the config.
    path: PathBuf,
    /// Why it could not be read.
    source: std::io::Error,
}

/// Reads the secret in `path`, without its trailing newline.
pub fn read_secret(path: &Path) -> Result<String, SecretError> {
    std::fs::read_to_string(path)
        .map(|text| text.trim_end_matches(['\r', '\n']).to_string())
        .map_err(|source| SecretError {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_lose_only_their_trailing_line_ending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        std::fs::write(&path, " county secret \r\n").unwrap();
        assert_eq!(read_secret(&path).unwrap(), " county secret ");
        let missing = read_secret(&dir.path().join("absent")).unwrap_err();
        assert!(missing.to_string().contains("absent"), "{missing}");
    }
}
