//! The server's reading of a signed request: the `Authorization` header, the query and a form
//! body, into protocol parameters and a base string. Nothing may panic; what it accepts
//! signs and verifies; percent-decoding undoes percent-encoding.

#![no_main]

use libfuzzer_sys::fuzz_target;
use outsourced_backend_http::oauth::{self, SignatureMethod};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let method = parts.next().unwrap_or("POST");
    let authorization = parts.next();
    let query = parts.next();
    let form = parts.next();
    let _ = oauth::parse_authorization(authorization.unwrap_or(""));
    let base = "http://example.com/outsourced/v1/jobs";
    if let Ok(signed) = oauth::signed_request(method, base, authorization, query, form) {
        for method in [SignatureMethod::HmacSha1, SignatureMethod::HmacSha256] {
            let signature = oauth::sign(method, &signed.base_string, "secret", "");
            assert!(oauth::verify(method, &signed.base_string, "secret", "", &signature));
            assert!(!oauth::verify(method, &signed.base_string, "other", "", &signature));
        }
    }
    for piece in [method, authorization.unwrap_or(""), query.unwrap_or("")] {
        assert_eq!(oauth::decode(&oauth::encode(piece)).as_deref(), Ok(piece));
    }
});
