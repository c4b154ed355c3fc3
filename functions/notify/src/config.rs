//! notify's configuration: every variable it reads, read once at cold start and failing there
//! naming the variable. Optional parts (a default webhook, Telegram) whose secret is not set up
//! are off, said at cold start; email and the other media go on.

use std::time::Duration;

use exporter_adapters::config::{
    optional, parsed_or, recipients, required, stores, webhook_hosts, ConfigError, Stores,
};
use exporter_adapters::ssm::{link_signer, optional_secret};
use exporter_adapters::support::{Retry, Secret};
use exporter_core::domain::link::LinkSigner;
use exporter_core::domain::request::{Medium, Recipients, Target, WebhookHosts};

/// Everything the composition root wires from the environment.
pub struct Environment {
    /// `TABLE_NAME`, `BUCKET_NAME`, `S3_FORCE_PATH_STYLE`.
    pub stores: Stores,
    /// `EMAIL_FROM`: the sender of every email.
    pub sender: String,
    /// `SES_CONFIGURATION_SET`: the configuration set every email is sent with (its bounces and
    /// complaints are metrics the template alarms on); none when unset.
    pub configuration_set: Option<String>,
    /// `PUBLIC_API_URL`: where the messages' signed links point.
    pub public_api: String,
    /// `TELEGRAM_API_URL` (Telegram's own by default).
    pub telegram_api: String,
    /// `SLACK_ALLOWED_HOSTS`, `DISCORD_ALLOWED_HOSTS`.
    pub webhook_hosts: WebhookHosts,
    pub notify: NotifyConfig,
}

impl Environment {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            stores: stores()?,
            sender: required("EMAIL_FROM")?,
            configuration_set: optional("SES_CONFIGURATION_SET"),
            public_api: required("PUBLIC_API_URL")?,
            telegram_api: optional("TELEGRAM_API_URL").unwrap_or_else(|| "https://api.telegram.org".into()),
            webhook_hosts: webhook_hosts(),
            notify: NotifyConfig::from_env()?,
        })
    }

    /// The secrets kept in SSM: the link keys (required), the default webhooks and Telegram's
    /// bot token (optional parts). Returns the bot token.
    pub async fn read_secrets(&mut self, ssm: &aws_sdk_ssm::Client) -> Result<Option<Secret>, ConfigError> {
        self.notify.links = Some(Links {
            base_url: self.public_api.clone(),
            signer: link_signer(ssm).await?,
        });
        let slack = optional_secret(
            ssm,
            "SLACK_DEFAULT_WEBHOOK",
            "SLACK_DEFAULT_WEBHOOK_PARAMETER",
            "the default Slack webhook",
        )
        .await?;
        self.notify.slack_default = default_target(
            "SLACK_DEFAULT_WEBHOOK_PARAMETER",
            Medium::Slack,
            slack.as_ref().map(Secret::expose),
        )?;
        let discord = optional_secret(
            ssm,
            "DISCORD_DEFAULT_WEBHOOK",
            "DISCORD_DEFAULT_WEBHOOK_PARAMETER",
            "the default Discord webhook",
        )
        .await?;
        self.notify.discord_default = default_target(
            "DISCORD_DEFAULT_WEBHOOK_PARAMETER",
            Medium::Discord,
            discord.as_ref().map(Secret::expose),
        )?;
        optional_secret(
            ssm,
            "TELEGRAM_BOT_TOKEN",
            "TELEGRAM_BOT_TOKEN_PARAMETER",
            "Telegram",
        )
        .await
    }
}

/// Where the download links of messages point: the API's link route, signed.
#[derive(Clone, Debug)]
pub struct Links {
    /// The API's public base URL (`https://api.example.com`).
    pub base_url: String,
    pub signer: LinkSigner,
}

/// Settings of notify.
#[derive(Clone, Debug)]
pub struct NotifyConfig {
    /// Files up to this size are attached to emails (before base64, which adds a third).
    pub attachment_max_bytes: u64,
    /// How long the download link in a message is valid (capped by the files' expiry).
    pub link_ttl: Duration,
    /// The signed links of messages; `None` leaves messages without a link.
    pub links: Option<Links>,
    pub retry: Retry,
    /// Targets used when a message names none.
    pub slack_default: Option<Target>,
    pub discord_default: Option<Target>,
    pub telegram_default: Option<Target>,
    /// Who messages may go to besides the export owner's address (checked again before sending:
    /// a record stored before the rule, or a list since narrowed, relays nothing).
    pub recipients: Recipients,
    /// Messages an owner's exports may send in a UTC day; past it, they are recorded not sent.
    pub max_messages_per_day: u32,
    /// How long a run holds a message it is sending: longer than the function's timeout, so
    /// that only a run that is surely over (crashed, timed out) leaves it to a retry.
    pub claim: chrono::TimeDelta,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            // SES caps a message at 40 MB; 7 MiB stays under 10 MB once base64-encoded.
            attachment_max_bytes: 7 * 1024 * 1024,
            link_ttl: Duration::from_secs(7 * 24 * 3600),
            links: None,
            retry: Retry {
                attempts: 5,
                base: Duration::from_millis(500),
                cap: Duration::from_secs(20),
            },
            slack_default: None,
            discord_default: None,
            telegram_default: None,
            recipients: Recipients::default(),
            max_messages_per_day: 1000,
            claim: chrono::TimeDelta::seconds(330),
        }
    }
}

impl NotifyConfig {
    /// Reads `ATTACHMENT_MAX_BYTES`, `LINK_TTL_SECONDS`, `DELIVERY_CLAIM_SECONDS` and the default
    /// targets, each falling back to its default.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            attachment_max_bytes: parsed_or("ATTACHMENT_MAX_BYTES", defaults.attachment_max_bytes)?,
            link_ttl: Duration::from_secs(parsed_or("LINK_TTL_SECONDS", defaults.link_ttl.as_secs())?),
            links: None,
            retry: defaults.retry,
            // Webhook URLs are secrets (whoever has one may post): read from SSM by the
            // composition root, see `default_target`.
            slack_default: None,
            discord_default: None,
            telegram_default: default_target(
                "TELEGRAM_DEFAULT_CHAT",
                Medium::Telegram,
                optional("TELEGRAM_DEFAULT_CHAT").as_deref(),
            )?,
            recipients: recipients(),
            max_messages_per_day: parsed_or("MAX_MESSAGES_PER_DAY", defaults.max_messages_per_day)?,
            claim: chrono::TimeDelta::seconds(parsed_or(
                "DELIVERY_CLAIM_SECONDS",
                defaults.claim.num_seconds(),
            )?),
        })
    }
}

/// A configured default target (the value of `name`, or of the SSM parameter it names),
/// parsed at cold start; a webhook's host is checked before each post.
pub fn default_target(
    name: &'static str,
    medium: Medium,
    text: Option<&str>,
) -> Result<Option<Target>, ConfigError> {
    text.map(|text| {
        Target::parse(medium, text, None).map_err(|reason| ConfigError::Malformed { name, reason })
    })
    .transpose()
}
