//! RFC 5849 §3.6 percent-encoding, and the decodings of the places parameters come from.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Everything but the unreserved characters `A-Z a-z 0-9 - . _ ~` is encoded.
const RESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes UTF-8 text as RFC 5849 §3.6 says: uppercase hex, space as `%20`.
pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, RESERVED).to_string()
}

/// A value that is not valid percent-encoded UTF-8.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad percent-encoding in {0:?}")]
pub struct BadEncoding(pub String);

/// Decodes percent-encoding (as in the `Authorization` header): `+` stays a plus sign.
pub fn decode(text: &str) -> Result<String, BadEncoding> {
    check_escapes(text)?;
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| BadEncoding(text.to_owned()))
}

/// Decodes `application/x-www-form-urlencoded` (a query string or a form body): `+` is a
/// space, then percent-decoding.
pub fn decode_form_value(text: &str) -> Result<String, BadEncoding> {
    decode(&text.replace('+', " "))
}

/// Splits a query string or form body into decoded name-value pairs, in order; a name without
/// `=` has an empty value.
pub fn parse_form(text: &str) -> Result<Vec<(String, String)>, BadEncoding> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode_form_value(name)?, decode_form_value(value)?))
        })
        .collect()
}

/// Refuses a `%` not followed by two hex digits (which lenient decoders pass through).
fn check_escapes(text: &str) -> Result<(), BadEncoding> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
            if hex.is_none() {
                return Err(BadEncoding(text.to_owned()));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_follows_rfc_5849() {
        assert_eq!(encode("abc-._~XYZ019"), "abc-._~XYZ019");
        assert_eq!(encode("a b"), "a%20b");
        assert_eq!(encode("*!'()"), "%2A%21%27%28%29");
        assert_eq!(encode("é"), "%C3%A9");
        assert_eq!(encode("%"), "%25");
    }

    #[test]
    fn decoding_accepts_lowercase_hex_and_refuses_broken_escapes() {
        assert_eq!(decode("%2a%2A").ok().as_deref(), Some("**"));
        assert_eq!(decode("a+b").ok().as_deref(), Some("a+b"));
        assert_eq!(decode_form_value("a+b").ok().as_deref(), Some("a b"));
        for bad in ["%", "%4", "%zz", "%C3"] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forms_split_into_pairs() {
        let pairs = parse_form("c2&a3=2+q&b5=%3D%253D").expect("a valid form");
        let expected = [("c2", ""), ("a3", "2 q"), ("b5", "=%3D")];
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(pairs, expected);
    }
}
