//! Hand-made signed requests, so that tests can send what no well-behaved client would: a
//! tampered part, a replay, an old timestamp.

use outsourced_backend_http::oauth::{self, SignatureMethod};
use reqwest::{Method, Response};

/// The parts of one signed request; change any before or after signing.
#[derive(Clone, Debug)]
pub(crate) struct Signed {
    pub(crate) method: Method,
    pub(crate) url: url::Url,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) consumer_key: String,
    pub(crate) timestamp: i64,
    pub(crate) nonce: String,
    pub(crate) signature_method: &'static str,
    /// Set by [`Signed::sign`].
    pub(crate) signature: String,
    /// Sent as `Idempotency-Key` (not signed: no header is).
    pub(crate) idempotency_key: Option<String>,
}

impl Signed {
    /// A request to sign at the current time with a fresh nonce.
    pub(crate) fn new(
        method: Method,
        url: &str,
        key: &str,
        body: Option<serde_json::Value>,
    ) -> Self {
        Signed {
            method,
            url: url::Url::parse(url).expect("a URL"),
            body: body.map(|b| serde_json::to_vec(&b).expect("JSON")),
            consumer_key: key.to_owned(),
            timestamp: chrono::Utc::now().timestamp(),
            nonce: format!("n{}", rand_suffix()),
            signature_method: "HMAC-SHA1",
            signature: String::new(),
            idempotency_key: None,
        }
    }

    fn protocol(&self) -> Vec<(String, String)> {
        vec![
            ("oauth_consumer_key".into(), self.consumer_key.clone()),
            ("oauth_nonce".into(), self.nonce.clone()),
            (
                "oauth_signature_method".into(),
                self.signature_method.into(),
            ),
            ("oauth_timestamp".into(), self.timestamp.to_string()),
            ("oauth_version".into(), "1.0".into()),
        ]
    }

    /// The host and port the request is signed for.
    fn authority(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        match self.url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    /// Signs the request as it is now, with `secret`.
    pub(crate) fn sign(mut self, secret: &str) -> Self {
        let base_uri = oauth::base_uri(self.url.scheme(), &self.authority(), self.url.path())
            .expect("a base URI");
        let mut params = oauth::parse_form(self.url.query().unwrap_or_default()).expect("a query");
        params.extend(self.protocol());
        let base = oauth::base_string(self.method.as_str(), &base_uri, &params);
        let method = self
            .signature_method
            .parse()
            .unwrap_or(SignatureMethod::HmacSha1);
        self.signature = oauth::sign(method, &base, secret, "");
        self
    }

    /// The `Authorization` header.
    pub(crate) fn authorization(&self) -> String {
        let mut params = self.protocol();
        params.push(("oauth_signature".into(), self.signature.clone()));
        let parts: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", oauth::encode(v)))
            .collect();
        format!("OAuth {}", parts.join(", "))
    }

    /// Sends it as signed.
    pub(crate) async fn send(&self) -> Response {
        self.send_to(&self.url).await
    }

    /// Sends it, exactly as signed (its `Host` header included), to the server at `base`
    /// instead: what a load balancer does with a request signed for its own address.
    pub(crate) async fn send_via(&self, base: &str) -> Response {
        let base = url::Url::parse(base).expect("a URL");
        let mut to = self.url.clone();
        to.set_host(base.host_str()).expect("a host");
        to.set_port(base.port()).expect("a port");
        self.send_to(&to).await
    }

    async fn send_to(&self, to: &url::Url) -> Response {
        let mut request = reqwest::Client::new()
            .request(self.method.clone(), to.clone())
            .header(reqwest::header::HOST, self.authority())
            .header(reqwest::header::AUTHORIZATION, self.authorization());
        if let Some(key) = &self.idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = &self.body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        request.send().await.expect("the server answers")
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
    now ^ (NEXT.fetch_add(1, Ordering::Relaxed) << 48)
}

/// A response's status and error code.
pub(crate) async fn status_and_code(response: Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}
