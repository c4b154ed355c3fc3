//! The media a message goes through, registered once: what the request calls each, how long its
//! text may be, and, for a webhook medium, the hosts its webhooks live on unless the operator
//! says otherwise (and the variable that says so). A new chat medium is a variant of
//! [`Medium`], an entry here, its target's parsing in `request::target`, and a module of its
//! own in the chat adapter (its message's shape); every match on a medium is exhaustive.

/// Through what a message is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Medium {
    Email,
    Telegram,
    Slack,
    Discord,
}

impl Medium {
    /// As the request names it.
    pub fn as_str(self) -> &'static str {
        of(self).name
    }
}

/// A registered medium.
#[derive(Debug)]
pub struct MediumSpec {
    pub medium: Medium,
    /// As the request names it (`notification.messages[].medium`).
    pub name: &'static str,
    /// The most characters a message's text holds (Discord's content, Telegram's text, Slack's
    /// text field; an email's text has no practical limit).
    pub max_chars: usize,
    /// A webhook medium's official hosts (empty: not a webhook medium).
    pub webhook_hosts: &'static [&'static str],
    /// What a target of the medium looks like, for messages that refuse one.
    pub example: &'static str,
}

/// Every medium, as requests name them.
pub static MEDIA: [MediumSpec; 4] = [
    MediumSpec {
        medium: Medium::Email,
        name: "email",
        max_chars: 1_000_000,
        webhook_hosts: &[],
        example: "ops@example.com",
    },
    MediumSpec {
        medium: Medium::Telegram,
        name: "telegram",
        max_chars: 4096,
        webhook_hosts: &[],
        example: "-1001234567890",
    },
    MediumSpec {
        medium: Medium::Slack,
        name: "slack",
        max_chars: 40_000,
        webhook_hosts: &["hooks.slack.com"],
        example: "https://hooks.slack.com/services/...",
    },
    MediumSpec {
        medium: Medium::Discord,
        name: "discord",
        max_chars: 2000,
        webhook_hosts: &["discord.com", "discordapp.com"],
        example: "https://discord.com/api/webhooks/...",
    },
];

/// The registered medium `medium`.
pub fn of(medium: Medium) -> &'static MediumSpec {
    match MEDIA.iter().find(|m| m.medium == medium) {
        Some(spec) => spec,
        // Every variant is registered (a test holds to it): the first stands in.
        None => &MEDIA[0],
    }
}

/// The medium a request names `name`, if any.
pub fn named(name: &str) -> Option<Medium> {
    MEDIA.iter().find(|m| m.name == name).map(|m| m.medium)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_medium_is_registered_once_under_its_own_name() {
        for medium in [Medium::Email, Medium::Telegram, Medium::Slack, Medium::Discord] {
            let spec = of(medium);
            assert_eq!(spec.medium, medium);
            assert_eq!(named(spec.name), Some(medium));
            assert_eq!(MEDIA.iter().filter(|m| m.name == spec.name).count(), 1);
        }
        assert_eq!(named("teams"), None);
        assert!(of(Medium::Slack).webhook_hosts.contains(&"hooks.slack.com"));
        assert!(of(Medium::Telegram).webhook_hosts.is_empty());
    }
}
