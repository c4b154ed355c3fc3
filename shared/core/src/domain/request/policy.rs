//! What a request is validated against, configurable per deployment: size limits, the shortest
//! periodicity, the hosts webhook targets may name, and who messages may go to.

use super::target::Target;
use super::{Medium, Message, Problem};
use crate::domain::dialect::Dialect;

/// Size limits of a request; configurable per deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_items: usize,
    pub max_columns: usize,
    pub max_messages: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_items: 100,
            max_columns: 32,
            max_messages: 20,
        }
    }
}

/// Hosts a chat webhook target may name (spec section 8), by medium: each webhook medium's
/// official ones (`domain::media`) unless the operator says otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookHosts {
    hosts: Vec<(Medium, Vec<String>)>,
}

impl WebhookHosts {
    /// The hosts `medium`'s webhooks may name (none for a medium without webhooks).
    pub fn of(&self, medium: Medium) -> &[String] {
        self.hosts
            .iter()
            .find(|(m, _)| *m == medium)
            .map_or(&[], |(_, hosts)| hosts.as_slice())
    }

    /// These hosts, `hosts` for `medium`.
    pub fn with(mut self, medium: Medium, hosts: Vec<String>) -> Self {
        self.hosts.retain(|(m, _)| *m != medium);
        self.hosts.push((medium, hosts));
        self
    }
}

impl Default for WebhookHosts {
    fn default() -> Self {
        Self {
            hosts: crate::domain::media::MEDIA
                .iter()
                .filter(|m| !m.webhook_hosts.is_empty())
                .map(|m| {
                    (
                        m.medium,
                        m.webhook_hosts.iter().map(|h| (*h).to_owned()).collect(),
                    )
                })
                .collect(),
        }
    }
}

/// What a request is validated against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub limits: Limits,
    pub webhook_hosts: WebhookHosts,
    /// The shortest periodicity a recurring export may have, in seconds (at least 60).
    pub min_periodicity_seconds: u64,
    /// How the platform's reader speaks: whether items name a domain, how subtopics are
    /// written, whether a message table may be chosen.
    pub dialect: Dialect,
    /// The separator of subtopic tokens when not the dialect's (Magistrala v0.15 to v0.19
    /// still stored `.`).
    pub subtopic_separator: Option<char>,
}

impl Policy {
    /// What separates subtopic tokens on this deployment's reader.
    pub fn subtopic_separator(&self) -> char {
        self.subtopic_separator
            .unwrap_or_else(|| self.dialect.subtopic_separator())
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            webhook_hosts: WebhookHosts::default(),
            min_periodicity_seconds: 60,
            dialect: Dialect::default(),
            subtopic_separator: None,
        }
    }
}

/// Who messages may go to besides the caller's own email address: the operator's allow-lists.
/// Slack and Discord targets answer to [`WebhookHosts`] instead.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recipients {
    /// Email addresses (`ops@example.com`) and domains (`example.com`: every address at it).
    pub emails: Vec<String>,
    /// Telegram chats (`-1001234567890`, `@channel`); the deployment's default chat is one.
    pub telegram_chats: Vec<String>,
}

impl Recipients {
    /// Whether a message may go to `target` for a caller whose email claim is `caller_email`.
    /// Fails with a message for the caller naming the rule.
    pub fn allows(&self, target: &Target, caller_email: Option<&str>) -> Result<(), String> {
        match target {
            Target::Email(address) => {
                let own = caller_email.is_some_and(|own| own.eq_ignore_ascii_case(address.as_str()));
                let listed = self.emails.iter().any(|allowed| {
                    let allowed = allowed.trim_start_matches('@');
                    if allowed.contains('@') {
                        allowed.eq_ignore_ascii_case(address.as_str())
                    } else {
                        allowed.eq_ignore_ascii_case(address.domain())
                    }
                });
                if own || listed {
                    Ok(())
                } else {
                    Err("must be your own email address or one this deployment allows (EMAIL_ALLOWED_RECIPIENTS); leave `target` out to send to your own".into())
                }
            }
            Target::Telegram(chat) => {
                if self.telegram_chats.iter().any(|c| c == chat.as_str()) {
                    Ok(())
                } else {
                    Err("must be a Telegram chat this deployment allows (TELEGRAM_ALLOWED_CHATS); leave `target` out for the default chat".into())
                }
            }
            Target::Slack(_) | Target::Discord(_) => Ok(()),
        }
    }

    /// Every message whose target is not allowed, at its pointer.
    pub fn check(&self, messages: &[Message], caller_email: Option<&str>) -> Vec<Problem> {
        messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                let target = m.target.as_ref()?;
                self.allows(target, caller_email)
                    .err()
                    .map(|e| Problem::new(format!("/notification/messages/{i}/target"), e))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::request::Medium;

    fn target(medium: Medium, text: &str) -> Target {
        Target::parse(medium, text, None).expect("a target")
    }

    #[test]
    fn email_goes_to_the_caller_and_to_allowed_addresses_and_domains_only() {
        let recipients = Recipients {
            emails: vec![
                "ops@example.com".into(),
                "example.org".into(),
                "@example.net".into(),
            ],
            telegram_chats: vec!["-100123".into()],
        };
        let me = Some("Me@Home.example");
        for allowed in [
            "me@home.example",
            "OPS@example.com",
            "anyone@example.org",
            "x@example.net",
        ] {
            assert!(
                recipients.allows(&target(Medium::Email, allowed), me).is_ok(),
                "{allowed}"
            );
        }
        for refused in [
            "victim@elsewhere.example",
            "ops@example.com.evil.example",
            "a@sub.example.org",
        ] {
            assert!(
                recipients.allows(&target(Medium::Email, refused), me).is_err(),
                "{refused}"
            );
        }
        assert!(recipients
            .allows(&target(Medium::Email, "me@home.example"), None)
            .is_err());
        assert!(recipients
            .allows(&target(Medium::Telegram, "-100123"), me)
            .is_ok());
        assert!(recipients
            .allows(&target(Medium::Telegram, "-100999"), me)
            .is_err());
    }
}
