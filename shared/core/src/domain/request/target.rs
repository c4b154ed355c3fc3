//! Where a message goes, parsed once: an email address, a Telegram chat, or a Slack or Discord
//! webhook URL. The validator turns a message's `target` into a [`Target`]; the mail and chat
//! adapters take the parsed value and never parse a string again. Whether a webhook's host is
//! allowed is a deployment's policy ([`WebhookHosts`]), checked at create time and again by the
//! chat adapter before every post (the list may have changed since).

use std::fmt;

use super::{Medium, WebhookHosts};

/// An email address as SMTP takes it: `local@domain`, no display name, no spaces or separators.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// A value read back from storage, not judged again by today's rules.
    pub(crate) fn stored(text: String) -> Self {
        Self(text)
    }

    /// Fails with a message for the caller when `text` is not a plain address.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (local, domain) = text.rsplit_once('@').unwrap_or_default();
        let ok = !local.is_empty()
            && local.len() <= 64
            && text.len() <= 254
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && !text
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err("must be an email address such as ops@example.com for medium `email`".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the `@`.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, domain)| domain)
    }
}

/// A Telegram chat: a numeric id (`-1001234567890`) or a public `@channelname`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TelegramChat(String);

impl TelegramChat {
    /// A value read back from storage, not judged again by today's rules.
    pub(crate) fn stored(text: String) -> Self {
        Self(text)
    }

    /// Fails with a message for the caller when `text` is neither form.
    pub fn parse(text: &str) -> Result<Self, String> {
        let numeric = text.strip_prefix('-').unwrap_or(text);
        let is_id = !numeric.is_empty() && numeric.len() <= 20 && numeric.bytes().all(|b| b.is_ascii_digit());
        let is_channel = text.strip_prefix('@').is_some_and(|n| {
            (5..=32).contains(&n.len()) && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if is_id || is_channel {
            Ok(Self(text.to_owned()))
        } else {
            Err(
                "must be a Telegram chat id (such as -1001234567890) or @channelname for medium `telegram`"
                    .into(),
            )
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A webhook URL: `https` (or `http` on a loopback host, for local runs), without credentials.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    /// A value read back from storage: only parsed as a URL, not judged again by today's rules.
    pub(crate) fn stored(text: &str) -> Result<Self, url::ParseError> {
        url::Url::parse(text).map(Self)
    }

    /// Fails with a message naming `example` when `text` is not such a URL.
    pub fn parse(text: &str, example: &str) -> Result<Self, String> {
        let url = url::Url::parse(text).map_err(|_| format!("must be a webhook URL such as {example}"))?;
        let host = url.host_str().unwrap_or_default();
        let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
        let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
        if !scheme_ok || !url.username().is_empty() || url.password().is_some() || host.is_empty() {
            return Err(format!("must be an https webhook URL such as {example}"));
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }

    /// The URL with a query parameter added (Discord's `wait=true`).
    pub fn with_query(&self, name: &str, value: &str) -> String {
        let mut url = self.0.clone();
        url.query_pairs_mut().append_pair(name, value);
        url.into()
    }
}

/// Webhook URLs carry their secret in the path: never print one whole.
impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({}/***)", self.host())
    }
}

/// Where one message goes, for its medium.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Email(EmailAddress),
    Telegram(TelegramChat),
    Slack(WebhookUrl),
    Discord(WebhookUrl),
}

impl Target {
    /// Parses a `target` for `medium`; a webhook's host must be in `hosts` (`None`: not checked,
    /// for a deployment's own defaults, which the chat adapter checks before posting).
    pub fn parse(medium: Medium, text: &str, hosts: Option<&WebhookHosts>) -> Result<Self, String> {
        let target = match medium {
            Medium::Email => Self::Email(EmailAddress::parse(text)?),
            Medium::Telegram => Self::Telegram(TelegramChat::parse(text)?),
            Medium::Slack => Self::Slack(WebhookUrl::parse(text, crate::domain::media::of(medium).example)?),
            Medium::Discord => {
                Self::Discord(WebhookUrl::parse(text, crate::domain::media::of(medium).example)?)
            }
        };
        if let Some(hosts) = hosts {
            target.allowed_by(hosts)?;
        }
        Ok(target)
    }

    /// The medium this target belongs to.
    pub fn medium(&self) -> Medium {
        match self {
            Self::Email(_) => Medium::Email,
            Self::Telegram(_) => Medium::Telegram,
            Self::Slack(_) => Medium::Slack,
            Self::Discord(_) => Medium::Discord,
        }
    }

    /// The target as the caller wrote it (normalised for URLs).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Email(address) => address.as_str(),
            Self::Telegram(chat) => chat.as_str(),
            Self::Slack(url) | Self::Discord(url) => url.as_str(),
        }
    }

    /// Checks a webhook's host against the allowed ones; other targets always pass.
    pub fn allowed_by(&self, hosts: &WebhookHosts) -> Result<(), String> {
        let url = match self {
            Self::Slack(url) | Self::Discord(url) => url,
            Self::Email(_) | Self::Telegram(_) => return Ok(()),
        };
        let allowed = hosts.of(self.medium());
        let host = url.host();
        if allowed.iter().any(|a| a.eq_ignore_ascii_case(host)) {
            Ok(())
        } else {
            Err(format!(
                "must be a {} webhook on an allowed host ({}); `{host}` is not allowed",
                self.medium().as_str(),
                allowed.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_targets_must_be_on_an_allowed_host() {
        let default_hosts = WebhookHosts::default();
        let hosts = Some(&default_hosts);
        assert!(Target::parse(Medium::Slack, "https://hooks.slack.com/services/T/B/X", hosts).is_ok());
        assert!(Target::parse(Medium::Slack, "https://evil.example/services/T/B/X", hosts).is_err());
        assert!(Target::parse(Medium::Discord, "http://discord.com/api/webhooks/1/x", hosts).is_err());
        assert!(Target::parse(Medium::Email, "not-an-email", hosts).is_err());
        assert!(Target::parse(Medium::Telegram, "-1001234567890", hosts).is_ok());
    }

    #[test]
    fn a_parsed_target_knows_its_medium_and_reads_back_as_written() {
        let slack =
            Target::parse(Medium::Slack, "https://hooks.slack.com/services/T/B/X", None).expect("valid");
        assert_eq!(slack.medium(), Medium::Slack);
        assert_eq!(slack.as_str(), "https://hooks.slack.com/services/T/B/X");
        let mail = Target::parse(Medium::Email, "ops@example.com", None).expect("valid");
        assert!(matches!(&mail, Target::Email(a) if a.domain() == "example.com"));
        assert!(Target::parse(Medium::Telegram, "@ab", None).is_err());
        assert!(Target::parse(Medium::Slack, "https://user:pw@hooks.slack.com/x", None).is_err());
        assert!(Target::parse(Medium::Slack, "http://127.0.0.1:9/x", None).is_ok());
    }

    #[test]
    fn a_webhook_url_never_prints_its_secret_path() {
        let url = WebhookUrl::parse("https://hooks.slack.com/services/T/B/SECRET", "x").expect("valid");
        assert!(!format!("{url:?}").contains("SECRET"));
        let discord =
            WebhookUrl::parse("https://discord.com/api/webhooks/1/x?thread_id=5", "x").expect("valid");
        assert_eq!(
            discord.with_query("wait", "true"),
            "https://discord.com/api/webhooks/1/x?thread_id=5&wait=true"
        );
    }
}
