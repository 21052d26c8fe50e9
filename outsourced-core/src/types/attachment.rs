//! Attachments (F9): one file per job, moved as raw bytes in streams, so that memory stays flat
//! whatever the size.

use std::fmt;
use std::pin::Pin;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, TryStreamExt};

use crate::error::{Error, Result};

/// Bytes as they come, chunk by chunk.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// The longest file name kept.
pub const MAX_FILE_NAME: usize = 255;

/// What is known of a stored attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachmentInfo {
    /// The file name the producer gave, as metadata only: never a storage path.
    pub file_name: Option<String>,
    /// Its media type (`application/octet-stream` unless the producer said otherwise).
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its bytes, as lowercase hex, computed as it was stored.
    pub sha256: String,
    /// When it was stored, by the backend's clock.
    pub created_at: DateTime<Utc>,
}

/// A file on its way in: its bytes and what the producer says about them.
pub struct Upload {
    /// The file name, kept as metadata.
    pub file_name: Option<String>,
    /// Its media type.
    pub content_type: Option<String>,
    /// The SHA-256 the bytes must have (lowercase hex); a mismatch refuses the upload and
    /// keeps nothing. Over HTTP it is signed with the request.
    pub sha256: Option<String>,
    /// The bytes.
    pub body: ByteStream,
}

impl Upload {
    /// An upload of `body`, with nothing said about it.
    pub fn new(body: ByteStream) -> Self {
        Upload {
            file_name: None,
            content_type: None,
            sha256: None,
            body,
        }
    }

    /// An upload of bytes held in memory (small files, tests).
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Upload::new(futures::stream::once(async move { Ok(bytes) }).boxed())
    }

    /// Names the file.
    pub fn file_name(mut self, name: impl Into<String>) -> Self {
        self.file_name = Some(name.into());
        self
    }

    /// Sets its media type.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Sets the SHA-256 (lowercase hex) the bytes must have.
    pub fn sha256(mut self, hex: impl Into<String>) -> Self {
        self.sha256 = Some(hex.into());
        self
    }

    /// Checks what the producer says: a file name of at most [`MAX_FILE_NAME`] bytes without
    /// control characters or path separators, and not `.` or `..` (a name is only ever a
    /// name, never a path anyone could be tricked into writing to), a media type of the form
    /// `type/subtype`, and a SHA-256 of 64 hex digits.
    pub fn check(&self) -> Result<()> {
        if let Some(name) = &self.file_name {
            let bad = name.is_empty()
                || name == "."
                || name == ".."
                || name.len() > MAX_FILE_NAME
                || name
                    .chars()
                    .any(|c| c.is_control() || c == '/' || c == '\\');
            if bad {
                return Err(Error::invalid(format!(
                    "file name {name:?}: 1 to {MAX_FILE_NAME} bytes, not . or .., no control characters or slashes"
                )));
            }
        }
        if let Some(media) = &self.content_type {
            let valid = media.len() <= 255
                && media
                    .split_once('/')
                    .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
                && media.chars().all(|c| c.is_ascii_graphic() || c == ' ');
            if !valid {
                return Err(Error::invalid(format!("{media:?} is not a media type")));
            }
        }
        if let Some(hex) = &self.sha256 {
            let valid = hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit());
            if !valid {
                return Err(Error::invalid(format!("{hex:?} is not a SHA-256 in hex")));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upload")
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

/// A stored attachment on its way out.
pub struct Download {
    /// What is known of it.
    pub info: AttachmentInfo,
    /// Its bytes.
    pub body: ByteStream,
}

impl Download {
    /// Collects the bytes in memory (small files, tests; stream large ones instead).
    pub async fn bytes(self) -> Result<Vec<u8>> {
        self.body
            .try_fold(Vec::new(), |mut all, chunk| async move {
                all.extend_from_slice(&chunk);
                Ok(all)
            })
            .await
    }
}

impl fmt::Debug for Download {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Download")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}
