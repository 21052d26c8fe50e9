//! Reading the OAuth 1.0a protocol parameters of a request and building its base string: the
//! server side of RFC 5849 §3.2 to §3.5, without the secret lookup and the nonce store.

use super::base_string::base_string;
use super::encode::{BadEncoding, decode, parse_form};
use super::signature::{SignatureMethod, UnsupportedMethod};

/// What is wrong with a request's OAuth parameters (a 400, or 401 when there are none).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    /// The request is not signed at all.
    #[error("the request is not signed: send an OAuth 1.0a Authorization header")]
    Unsigned,
    /// A required protocol parameter is missing.
    #[error("the OAuth parameter {0} is missing")]
    Missing(&'static str),
    /// A protocol parameter appears twice, or in two places.
    #[error("the OAuth parameter {0} appears more than once")]
    Duplicate(String),
    /// Not a signature method the server accepts.
    #[error(transparent)]
    Method(#[from] UnsupportedMethod),
    /// `oauth_version` other than 1.0.
    #[error("oauth_version must be 1.0")]
    Version,
    /// `oauth_timestamp` is not a number of seconds.
    #[error("oauth_timestamp must be a positive integer of seconds")]
    Timestamp,
    /// Bad percent-encoding or header syntax.
    #[error("malformed OAuth parameters: {0}")]
    Malformed(String),
}

impl From<BadEncoding> for BadRequest {
    fn from(error: BadEncoding) -> Self {
        BadRequest::Malformed(error.to_string())
    }
}

/// A request's verified-to-be-well-formed OAuth parameters and its base string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRequest {
    /// `oauth_consumer_key`.
    pub consumer_key: String,
    /// `oauth_token`, when sent (two-legged clients send none, or an empty one).
    pub token: Option<String>,
    /// `oauth_signature_method`.
    pub method: SignatureMethod,
    /// `oauth_signature`, decoded (base64 text).
    pub signature: String,
    /// `oauth_timestamp`, seconds since the epoch.
    pub timestamp: i64,
    /// `oauth_nonce`, decoded: replays are recognised on this form.
    pub nonce: String,
    /// The signature base string.
    pub base_string: String,
}

/// Parses an `Authorization: OAuth ...` header into decoded name-value pairs (`realm` dropped).
pub fn parse_authorization(header: &str) -> Result<Option<Vec<(String, String)>>, BadRequest> {
    let header = header.trim();
    let Some(rest) = header
        .get(..6)
        .filter(|s| s.eq_ignore_ascii_case("oauth "))
        .map(|_| &header[6..])
    else {
        return Ok(None);
    };
    let mut pairs = Vec::new();
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| BadRequest::Malformed(format!("{part:?} is not name=\"value\"")))?;
        let value = value
            .trim()
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(|| BadRequest::Malformed(format!("the value of {name} is not quoted")))?;
        let name = decode(name.trim())?;
        if name != "realm" {
            pairs.push((name, decode(value)?));
        }
    }
    Ok(Some(pairs))
}

/// Reads a request's OAuth parameters from its `Authorization` header or its query (exactly
/// one of them), and builds the base string over the query, a form body (only when the
/// request is form-encoded) and the protocol parameters but `oauth_signature`.
pub fn signed_request(
    method: &str,
    base_uri: &str,
    authorization: Option<&str>,
    query: Option<&str>,
    form_body: Option<&str>,
) -> Result<SignedRequest, BadRequest> {
    let header = authorization
        .map(parse_authorization)
        .transpose()?
        .flatten();
    let query = query.map(parse_form).transpose()?.unwrap_or_default();
    let body = form_body.map(parse_form).transpose()?.unwrap_or_default();
    let in_query = query.iter().any(|(n, _)| n.starts_with("oauth_"));
    let in_body = body.iter().any(|(n, _)| n.starts_with("oauth_"));
    let protocol: Vec<(String, String)> = match (header, in_query, in_body) {
        (Some(header), false, false) => header,
        (None, true, false) => query
            .iter()
            .filter(|(n, _)| n.starts_with("oauth_"))
            .cloned()
            .collect(),
        (None, false, true) => body
            .iter()
            .filter(|(n, _)| n.starts_with("oauth_"))
            .cloned()
            .collect(),
        (None, false, false) => return Err(BadRequest::Unsigned),
        _ => {
            return Err(BadRequest::Duplicate(
                "oauth_* (in more than one place)".into(),
            ));
        }
    };
    let mut seen = std::collections::HashSet::new();
    for (name, _) in &protocol {
        if !seen.insert(name.as_str()) {
            return Err(BadRequest::Duplicate(name.clone()));
        }
    }
    let get = |name: &'static str| {
        protocol
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let required = |name: &'static str| get(name).ok_or(BadRequest::Missing(name));
    if let Some(version) = get("oauth_version")
        && version != "1.0"
    {
        return Err(BadRequest::Version);
    }
    let method_name: SignatureMethod = required("oauth_signature_method")?.parse()?;
    let timestamp = required("oauth_timestamp")?;
    let timestamp: i64 = (!timestamp.is_empty()
        && timestamp.len() <= 12
        && timestamp.bytes().all(|b| b.is_ascii_digit()))
    .then(|| timestamp.parse().ok())
    .flatten()
    .ok_or(BadRequest::Timestamp)?;
    let signature = required("oauth_signature")?;
    let consumer_key = required("oauth_consumer_key")?;
    let nonce = required("oauth_nonce")?;
    // The base string: every parameter included in the request, but the signature (and, from
    // the query or body, the protocol parameters are already among them).
    let mut params: Vec<(String, String)> = query
        .into_iter()
        .chain(body)
        .filter(|(n, _)| !n.starts_with("oauth_"))
        .collect();
    params.extend(
        protocol
            .iter()
            .filter(|(n, _)| n != "oauth_signature")
            .cloned(),
    );
    Ok(SignedRequest {
        consumer_key,
        token: get("oauth_token").filter(|t| !t.is_empty()),
        method: method_name,
        signature,
        timestamp,
        nonce,
        base_string: base_string(method, base_uri, &params),
    })
}
