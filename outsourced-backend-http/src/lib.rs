//! The HTTP backend of outsourced: the wire format of the `/v1` API, OAuth 1.0a signing and
//! verification, and [`HttpBackend`], which implements the core's `Backend` by signed remote
//! calls so that the same worker loop runs anywhere on the network.
//!
//! - [`oauth`]: RFC 5849, both sides (the server in `outsourced-server` uses it to verify);
//! - [`wire`]: the JSON of every request and response, and errors as status + code;
//! - `client`: [`HttpBackend`] and its [`HttpConfig`]; `backend`: its `Backend` impl.

mod attachments;
mod backend;
mod client;
pub mod oauth;
pub mod wire;

pub use attachments::{ATTACHMENT_HASH_PARAM, FILE_NAME_PARAM};
pub use client::{HttpBackend, HttpConfig};
