//! What a request is validated against: size limits and the hosts webhook targets may name,
//! both configurable per deployment.

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

/// Hosts a chat webhook target may name (spec section 8): the official ones by default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookHosts {
    pub slack: Vec<String>,
    pub discord: Vec<String>,
}

impl Default for WebhookHosts {
    fn default() -> Self {
        Self {
            slack: vec!["hooks.slack.com".into()],
            discord: vec!["discord.com".into(), "discordapp.com".into()],
        }
    }
}

/// What a request is validated against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub limits: Limits,
    pub webhook_hosts: WebhookHosts,
}
