//! Callers' platform tokens, checked by asking the platform whose they are.
//!
//! Each platform answers for a user's own token at one route of the service that issued it
//! (`Dialect::profile_path`), with the token as a bearer credential:
//!
//! | dialect | answer | caller (`sub`) | email |
//! |---|---|---|---|
//! | `mainflux` 0.13 | `{id, email}` | `id` | `email` |
//! | `mainflux` later | `{id, credentials: {identity}, status}` | `id` | `credentials.identity` |
//! | `magistrala` (>= 0.15, SuperMQ) | `{id, email, credentials: {username}, status}` | `id` | `email` |
//! | `connhex` (Ory Kratos session) | `{active, identity: {id, traits: {email}}}` | `identity.id` | `identity.traits.email` |
//!
//! `401` and `403` deny; a disabled user or an inactive session deny; anything else the
//! platform answers (or not answering) makes the request fail with `500`, never a cached denial.

use serde_json::Value;

use exporter_adapters::config::ConfigError;
use exporter_core::domain::Dialect;

use crate::{Caller, Unavailable, Verdict};

/// The platform's service that knows its users.
pub struct Users {
    profile: url::Url,
    dialect: Dialect,
    permissions: String,
    http: reqwest::Client,
}

impl Users {
    /// `base` is the service's URL (`https://platform.example.com` behind the platform's proxy,
    /// or the users service itself); the dialect's route is appended to its path.
    pub fn new(base: &str, dialect: Dialect, permissions: Vec<String>) -> Result<Self, ConfigError> {
        let malformed = |reason: String| ConfigError::Malformed {
            name: "PLATFORM_USERS_URL",
            reason,
        };
        let base = url::Url::parse(base).map_err(|e| malformed(format!("not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.query().is_some() {
            return Err(malformed("must be an http(s) URL without a query".into()));
        }
        let mut profile = base;
        let path = format!(
            "{}{}",
            profile.path().trim_end_matches('/'),
            dialect.profile_path()
        );
        profile.set_path(&path);
        Ok(Self {
            profile,
            dialect,
            permissions: permissions.join(" "),
            http: crate::client()?,
        })
    }

    /// The verdict on a token: the platform's answer about whose it is.
    pub async fn whose(&self, token: &str) -> Result<Verdict, Unavailable> {
        let answer = self
            .http
            .get(self.profile.clone())
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| Unavailable(format!("the platform did not answer {}: {e}", self.profile)))?;
        let status = answer.status();
        if matches!(status.as_u16(), 401 | 403) {
            return Ok(Verdict::Deny(format!("the platform answered {status}")));
        }
        if !status.is_success() {
            return Err(Unavailable(format!(
                "the platform answered {} with {status}",
                self.profile
            )));
        }
        let body: Value = answer
            .json()
            .await
            .map_err(|e| Unavailable(format!("the platform's answer is not JSON: {e}")))?;
        match self.user_of(&body) {
            Ok((sub, email)) => Ok(Verdict::Allow(Caller {
                sub,
                email,
                permissions: self.permissions.clone(),
            })),
            Err(Refusal::Denied(reason)) => Ok(Verdict::Deny(reason)),
            Err(Refusal::Unreadable(reason)) => Err(Unavailable(format!(
                "the platform's answer (READER_DIALECT={}) {reason}",
                self.dialect
            ))),
        }
    }

    /// The user (id, email) an answer names.
    fn user_of(&self, body: &Value) -> Result<(String, Option<String>), Refusal> {
        let text = |v: &Value| {
            v.as_str()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let (id, email) = match self.dialect {
            Dialect::Connhex => {
                if body["active"] == Value::Bool(false) {
                    return Err(Refusal::Denied("the session is not active".into()));
                }
                let identity = &body["identity"];
                (text(&identity["id"]), text(&identity["traits"]["email"]))
            }
            Dialect::Mainflux | Dialect::Magistrala => {
                if body["status"].as_str() == Some("disabled") {
                    return Err(Refusal::Denied("the user is disabled".into()));
                }
                let identity = text(&body["credentials"]["identity"]).filter(|i| i.contains('@'));
                (text(&body["id"]), text(&body["email"]).or(identity))
            }
        };
        let id = id.ok_or_else(|| Refusal::Unreadable("names no user id".into()))?;
        Ok((id, email))
    }
}

enum Refusal {
    Denied(String),
    Unreadable(String),
}
