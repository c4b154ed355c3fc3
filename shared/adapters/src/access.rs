//! Adapters of [`ChannelAccess`]: who may export which channel.
//!
//! | mode (`CHANNEL_ACCESS`) | adapter | asks | when |
//! |---|---|---|---|
//! | `reader` (default) | [`ReaderAccess`] | the platform's reader, as the caller: a `limit=1` read of the channel (in its domain, where the dialect has them), subtopic, name and message table with the request's own `Authorization` header; 2xx allowed, 401/403/404 denied | at create time |
//! | `policy` | [`PolicyAccess`] | a policy endpoint (`ACCESS_POLICY_URL`, a template of `{subject}`, `{domain}`, `{channel}`, `{subtopic}`, `{name}`, `{format}`, `{action}`; `{domain}` required where the dialect has domains) with the service's token; 2xx allowed, 403/404 denied | at create time and before every run |
//! | `off` | [`OpenAccess`] | nobody: every channel is allowed (single-tenant deployments only; logged at cold start) | never |
//!
//! `reader` mode cannot serve a dialect whose reader narrows a channel's page to the devices a
//! caller may read (Magistrala): its `200` says "some of this channel", while the run reads with
//! the service's credential, which may see every device, so the caller could receive other
//! devices' data. Such a deployment refuses to start in `reader` mode and names `policy`.
//!
//! Any other answer, a timeout or a refused connection is `Unavailable`: the API answers `503`
//! with nothing stored, a run is retried. Redirects are never followed, and neither the caller's
//! credential nor the service's token reaches a log.

use std::time::Duration;

use async_trait::async_trait;

use crate::config::{optional, ConfigError};
use crate::support::Secret;
use exporter_core::domain::Dialect;
use exporter_core::ports::{AccessError, Caller, ChannelAccess, ChannelRead};

/// How a deployment decides channel access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessMode {
    Reader,
    Policy { url_template: String },
    Off,
}

impl AccessMode {
    /// Reads `CHANNEL_ACCESS` (`reader`, the default; `policy`, which needs `ACCESS_POLICY_URL`;
    /// `off`).
    pub fn from_env() -> Result<Self, ConfigError> {
        match optional("CHANNEL_ACCESS").as_deref() {
            None | Some("reader") => Ok(Self::Reader),
            Some("off") => Ok(Self::Off),
            Some("policy") => {
                let url_template =
                    optional("ACCESS_POLICY_URL").ok_or(ConfigError::Missing("ACCESS_POLICY_URL"))?;
                PolicyAccess::check_template(&url_template).map_err(|reason| ConfigError::Malformed {
                    name: "ACCESS_POLICY_URL",
                    reason,
                })?;
                Ok(Self::Policy { url_template })
            }
            Some(other) => Err(ConfigError::Malformed {
                name: "CHANNEL_ACCESS",
                reason: format!("`{other}` is not one of reader, policy, off"),
            }),
        }
    }
}

/// The checker of `mode`: the reader at `reader_url`, speaking `dialect`; the policy endpoint
/// with `policy_token` (which `policy` needs); or every channel allowed, said loudly, for
/// `off`. Fails for `reader` mode with a dialect whose reader narrows by device (see above).
pub fn checker(
    mode: AccessMode,
    reader_url: &str,
    policy_token: Option<Secret>,
    dialect: Dialect,
) -> Result<Box<dyn ChannelAccess>, ConfigError> {
    let client_failed = |e: AccessError| ConfigError::Malformed {
        name: "CHANNEL_ACCESS",
        reason: e.to_string(),
    };
    Ok(match mode {
        AccessMode::Reader if dialect.narrows_by_device() => {
            return Err(ConfigError::Malformed {
                name: "CHANNEL_ACCESS",
                reason: format!(
                    "`reader` cannot be used with READER_DIALECT={dialect}: its reader answers a caller who may read only some of a channel's devices with a narrowed page, while runs read with the service's credential, so a caller could receive other devices' data; set CHANNEL_ACCESS=policy (ACCESS_POLICY_URL) instead"
                ),
            })
        }
        AccessMode::Reader => Box::new(ReaderAccess::new(reader_url, dialect).map_err(client_failed)?),
        AccessMode::Policy { url_template } if dialect.has_domains() && !url_template.contains("{domain}") => {
            return Err(ConfigError::Malformed {
                name: "ACCESS_POLICY_URL",
                reason: format!(
                    "must name {{domain}} with READER_DIALECT={dialect}: a channel is known by its domain, and the endpoint must answer for the one the item names"
                ),
            })
        }
        AccessMode::Policy { url_template } => {
            let token = policy_token.ok_or(ConfigError::Missing("ACCESS_POLICY_TOKEN_PARAMETER"))?;
            Box::new(PolicyAccess::new(url_template, token).map_err(client_failed)?)
        }
        AccessMode::Off => {
            tracing::warn!(
                "CHANNEL_ACCESS=off: every caller may export every channel; for single-tenant deployments only"
            );
            Box::new(OpenAccess)
        }
    })
}

fn client() -> Result<reqwest::Client, AccessError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| AccessError::Unavailable(Box::new(e)))
}

/// What an answer of the platform means for access.
fn decide(status: u16, who: &str) -> Result<bool, AccessError> {
    match status {
        200..=299 => Ok(true),
        403 | 404 => Ok(false),
        401 if who == "reader" => Ok(false),
        _ => Err(AccessError::Unavailable(
            format!("the {who} answered {status} to an access check").into(),
        )),
    }
}

fn unavailable(e: reqwest::Error) -> AccessError {
    // The URL may carry the subject; the error names only what happened.
    let what = if e.is_timeout() { "timed out" } else { "failed" };
    AccessError::Unavailable(format!("an access check {what}").into())
}

/// Asks the platform's reader, as the caller.
#[derive(Clone, Debug)]
pub struct ReaderAccess {
    http: reqwest::Client,
    base_url: String,
    dialect: Dialect,
}

impl ReaderAccess {
    pub fn new(base_url: impl Into<String>, dialect: Dialect) -> Result<Self, AccessError> {
        Ok(Self {
            http: client()?,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            dialect,
        })
    }
}

#[async_trait]
impl ChannelAccess for ReaderAccess {
    async fn may_read(&self, caller: &Caller<'_>, read: &ChannelRead<'_>) -> Result<bool, AccessError> {
        let credential = caller.credential.ok_or(AccessError::NoCredential)?;
        let domain = read.domain.map(|d| d.to_string());
        let path = self
            .dialect
            .messages_path(domain.as_deref(), &read.channel.to_string())
            .map_err(|reason| AccessError::Unavailable(reason.into()))?;
        let url = format!("{}{path}", self.base_url);
        let answer = self
            .http
            .get(url)
            .query(&[("limit", "1"), ("subtopic", read.subtopic), ("name", read.name)])
            .query(&read.table.map(|t| [("format", t)]).unwrap_or_default())
            .header("authorization", credential)
            .send()
            .await
            .map_err(unavailable)?;
        decide(answer.status().as_u16(), "reader")
    }
}

/// Asks a policy endpoint with the service's own token.
#[derive(Clone, Debug)]
pub struct PolicyAccess {
    http: reqwest::Client,
    url_template: String,
    token: Secret,
}

impl PolicyAccess {
    pub fn new(url_template: impl Into<String>, token: Secret) -> Result<Self, AccessError> {
        Ok(Self {
            http: client()?,
            url_template: url_template.into(),
            token,
        })
    }

    /// A template must be an http(s) URL naming at least `{subject}` and `{channel}`.
    pub fn check_template(template: &str) -> Result<(), String> {
        let filled = template.replace(['{', '}'], "");
        let url = url::Url::parse(&filled).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err("must be an http(s) URL".into());
        }
        if !template.contains("{subject}") || !template.contains("{channel}") {
            return Err("must name {subject} and {channel}".into());
        }
        Ok(())
    }

    fn url(&self, subject: &str, read: &ChannelRead<'_>) -> String {
        let encode = |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
        self.url_template
            .replace("{subject}", &encode(subject))
            .replace(
                "{domain}",
                &read.domain.map(|d| d.to_string()).unwrap_or_default(),
            )
            .replace("{channel}", &read.channel.to_string())
            .replace("{subtopic}", &encode(read.subtopic))
            .replace("{name}", &encode(read.name))
            .replace("{format}", read.table.unwrap_or("messages"))
            .replace("{action}", "read")
    }
}

#[async_trait]
impl ChannelAccess for PolicyAccess {
    async fn may_read(&self, caller: &Caller<'_>, read: &ChannelRead<'_>) -> Result<bool, AccessError> {
        let answer = self
            .http
            .get(self.url(caller.subject, read))
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(unavailable)?;
        decide(answer.status().as_u16(), "policy endpoint")
    }
}

/// Every channel allowed: `CHANNEL_ACCESS=off`, for single-tenant deployments.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenAccess;

#[async_trait]
impl ChannelAccess for OpenAccess {
    async fn may_read(&self, _: &Caller<'_>, _: &ChannelRead<'_>) -> Result<bool, AccessError> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_template_fills_its_placeholders_encoded() {
        let access = PolicyAccess::new(
            "https://auth.example/check?s={subject}&c={channel}&t={subtopic}&n={name}&a={action}",
            Secret::new("t"),
        )
        .expect("a client");
        let read = ChannelRead {
            domain: None,
            channel: uuid::Uuid::nil(),
            subtopic: "events.data",
            name: "urn:dev:a b",
            table: None,
        };
        assert_eq!(
            access.url("alice&x=1", &read),
            "https://auth.example/check?s=alice%26x%3D1&c=00000000-0000-0000-0000-000000000000&t=events.data&n=urn%3Adev%3Aa+b&a=read"
        );
        assert!(PolicyAccess::check_template("https://a.example/{subject}/{channel}").is_ok());
        assert!(PolicyAccess::check_template("https://a.example/{channel}").is_err());
        assert!(PolicyAccess::check_template("ftp://a.example/{subject}/{channel}").is_err());
    }

    #[test]
    fn only_a_clear_no_is_a_denial() {
        assert!(decide(204, "reader").expect("decided"));
        assert!(!decide(403, "reader").expect("decided"));
        assert!(!decide(401, "reader").expect("decided"));
        assert!(
            decide(401, "policy endpoint").is_err(),
            "the service's own token refused"
        );
        assert!(decide(500, "reader").is_err());
        assert!(decide(429, "policy endpoint").is_err());
    }
}
