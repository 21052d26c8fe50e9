//! HMAC-SHA256 for reqwest-oauth1: a signature method plugged into its signer (which knows
//! only HMAC-SHA1), building the same base string and keying HMAC-SHA256 the same way.

use std::fmt::{self, Display, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use oauth1_request::signature_method::{Sign, SignatureMethod};
use sha2::Sha256;

use super::encode::encode;

/// The `HMAC-SHA256` signature method, for `OAuthParameters::signature_method`.
#[derive(Clone, Copy, Debug, Default)]
pub struct HmacSha256;

/// The signing state: the key and the base string as the signer feeds it.
#[derive(Clone, Debug)]
pub struct HmacSha256Sign {
    key: String,
    base: String,
}

/// The signature, percent-encoded for the `Authorization` header.
#[derive(Clone, Debug)]
pub struct HmacSha256Signature(String);

impl Display for HmacSha256Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl SignatureMethod for HmacSha256 {
    type Sign = HmacSha256Sign;

    fn sign_with(
        self,
        consumer_secret: impl Display,
        token_secret: Option<impl Display>,
    ) -> HmacSha256Sign {
        // The signer passes both secrets already percent-encoded.
        let mut key = format!("{consumer_secret}&");
        if let Some(token_secret) = token_secret {
            let _ = write!(key, "{token_secret}");
        }
        HmacSha256Sign {
            key,
            base: String::new(),
        }
    }
}

impl Sign for HmacSha256Sign {
    type Signature = HmacSha256Signature;

    fn get_signature_method_name(&self) -> &'static str {
        "HMAC-SHA256"
    }

    fn request_method(&mut self, method: &str) {
        self.base.push_str(method);
        self.base.push('&');
    }

    fn uri(&mut self, uri: impl Display) {
        let _ = write!(self.base, "{uri}&");
    }

    fn parameter(&mut self, key: &str, value: impl Display) {
        let _ = write!(self.base, "{key}%3D{value}");
    }

    fn delimiter(&mut self) {
        self.base.push_str("%26");
    }

    fn finish(self) -> HmacSha256Signature {
        let signature = match Hmac::<Sha256>::new_from_slice(self.key.as_bytes()) {
            Ok(mut mac) => {
                mac.update(self.base.as_bytes());
                STANDARD.encode(mac.finalize().into_bytes())
            }
            Err(_) => String::new(),
        };
        HmacSha256Signature(encode(&signature))
    }
}
