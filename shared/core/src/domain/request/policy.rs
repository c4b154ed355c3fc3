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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub limits: Limits,
    /// `None` trusts every webhook host: only for re-reading requests the service stored itself.
    pub webhook_hosts: Option<WebhookHosts>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            webhook_hosts: Some(WebhookHosts::default()),
        }
    }
}

impl Policy {
    /// The policy for requests read back from the store: validated once already at creation,
    /// so limits and host checks (which may have changed since) do not apply again.
    pub fn stored() -> Self {
        Self {
            limits: Limits {
                max_items: usize::MAX,
                max_columns: usize::MAX,
                max_messages: usize::MAX,
            },
            webhook_hosts: None,
        }
    }
}
