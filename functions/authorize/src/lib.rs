//! The API's request authorizer: who is calling, from what the caller's platform issues.
//!
//! API Gateway calls it (payload 2.0, simple responses) with the request's `Authorization`
//! header and keeps its answer for that header for five minutes. A caller is known
//! one of two ways (`CALLER_AUTH`):
//! - `oidc`: the header carries a JWT from an OIDC issuer, checked here against the keys the
//!   issuer publishes (signature, `iss`, `aud`, `exp`, `nbf`); its `sub`, `email` and
//!   `scope`/`scp`/`permissions` claims are the caller.
//! - `platform`: the header carries a token the platform (Mainflux, Magistrala, SuperMQ,
//!   Connhex) issued to one of its users; the platform's users service is asked whose it is, and
//!   the caller is that user, with the permissions the operator grants platform users.
//!
//! A token the issuer or the platform refuses is denied (API Gateway answers `403`). An issuer or
//! platform that cannot answer is an error (API Gateway answers `500` and keeps nothing), never a
//! denial that would lock a valid caller out and never an allowance.

use serde::Serialize;
use serde_json::{json, Value};

use exporter_adapters::config::ConfigError;

pub mod config;
pub mod oidc;
pub mod platform;

/// The actions a platform user may take unless the operator says otherwise: all of them, on the
/// user's own exports (the API keeps tenants apart by `sub`; channel access is checked per item).
pub const PLATFORM_DEFAULT_PERMISSIONS: [&str; 7] = [
    "exporter:exports:create",
    "exporter:exports:list",
    "exporter:exports:get",
    "exporter:exports:download",
    "exporter:exports:delete",
    "exporter:exports:update",
    "exporter:exports:run",
];

/// Who the caller is, as the API reads it from the authorizer's context.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Caller {
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Space-separated actions.
    pub permissions: String,
}

/// The authorizer's answer about one credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow(Caller),
    /// Refused, with the reason (logged, never returned to the caller).
    Deny(String),
}

/// The issuer or the platform could not answer; the request fails with `500` and nothing is
/// cached, so the next request asks again.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// How callers are known.
pub enum Authorizer {
    Oidc(oidc::Issuer),
    Platform(platform::Users),
}

impl Authorizer {
    /// The verdict on an `Authorization` header.
    pub async fn decide(&self, authorization: Option<&str>) -> Result<Verdict, Unavailable> {
        let Some(token) = authorization.and_then(bearer) else {
            return Ok(Verdict::Deny("no bearer token".into()));
        };
        match self {
            Self::Oidc(issuer) => issuer.verify(token).await,
            Self::Platform(users) => users.whose(token).await,
        }
    }
}

/// The token of an `Authorization` header: after `Bearer ` (any case), or the whole header when
/// it names no scheme (Mainflux's own clients send the bare token).
pub fn bearer(header: &str) -> Option<&str> {
    let header = header.trim();
    let token = match header.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some(_) => return None,
        None if header.eq_ignore_ascii_case("bearer") => return None,
        None => header,
    };
    (!token.is_empty()).then_some(token)
}

/// One invocation: API Gateway's request (payload 2.0) in, a simple response out.
pub async fn handle(authorizer: &Authorizer, event: Value) -> Result<Value, Unavailable> {
    let header = event["headers"]
        .as_object()
        .and_then(|headers| {
            headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
                .and_then(|(_, value)| value.as_str())
        })
        .or_else(|| event["identitySource"][0].as_str());
    match authorizer.decide(header).await {
        Ok(Verdict::Allow(caller)) => {
            tracing::info!(sub = %caller.sub, "caller allowed");
            Ok(json!({ "isAuthorized": true, "context": caller }))
        }
        Ok(Verdict::Deny(reason)) => {
            tracing::info!(%reason, "caller denied");
            Ok(json!({ "isAuthorized": false }))
        }
        Err(unavailable) => {
            tracing::error!(error = %unavailable, "callers cannot be checked");
            Err(unavailable)
        }
    }
}

/// The words of a claim that lists actions: a space- or comma-separated string, or an array of
/// strings.
pub(crate) fn words(claim: &Value) -> Vec<String> {
    match claim {
        Value::String(text) => text
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// A client for the issuer's or the platform's few small requests: short timeouts, TLS by
/// rustls, few redirects.
pub(crate) fn client() -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(3))
        .timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .map_err(|e| ConfigError::Malformed {
            name: "CALLER_AUTH",
            reason: format!("no HTTP client: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_is_read_with_or_without_its_scheme() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer(""), None);
    }

    #[test]
    fn action_claims_are_read_as_strings_or_arrays() {
        assert_eq!(words(&json!("a b,c")), ["a", "b", "c"]);
        assert_eq!(words(&json!(["a", "b", 3])), ["a", "b"]);
        assert!(words(&json!(null)).is_empty());
    }
}
