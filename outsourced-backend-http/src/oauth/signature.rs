//! HMAC-SHA1 (RFC 5849 §3.4.2) and HMAC-SHA256 signatures over a base string, and their
//! constant-time verification.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};

use super::encode::encode;

/// The signature methods the server accepts. PLAINTEXT (and RSA-SHA1) are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureMethod {
    /// RFC 5849's HMAC-SHA1, what reqwest-oauth1 and most OAuth libraries sign with.
    HmacSha1,
    /// The same construction over SHA-256.
    HmacSha256,
}

impl SignatureMethod {
    /// The name in `oauth_signature_method`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureMethod::HmacSha1 => "HMAC-SHA1",
            SignatureMethod::HmacSha256 => "HMAC-SHA256",
        }
    }
}

impl fmt::Display for SignatureMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signature method the server does not accept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported signature method {0:?} (use HMAC-SHA1 or HMAC-SHA256)")]
pub struct UnsupportedMethod(pub String);

impl FromStr for SignatureMethod {
    type Err = UnsupportedMethod;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "HMAC-SHA1" => Ok(SignatureMethod::HmacSha1),
            "HMAC-SHA256" => Ok(SignatureMethod::HmacSha256),
            other => Err(UnsupportedMethod(other.to_owned())),
        }
    }
}

/// §3.4.2: the key is the encoded consumer secret, `&`, the encoded token secret (empty for
/// two-legged requests, but the `&` stays).
fn key(consumer_secret: &str, token_secret: &str) -> Vec<u8> {
    format!("{}&{}", encode(consumer_secret), encode(token_secret)).into_bytes()
}

fn mac_bytes(method: SignatureMethod, key: &[u8], base: &str) -> Vec<u8> {
    match method {
        SignatureMethod::HmacSha1 => run::<Hmac<sha1::Sha1>>(key, base),
        SignatureMethod::HmacSha256 => run::<Hmac<sha2::Sha256>>(key, base),
    }
}

fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], base: &str) -> Vec<u8> {
    match <M as hmac::digest::KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(base.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length; this cannot happen.
        Err(_) => Vec::new(),
    }
}

/// The base64 signature of `base` with the given secrets.
pub fn sign(
    method: SignatureMethod,
    base: &str,
    consumer_secret: &str,
    token_secret: &str,
) -> String {
    STANDARD.encode(mac_bytes(method, &key(consumer_secret, token_secret), base))
}

/// Whether `presented` (base64) is the signature of `base`, compared in constant time.
pub fn verify(
    method: SignatureMethod,
    base: &str,
    consumer_secret: &str,
    token_secret: &str,
    presented: &str,
) -> bool {
    let Ok(presented) = STANDARD.decode(presented) else {
        return false;
    };
    let key = key(consumer_secret, token_secret);
    match method {
        SignatureMethod::HmacSha1 => check::<Hmac<sha1::Sha1>>(&key, base, &presented),
        SignatureMethod::HmacSha256 => check::<Hmac<sha2::Sha256>>(&key, base, &presented),
    }
}

fn check<M: Mac + hmac::digest::KeyInit>(key: &[u8], base: &str, presented: &[u8]) -> bool {
    match <M as hmac::digest::KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(base.as_bytes());
            // `verify_slice` compares in constant time (and refuses a wrong length).
            mac.verify_slice(presented).is_ok()
        }
        Err(_) => false,
    }
}
