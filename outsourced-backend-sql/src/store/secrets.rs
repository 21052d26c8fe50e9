//! Secrets at rest: consumer secrets are stored encrypted (XChaCha20-Poly1305) under a server
//! key kept outside the database, because OAuth 1.0a's HMAC needs the server to read them back.
//!
//! The key is 32 random bytes, written base64-encoded to a file only its owner may read, or
//! given in the `OUTSOURCED_SERVER_KEY` environment variable.

use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::Aead;
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::error::backend_error;
use outsourced_core::Error;

/// The environment variable that may hold the server key (base64).
pub const SERVER_KEY_ENV: &str = "OUTSOURCED_SERVER_KEY";

/// The version tag of stored ciphertexts.
const TAG: &str = "v1:";

/// The key that encrypts consumer secrets in the database.
#[derive(Clone)]
pub struct ServerKey([u8; 32]);

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKey(***)")
    }
}

impl ServerKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        ServerKey(bytes)
    }

    /// A key from its base64 text.
    pub fn from_base64(text: &str) -> Result<Self, Error> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| Error::invalid("the server key is not valid base64"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::invalid("the server key must be 32 bytes"))?;
        Ok(ServerKey(bytes))
    }

    /// The key as base64 text.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The key from `OUTSOURCED_SERVER_KEY` if set, else from `path`, created there (with
    /// owner-only permissions) when missing. Says whether it created one.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), Error> {
        if let Ok(text) = std::env::var(SERVER_KEY_ENV) {
            return Ok((Self::from_base64(&text)?, false));
        }
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((Self::from_base64(&text)?, false)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                write_private(path, &key.to_base64())?;
                Ok((key, true))
            }
            Err(error) => Err(io_error(path, error)),
        }
    }

    /// The key from `OUTSOURCED_SERVER_KEY` if set, else from `path`, which must exist.
    pub fn load(path: &Path) -> Result<Self, Error> {
        if let Ok(text) = std::env::var(SERVER_KEY_ENV) {
            return Self::from_base64(&text);
        }
        let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
        Self::from_base64(&text)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&Key::from(self.0))
    }

    /// Encrypts a secret for storage: `v1:` and the base64 of a random nonce and the ciphertext.
    pub fn encrypt(&self, secret: &str) -> String {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(&XNonce::from(nonce), secret.as_bytes())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend(sealed);
        format!("{TAG}{}", STANDARD.encode(out))
    }

    /// Decrypts a stored secret; fails when it was encrypted under another key.
    pub fn decrypt(&self, stored: &str) -> Result<String, Error> {
        let wrong_key = || {
            backend_error(
                "cannot decrypt a stored secret: the server key is not the one it was \
                      encrypted with (see docs/decisions.md, \"The server key\")",
                false,
            )
        };
        let body = stored.strip_prefix(TAG).ok_or_else(wrong_key)?;
        let bytes = STANDARD.decode(body).map_err(|_| wrong_key())?;
        if bytes.len() < 24 {
            return Err(wrong_key());
        }
        let (nonce, sealed) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| wrong_key())?;
        let plain = self
            .cipher()
            .decrypt(&XNonce::from(nonce), sealed)
            .map_err(|_| wrong_key())?;
        String::from_utf8(plain).map_err(|_| wrong_key())
    }
}

fn io_error(path: &Path, error: std::io::Error) -> Error {
    Error::Backend {
        backend: "sql",
        message: format!("cannot read the server key {}: {error}", path.display()),
        retryable: false,
        source: Some(std::sync::Arc::new(error)),
    }
}

/// Writes `text` to `path` as a file only its owner may read or write: a new file (mode 0600
/// from its creation) in the same directory, synced, then renamed over `path`. An existing
/// file is replaced, never reused with its permissions, and a symbolic link at `path` is
/// replaced itself, never followed. Anything else at `path` (a device such as `/dev/null`, a
/// pipe, a directory) is refused: renaming over it would replace it, which as root destroys
/// the device.
pub fn write_private(path: &Path, text: &str) -> Result<(), Error> {
    use std::io::Write;
    if let Ok(there) = std::fs::symlink_metadata(path) {
        let kind = there.file_type();
        if !kind.is_file() && !kind.is_symlink() {
            return Err(Error::invalid(format!(
                "{} is not a regular file: give the path of a file to write",
                path.display()
            )));
        }
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    // tempfile creates with O_EXCL and mode 0600.
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| io_error(dir, e))?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.as_file().sync_all());
    written.map_err(|e| io_error(path, e))?;
    file.persist(path).map_err(|e| io_error(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_are_written_over() {
        let dir = tempfile::tempdir().expect("a directory");
        let pipe = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&pipe).status();
        assert!(made.expect("mkfifo runs").success());
        let refused = write_private(&pipe, "secret").expect_err("a pipe is no file");
        assert!(
            refused.to_string().contains("is not a regular file"),
            "{refused}"
        );
        let kind = std::fs::symlink_metadata(&pipe)
            .expect("still there")
            .file_type();
        assert!(!kind.is_file(), "the pipe is left as it was");
        let file = dir.path().join("config.yaml");
        write_private(&file, "one").expect("a new file");
        write_private(&file, "two").expect("over a file");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "two\n");
    }

    #[test]
    fn secrets_round_trip_and_ciphertexts_differ() {
        let key = ServerKey::generate();
        let first = key.encrypt("s3cret");
        let second = key.encrypt("s3cret");
        assert_ne!(first, second, "a fresh nonce each time");
        assert!(!first.contains("s3cret"));
        assert_eq!(key.decrypt(&first).ok().as_deref(), Some("s3cret"));
    }

    #[test]
    fn another_key_cannot_decrypt() {
        let stored = ServerKey::generate().encrypt("s3cret");
        let error = ServerKey::generate()
            .decrypt(&stored)
            .err()
            .map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("not the one it was encrypted with")));
    }

    #[test]
    fn keys_round_trip_through_base64_and_files() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("conf/server.key");
        let (created, new) = ServerKey::load_or_create(&path).expect("create");
        assert!(new);
        let (loaded, new) = ServerKey::load_or_create(&path).expect("load");
        assert!(!new);
        assert_eq!(created.to_base64(), loaded.to_base64());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
            assert_eq!(mode.ok(), Some(0o600));
        }
        assert!(ServerKey::from_base64("short").is_err());
        assert_eq!(format!("{created:?}"), "ServerKey(***)");
    }
}
