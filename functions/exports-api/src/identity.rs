//! Who is calling and what they may do, from the authorizer: a JWT authorizer's claims, or the
//! request authorizer's context (`sub`, `email`, `permissions`) (spec section 2).
//!
//! API Gateway's HTTP API flattens claims to strings: `scope` is space-separated, and an array
//! claim such as `permissions` arrives as `[a b c]`. For local runs, where no authorizer runs, a
//! debug build may be told (by its composition root) to read the same claims as JSON from the
//! `x-local-identity` header; release builds refuse that setting at cold start.

use std::collections::{HashMap, HashSet};

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

/// The header a local run presents claims in, as a JSON object.
pub const LOCAL_IDENTITY_HEADER: &str = "x-local-identity";

/// The caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub sub: String,
    pub email: Option<String>,
    pub permissions: HashSet<String>,
    /// The request's `Authorization` header, as presented: what a channel access check that
    /// asks the platform as the caller forwards. Never logged.
    pub credential: Option<String>,
}

impl Identity {
    pub fn may(&self, action: &str) -> bool {
        self.permissions.contains(action)
    }

    /// Reads the caller from the claims; `None` when there is no `sub`.
    pub fn from_claims(claims: &HashMap<String, String>, scopes: &[String]) -> Option<Self> {
        let sub = claims
            .get("sub")
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())?
            .to_owned();
        let mut permissions: HashSet<String> = scopes.iter().cloned().collect();
        for name in ["scope", "scp", "permissions"] {
            if let Some(value) = claims.get(name) {
                let list = value.trim().trim_start_matches('[').trim_end_matches(']');
                permissions.extend(
                    list.split(|c: char| c.is_whitespace() || c == ',')
                        .map(|p| p.trim_matches('"'))
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned),
                );
            }
        }
        let email = claims.get("email").filter(|e| !e.is_empty()).cloned();
        Some(Self {
            sub,
            email,
            permissions,
            credential: None,
        })
    }

    /// The caller of a request: the authorizer's claims, or (only when `local` is on and the
    /// request carries no authorizer claims) the local header.
    pub fn of(request: &Request, local: bool) -> Option<Self> {
        let credential = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Self::claims_of(request, local).map(|who| Self { credential, ..who })
    }

    fn claims_of(request: &Request, local: bool) -> Option<Self> {
        let authorizer = match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx.authorizer.as_ref(),
            _ => None,
        };
        if let Some(jwt) = authorizer
            .and_then(|a| a.jwt.as_ref())
            .filter(|j| !j.claims.is_empty())
        {
            return Self::from_claims(&jwt.claims, jwt.scopes.as_deref().unwrap_or_default());
        }
        // The request authorizer's context (`sub`, `email`, space-separated `permissions`).
        if let Some(context) = authorizer.map(|a| &a.fields).filter(|f| !f.is_empty()) {
            return Self::from_claims(&flattened(context.clone()), &[]);
        }
        if !local {
            return None;
        }
        let header = request.headers().get(LOCAL_IDENTITY_HEADER)?.to_str().ok()?;
        let claims: HashMap<String, serde_json::Value> = serde_json::from_str(header).ok()?;
        Self::from_claims(&flattened(claims), &[])
    }
}

/// Claims as strings, arrays of strings joined by spaces (as API Gateway flattens them).
fn flattened(claims: HashMap<String, serde_json::Value>) -> HashMap<String, String> {
    claims
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            serde_json::Value::Array(items) => {
                let words: Vec<String> = items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect();
                (k, words.join(" "))
            }
            other => (k, other.to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scope_and_flattened_permission_claims() {
        let claims = HashMap::from([
            ("sub".to_owned(), "alice".to_owned()),
            ("scope".to_owned(), "openid exporter:exports:list".to_owned()),
            (
                "permissions".to_owned(),
                "[exporter:exports:create exporter:exports:get]".to_owned(),
            ),
        ]);
        let who = Identity::from_claims(&claims, &[]).expect("has sub");
        assert!(who.may("exporter:exports:list"));
        assert!(who.may("exporter:exports:create"));
        assert!(who.may("exporter:exports:get"));
        assert!(!who.may("exporter:exports:delete"));
    }

    #[test]
    fn no_sub_means_no_identity() {
        let claims = HashMap::from([("scope".to_owned(), "exporter:exports:list".to_owned())]);
        assert_eq!(Identity::from_claims(&claims, &[]), None);
    }
}
