//! Base URIs and base strings (RFC 5849 §3.4.1): nothing may panic, the base URI is lower-case
//! in its scheme and host, and the normalized parameters do not depend on their order.

#![no_main]

use libfuzzer_sys::fuzz_target;
use outsourced_backend_http::oauth;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let scheme = lines.next().unwrap_or("http");
    let host = lines.next().unwrap_or("example.com");
    let path = lines.next().unwrap_or("/");
    if let Ok(uri) = oauth::base_uri(scheme, host, path) {
        assert!(uri.starts_with(&scheme.to_ascii_lowercase()), "{uri}");
        assert!(!uri.contains('?') && !uri.contains('#'), "{uri}");
    }
    let params: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once('=').unwrap_or((line, ""));
            (name.to_owned(), value.to_owned())
        })
        .collect();
    let mut reversed = params.clone();
    reversed.reverse();
    assert_eq!(oauth::normalize(&params), oauth::normalize(&reversed));
    let base = oauth::base_string("post", "http://example.com/", &params);
    assert_eq!(base.matches('&').count(), 2, "three parts: {base}");
    let _ = oauth::parse_form(&text);
});
