//! OAuth 1.0a, two-legged (RFC 5849): percent-encoding, the signature base string, HMAC-SHA1
//! and HMAC-SHA256 signatures and their constant-time verification, reading a request's
//! protocol parameters, and the HMAC-SHA256 method for reqwest-oauth1's signer.
//!
//! No crate verifies OAuth 1.0a on a server; this is ours, tested on RFC 5849's own examples
//! (with erratum 2550 on §3.4.1's printed signature).

mod base_string;
mod client;
mod encode;
mod request;
mod signature;

pub use base_string::{BadUri, base_string, base_uri, normalize};
pub use client::HmacSha256;
pub use encode::{BadEncoding, decode, decode_form_value, encode, parse_form};
pub use request::{BadRequest, SignedRequest, parse_authorization, signed_request};
pub use signature::{SignatureMethod, UnsupportedMethod, sign, verify};

/// The query parameter that carries the SHA-256 of a JSON body (base64url, no padding). It
/// does not start with `oauth_` (reqwest-oauth1 refuses those), so the signature covers it.
pub const BODY_HASH_PARAM: &str = "body_sha256";

#[cfg(test)]
mod tests;
