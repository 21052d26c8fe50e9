//! RFC 5849 §3.4.1: the signature base string of a request.

use super::encode::encode;

/// Why a base URI cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot build the request's URI: {0}")]
pub struct BadUri(pub String);

/// §3.4.1.2: scheme and host in lowercase, the port only when it is not the scheme's default,
/// then the path (as sent, percent-encoding kept). The host must be printable ASCII without
/// URI delimiters and the path an absolute path without query or fragment: anything else
/// would sign a different URI than the one the request names.
pub fn base_uri(scheme: &str, host: &str, path: &str) -> Result<String, BadUri> {
    let scheme = scheme.to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    if host.is_empty() || !printable(&host) || host.contains(['/', '?', '#', '@', '\\']) {
        return Err(BadUri(format!("bad host {host:?}")));
    }
    if !(path.is_empty() || path.starts_with('/')) || !printable(path) || path.contains(['?', '#'])
    {
        return Err(BadUri(format!("bad path {path:?}")));
    }
    let (name, port) = match host.rsplit_once(':') {
        // An IPv6 literal has colons of its own inside brackets.
        Some((name, port)) if !port.contains(']') => (name, Some(port)),
        _ => (host.as_str(), None),
    };
    let default = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        other => return Err(BadUri(format!("unsupported scheme {other:?}"))),
    };
    if let Some(port) = port
        && !port.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(BadUri(format!("bad port {port:?}")));
    }
    let authority = match port {
        Some(port) if port != default => format!("{name}:{port}"),
        _ => name.to_owned(),
    };
    let path = if path.is_empty() { "/" } else { path };
    Ok(format!("{scheme}://{authority}{path}"))
}

/// Visible ASCII only: a request line or `Host` header carries nothing else unencoded.
fn printable(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_graphic())
}

/// §3.4.1.3.2: every name and value percent-encoded, sorted by name then value (as bytes),
/// joined as `name=value` with `&`.
pub fn normalize(params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .map(|(name, value)| (encode(name), encode(value)))
        .collect();
    encoded.sort();
    let pairs: Vec<String> = encoded
        .into_iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    pairs.join("&")
}

/// §3.4.1.1: the method in uppercase, the base URI and the normalized parameters, each
/// percent-encoded, joined with `&`.
pub fn base_string(method: &str, base_uri: &str, params: &[(String, String)]) -> String {
    format!(
        "{}&{}&{}",
        encode(&method.to_ascii_uppercase()),
        encode(base_uri),
        encode(&normalize(params))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_uris_drop_default_ports_and_keep_others() {
        let uri = |scheme, host, path| base_uri(scheme, host, path).ok();
        assert_eq!(
            uri("HTTP", "EXAMPLE.COM:80", "/r%20v/X").as_deref(),
            Some("http://example.com/r%20v/X")
        );
        assert_eq!(
            uri("https", "example.com:443", "/a").as_deref(),
            Some("https://example.com/a")
        );
        assert_eq!(
            uri("https", "example.com:8443", "/a").as_deref(),
            Some("https://example.com:8443/a")
        );
        assert_eq!(
            uri("http", "[::1]:8080", "/").as_deref(),
            Some("http://[::1]:8080/")
        );
        assert_eq!(uri("http", "[::1]", "/").as_deref(), Some("http://[::1]/"));
        assert_eq!(uri("ftp", "example.com", "/"), None);
        assert_eq!(uri("http", "a b", "/"), None);
        // Found by the base_string fuzz target: a path that is not one, a host with a
        // character no Host header carries.
        assert_eq!(uri("https", "[::1]:8443", "=?"), None);
        assert_eq!(uri("http", "example.com", "/a?b=c"), None);
        assert_eq!(uri("http", "[:\u{fffd}:1]", "/"), None);
        assert_eq!(uri("http", "example.com", "/a\nb"), None);
    }

    #[test]
    fn parameters_sort_by_encoded_name_then_value() {
        let params: Vec<(String, String)> =
            [("a", "1"), ("A", "2"), ("a%", "3"), ("ä", "4"), ("a", "0")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        // Bytes: `%` (0x25) < `A` (0x41) < `a` (0x61).
        assert_eq!(normalize(&params), "%C3%A4=4&A=2&a=0&a=1&a%25=3");
    }
}
