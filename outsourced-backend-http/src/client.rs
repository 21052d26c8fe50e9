//! [`HttpBackend`]: the `Backend` trait by signed calls to an outsourced server, with reqwest
//! (rustls) and reqwest-oauth1 behind our own signer type.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use reqwest_oauth1::{OAuthClientProvider, OAuthParameters, Secrets};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::oauth::{BODY_HASH_PARAM, HmacSha256, SignatureMethod};
use crate::wire::error_from_response;
use outsourced_core::{Error, Result};

/// How to reach and sign for a server.
#[derive(Clone)]
pub struct HttpConfig {
    /// The server's URL, mount prefix included: `https://jobs.example.com/outsourced`.
    pub url: String,
    /// The consumer key.
    pub consumer_key: String,
    /// The consumer secret.
    pub consumer_secret: String,
    /// HMAC-SHA256 (the default) or HMAC-SHA1.
    pub signature_method: SignatureMethod,
    /// A PEM file of certificate authorities to trust besides the system's.
    pub ca_file: Option<PathBuf>,
    /// How long a request may take, long polls excepted (which get their wait on top) (30 s).
    pub timeout: Duration,
    /// Send every enqueue with an `Idempotency-Key` of its own, and send it again after a
    /// timeout, a dropped connection or a 503, so that an enqueue whose answer was lost is
    /// never stored twice (true, the default; false sends no key and does not send again).
    pub idempotent_enqueues: bool,
}

impl HttpConfig {
    /// The defaults for a server and credentials.
    pub fn new(
        url: impl Into<String>,
        consumer_key: impl Into<String>,
        consumer_secret: impl Into<String>,
    ) -> Self {
        HttpConfig {
            url: url.into(),
            consumer_key: consumer_key.into(),
            consumer_secret: consumer_secret.into(),
            signature_method: SignatureMethod::HmacSha256,
            ca_file: None,
            timeout: Duration::from_secs(30),
            idempotent_enqueues: true,
        }
    }
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("url", &self.url)
            .field("consumer_key", &self.consumer_key)
            .field("consumer_secret", &"***")
            .field("signature_method", &self.signature_method)
            .finish_non_exhaustive()
    }
}

/// The backend of a remote server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpBackend {
    pub(crate) http: reqwest::Client,
    pub(crate) base: url::Url,
    pub(crate) config: HttpConfig,
}

/// How often a request that could not connect is tried, each time signed afresh.
const CONNECT_TRIES: u32 = 3;

/// The header that makes an enqueue safe to send again (the IETF httpapi draft's name).
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// How long a request the server turns away (503 `overloaded`) is tried again before its
/// error is answered: long enough to ride out a burst or a stalled disk (a producer's enqueue
/// should wait a few seconds rather than fail), short of every caller's patience.
const SHED_PATIENCE: Duration = Duration::from_secs(10);

/// The pause before sending again a request turned away for the `tries`-th time: doubling from
/// 100 ms up to 2 s, each drawn from its upper half so that clients turned away together do not
/// all come back together.
fn shed_pause(tries: u32) -> Duration {
    let ceiling = (100u64 << tries.saturating_sub(1).min(5)).min(2_000);
    Duration::from_millis(rand::random_range(ceiling / 2..=ceiling))
}

/// Whether an error body is the server's `overloaded`: nothing was done, so trying again is
/// safe (unlike other 503s, after which a write may or may not have happened).
fn is_overloaded(body: &[u8]) -> bool {
    serde_json::from_slice::<crate::wire::ErrorBody>(body)
        .is_ok_and(|e| e.code == crate::wire::Code::Overloaded)
}

/// An error with its chain of causes, as one line: reqwest's own message ("error sending
/// request") says nothing of why (refused, an unknown certificate issuer, a name not found).
pub(crate) fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // hyper and rustls repeat their inner error in their own message at times.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Whether `error` failed in TLS: a server that speaks plain HTTP to an `https://` URL, a
/// certificate refused. Waiting mends neither, unlike a server out of reach.
fn failed_in_tls(error: &reqwest::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if is_rustls(e) {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Whether `error` is rustls's, or an `io::Error` around it (at any depth: the connector
/// wraps tokio-rustls's `io::Error` in one of its own, and an `io::Error`'s `source` skips
/// what it wraps).
fn is_rustls(error: &(dyn std::error::Error + 'static)) -> bool {
    if error.is::<rustls::Error>() {
        return true;
    }
    let inner = error
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref);
    inner.is_some_and(|inner| is_rustls(inner))
}

/// A request that failed on its way: said with its causes, retryable when it may not have
/// been sent or timed out, never when TLS failed (then with what to check).
fn failed_on_the_way(
    method: &Method,
    url: &reqwest::Url,
    error: reqwest::Error,
    timeouts: bool,
) -> Error {
    let tls = failed_in_tls(&error);
    let retryable = error.is_connect() || error.is_timeout() || (timeouts && error.is_request());
    let why = with_causes(&error.without_url());
    if tls {
        return transport(
            format!(
                "{method} {url}: {why} (TLS failed: a server that speaks plain HTTP answers an https:// URL so; check the URL's scheme, or the server's certificate and `ca_file`)"
            ),
            false,
        );
    }
    transport(format!("{method} {url}: {why}"), retryable)
}

pub(crate) fn transport(message: String, retryable: bool) -> Error {
    Error::Backend {
        backend: "http",
        message,
        retryable,
        source: None,
    }
}

impl HttpBackend {
    /// A backend for the server `config.url`.
    pub fn new(config: HttpConfig) -> Result<Self> {
        let mut url = config.url.trim_end_matches('/').to_owned();
        url.push('/');
        let base = url::Url::parse(&url)
            .map_err(|e| Error::invalid(format!("{url:?} is not a URL: {e}")))?;
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(Duration::from_secs(10));
        if let Some(ca) = &config.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| Error::invalid(format!("cannot read {}: {e}", ca.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                Error::invalid(format!("{} is not a PEM certificate: {e}", ca.display()))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| transport(e.to_string(), false))?;
        Ok(HttpBackend { http, base, config })
    }

    /// Calls `path` (relative to `/v1/`) and decodes a JSON answer.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&(impl Serialize + ?Sized)>,
        wait: Option<Duration>,
    ) -> Result<T> {
        let bytes = self.send(method, path, query, body, wait, None).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            transport(
                format!("the server's answer to {path} is not valid: {e}"),
                false,
            )
        })
    }

    /// Calls `path` and expects no answer body.
    pub(crate) async fn call_empty(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<()> {
        self.send(method, path, &[], body, None, None)
            .await
            .map(|_| ())
    }

    /// POSTs an enqueue; with `idempotent_enqueues`, with an `Idempotency-Key` of its own, kept
    /// for every try: a try whose
    /// answer was lost (a timeout, a dropped connection, a 503 from a busy database) is sent
    /// again, and the server answers it as the first time without storing anything twice.
    pub(crate) async fn enqueue_call<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
    ) -> Result<T> {
        let key = format!("{:032x}", rand::random::<u128>());
        let key = self.config.idempotent_enqueues.then_some(key.as_str());
        let bytes = self
            .send(Method::POST, path, &[], Some(body), None, key)
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            transport(
                format!("the server's answer to {path} is not valid: {e}"),
                false,
            )
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&(impl Serialize + ?Sized)>,
        wait: Option<Duration>,
        idempotency: Option<&str>,
    ) -> Result<Vec<u8>> {
        let url = self
            .base
            .join(&format!("v1/{path}"))
            .map_err(|e| Error::invalid(format!("bad path {path:?}: {e}")))?;
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| Error::invalid(format!("cannot encode the request: {e}")))?;
        let mut query: Vec<(String, String)> = query.to_vec();
        if let Some(body) = &body {
            // The signature covers the query, so it covers the body through its hash.
            query.push((
                BODY_HASH_PARAM.to_owned(),
                URL_SAFE_NO_PAD.encode(Sha256::digest(body)),
            ));
        }
        let timeout = self.config.timeout + wait.unwrap_or_default();
        let started = std::time::Instant::now();
        let mut tries = 0;
        let mut shed = 0;
        loop {
            tries += 1;
            let mut request =
                self.signed(method.clone(), url.clone(), &query, body.clone(), timeout)?;
            if let Some(key) = idempotency {
                request = request.header(IDEMPOTENCY_KEY, key);
            }
            match request.send().await {
                // Not sent, or sent with a key that makes sending it again harmless.
                Err(error)
                    if (error.is_connect() || idempotency.is_some())
                        && tries < CONNECT_TRIES
                        && !failed_in_tls(&error) =>
                {
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(tries))).await;
                }
                // The URL is said once, without its query.
                Err(error) => return Err(failed_on_the_way(&method, &url, error, true)),
                Ok(response) if response.status() == 503 => {
                    let bytes = response.bytes().await.unwrap_or_default();
                    let error = error_from_response(503, &bytes);
                    if !is_overloaded(&bytes) && idempotency.is_none() {
                        return Err(error);
                    }
                    // Turned away before anything was done (or sent with a key that makes it
                    // harmless): the same call, signed afresh, is safe to send again.
                    shed += 1;
                    let pause = shed_pause(shed);
                    if started.elapsed() + pause > SHED_PATIENCE {
                        return Err(error);
                    }
                    tokio::time::sleep(pause).await;
                }
                Ok(response) => return read(response, &self.base).await,
            }
        }
    }

    /// A signed request whose body streams (an attachment): sent once, never retried (the
    /// body cannot be replayed), with no time limit but the connection's. Answers the response
    /// of a success, the core error of a failure.
    pub(crate) async fn send_streaming(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let url = self
            .base
            .join(&format!("v1/{path}"))
            .map_err(|e| Error::invalid(format!("bad path {path:?}: {e}")))?;
        // Long enough for the largest attachment over a slow link; a stalled one still ends.
        let timeout = Duration::from_secs(24 * 3600);
        let request = body(self.signed(method.clone(), url.clone(), query, None, timeout)?);
        let response = request
            .send()
            .await
            .map_err(|error| failed_on_the_way(&method, &url, error, false))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap_or_default();
        Err(error_from_response(status, &bytes))
    }

    /// One signed request, ready to send (a new nonce and timestamp every time).
    fn signed(
        &self,
        method: Method,
        url: url::Url,
        query: &(impl Serialize + ?Sized),
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<reqwest::RequestBuilder> {
        let secrets = Secrets::new(
            self.config.consumer_key.as_str(),
            self.config.consumer_secret.as_str(),
        );
        let signed = match self.config.signature_method {
            SignatureMethod::HmacSha1 => {
                let builder = self.http.clone().oauth1(secrets).request(method, url);
                builder.query(query).generate_signature()
            }
            SignatureMethod::HmacSha256 => {
                let params = OAuthParameters::new().signature_method(HmacSha256);
                let client = self.http.clone().oauth1_with_params(secrets, params);
                client
                    .request(method, url)
                    .query(query)
                    .generate_signature()
            }
        };
        let builder = signed
            .map_err(|e| transport(format!("cannot sign the request: {e}"), false))?
            .timeout(timeout);
        Ok(match body {
            Some(body) => builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body),
            None => builder,
        })
    }
}

/// The body of a successful response, or the core error of a failed one.
/// Whether a 404's body says that no route of the API is under the URL: not one of the API's
/// answers (nothing of ours is served there), or ours saying it has no such route (the URL
/// goes past the server's mount).
fn no_route(body: &[u8]) -> bool {
    match serde_json::from_slice::<crate::wire::ErrorBody>(body) {
        Ok(error) => error.code.as_str() == crate::wire::Code::NoRoute,
        Err(_) => true,
    }
}

async fn read(response: reqwest::Response, base: &url::Url) -> Result<Vec<u8>> {
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| transport(format!("reading the answer: {}", with_causes(&e)), true))?;
    if status.is_success() {
        return Ok(bytes.to_vec());
    }
    if status == 404 && no_route(&bytes) {
        return Err(Error::invalid(format!(
            "nothing answers at {base}v1/ (HTTP 404): the URL must end with the server's mount, \
             as `outsourcer serve` prints it (e.g. http://host:8080/outsourced)"
        )));
    }
    Err(error_from_response(status.as_u16(), &bytes))
}
