//! RFC 5849's worked examples, the erratum on §3.4.1, and our client's signatures checked by
//! our server side.

use super::*;

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn rfc_5849_section_3_4_1_example_with_erratum_2550() {
    let authorization = r#"OAuth realm="Example", oauth_consumer_key="9djdj82h48djs9d2", oauth_token="kkk9d7dh3k39sjv7", oauth_signature_method="HMAC-SHA1", oauth_timestamp="137131201", oauth_nonce="7d8f3e4a", oauth_signature="bYT5CMsGcbgUdFHObYMEfcx6bsw%3D""#;
    let uri = base_uri("http", "example.com", "/request").expect("a base URI");
    let request = signed_request(
        "POST",
        &uri,
        Some(authorization),
        Some("b5=%3D%253D&a3=a&c%40=&a2=r%20b"),
        Some("c2&a3=2+q"),
    )
    .expect("well-formed");
    let expected = "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7";
    assert_eq!(request.base_string, expected);
    let signature = sign(
        SignatureMethod::HmacSha1,
        expected,
        "j49sk3j29djd",
        "dh893hdasih9",
    );
    // The RFC prints bYT5CMsGcbgUdFHObYMEfcx6bsw=; erratum 2550 corrects it.
    assert_eq!(signature, "r6/TJjbCOr97/+UU0NsvSne7s5g=");
    assert!(!verify(
        SignatureMethod::HmacSha1,
        expected,
        "j49sk3j29djd",
        "dh893hdasih9",
        &request.signature
    ));
    assert!(verify(
        SignatureMethod::HmacSha1,
        expected,
        "j49sk3j29djd",
        "dh893hdasih9",
        &signature
    ));
}

#[test]
fn rfc_5849_section_1_2_resource_request() {
    let authorization = r#"OAuth realm="Photos", oauth_consumer_key="dpf43f3p2l4k3l03", oauth_token="nnch734d00sl2jdk", oauth_signature_method="HMAC-SHA1", oauth_timestamp="137131202", oauth_nonce="chapoH", oauth_signature="MdpQcU8iPSUjWoN%2FUDMsK2sui9I%3D""#;
    let query = Some("file=vacation.jpg&size=original");
    let http = base_uri("http", "photos.example.net", "/photos").expect("a base URI");
    let request =
        signed_request("GET", &http, Some(authorization), query, None).expect("well-formed");
    assert_eq!(request.signature, "MdpQcU8iPSUjWoN/UDMsK2sui9I=");
    assert_eq!(request.token.as_deref(), Some("nnch734d00sl2jdk"));
    let (cs, ts) = ("kd94hf93k423kf44", "pfkkdhi9sl3r4s00");
    assert!(verify(
        SignatureMethod::HmacSha1,
        &request.base_string,
        cs,
        ts,
        &request.signature
    ));
    // A server that wrongly thinks the scheme is https (behind a TLS proxy) gets another value.
    let https = base_uri("https", "photos.example.net", "/photos").expect("a base URI");
    let wrong =
        signed_request("GET", &https, Some(authorization), query, None).expect("well-formed");
    assert_eq!(
        sign(SignatureMethod::HmacSha1, &wrong.base_string, cs, ts),
        "91yh92rtXzicpezVYjTDNzieVps="
    );
    assert!(!verify(
        SignatureMethod::HmacSha1,
        &wrong.base_string,
        cs,
        ts,
        &request.signature
    ));
}

#[test]
fn rfc_5849_section_1_2_two_legged_key_keeps_its_ampersand() {
    let params = pairs(&[
        ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", "137131200"),
        ("oauth_nonce", "wIjqoS"),
        ("oauth_callback", "http://printer.example.com/ready"),
    ]);
    let uri = base_uri("https", "photos.example.net", "/initiate").expect("a base URI");
    let base = base_string("POST", &uri, &params);
    let signature = sign(SignatureMethod::HmacSha1, &base, "kd94hf93k423kf44", "");
    assert_eq!(signature, "74KNZJeDHnMBp0EMJ9ZHt/XKycU=");
}

#[test]
fn protocol_parameters_are_checked() {
    let uri = "http://example.com/v1/jobs";
    let header = |extra: &str| {
        format!(
            r#"OAuth oauth_consumer_key="k", oauth_signature_method="HMAC-SHA1", oauth_timestamp="100", oauth_nonce="n", oauth_signature="c2ln"{extra}"#
        )
    };
    let check =
        |auth: &str, query: Option<&str>| signed_request("GET", uri, Some(auth), query, None);
    assert!(check(&header(""), None).is_ok());
    assert!(check(&header(r#", oauth_version="1.0""#), None).is_ok());
    assert_eq!(
        check(&header(r#", oauth_version="2.0""#), None),
        Err(BadRequest::Version)
    );
    assert!(matches!(
        check(&header(r#", oauth_nonce="again""#), None),
        Err(BadRequest::Duplicate(_))
    ));
    assert!(matches!(
        check(&header(""), Some("oauth_nonce=x")),
        Err(BadRequest::Duplicate(_))
    ));
    let plaintext = header("").replace("HMAC-SHA1", "PLAINTEXT");
    assert!(matches!(
        check(&plaintext, None),
        Err(BadRequest::Method(_))
    ));
    let no_nonce = header("").replace(r#", oauth_nonce="n""#, "");
    assert_eq!(
        check(&no_nonce, None),
        Err(BadRequest::Missing("oauth_nonce"))
    );
    for bad in ["-5", "1.5", "12345678901234567890", ""] {
        let stamp = header("").replace(
            r#"oauth_timestamp="100""#,
            &format!(r#"oauth_timestamp="{bad}""#),
        );
        assert_eq!(check(&stamp, None), Err(BadRequest::Timestamp), "{bad}");
    }
    assert!(matches!(
        check(&header("").replace("\"n\"", "\"%zz\""), None),
        Err(BadRequest::Malformed(_))
    ));
    assert_eq!(
        signed_request("GET", uri, None, Some("a=1"), None),
        Err(BadRequest::Unsigned)
    );
}

#[test]
fn nonces_are_read_in_their_decoded_form() {
    let uri = "http://example.com/";
    let auth = r#"OAuth oauth_consumer_key="k", oauth_signature_method="HMAC-SHA1", oauth_timestamp="1", oauth_nonce="%61bc", oauth_signature="x""#;
    let request = signed_request("GET", uri, Some(auth), None, None).expect("well-formed");
    assert_eq!(request.nonce, "abc");
}

/// Signs a request with reqwest-oauth1 (and our HMAC-SHA256 when asked) and returns its
/// Authorization header.
fn client_header(url: &str, sha256: bool) -> String {
    use reqwest_oauth1::{OAuthClientProvider, OAuthParameters, Secrets};
    let secrets = Secrets::new("my-key", "my secret/with+odd&chars");
    let client = reqwest::Client::new();
    let request = if sha256 {
        let params = OAuthParameters::new().signature_method(HmacSha256);
        client
            .oauth1_with_params(secrets, params)
            .post(url)
            .generate_signature()
    } else {
        client.oauth1(secrets).post(url).generate_signature()
    };
    let request = request.expect("signed").build().expect("a request");
    let value = request
        .headers()
        .get("authorization")
        .expect("an Authorization header");
    value.to_str().expect("text").to_owned()
}

#[test]
fn our_client_signatures_verify_on_our_server_side() {
    let url = "http://127.0.0.1:8080/outsourced/v1/reserve?instance=a%20b&body_sha256=abc-_";
    for sha256 in [false, true] {
        let header = client_header(url, sha256);
        let uri = base_uri("http", "127.0.0.1:8080", "/outsourced/v1/reserve").expect("a base URI");
        let query = Some("instance=a%20b&body_sha256=abc-_");
        let request =
            signed_request("POST", &uri, Some(&header), query, None).expect("well-formed");
        let method = if sha256 {
            SignatureMethod::HmacSha256
        } else {
            SignatureMethod::HmacSha1
        };
        assert_eq!(request.method, method);
        let secret = "my secret/with+odd&chars";
        assert!(
            verify(method, &request.base_string, secret, "", &request.signature),
            "{header}"
        );
        // Tampering with any signed part breaks it.
        let tampered = signed_request(
            "POST",
            &uri,
            Some(&header),
            Some("instance=a%20c&body_sha256=abc-_"),
            None,
        );
        let tampered = tampered.expect("well-formed");
        assert!(!verify(
            method,
            &tampered.base_string,
            secret,
            "",
            &tampered.signature
        ));
        assert!(!verify(
            method,
            &request.base_string,
            "other",
            "",
            &request.signature
        ));
        let other = if sha256 {
            SignatureMethod::HmacSha1
        } else {
            SignatureMethod::HmacSha256
        };
        assert!(!verify(
            other,
            &request.base_string,
            secret,
            "",
            &request.signature
        ));
    }
}
