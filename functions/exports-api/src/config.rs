//! The API's configuration: every variable it reads, read once at cold start and failing there
//! naming the variable; the shared defaults in `exporter_core::domain::defaults`.

use exporter_adapters::access::AccessMode;
use exporter_adapters::config::{
    credential_scheme, flag, optional, parsed_or, reader_dialect, recipients, required, retention,
    schedule_settings, stores, subtopic_separator, webhook_hosts, ConfigError, Stores,
};
use exporter_adapters::scheduler::ScheduleSettings;
use exporter_adapters::ssm::{link_signer, secret, SsmLinkKeys};
use exporter_adapters::support::Secret;
use exporter_core::domain::defaults;
use exporter_core::domain::dialect::CredentialScheme;
use exporter_core::domain::request::{Limits, Recipients};
use exporter_core::domain::Policy;

use crate::Links;

/// Everything the composition root wires from the environment.
pub struct Environment {
    /// `TABLE_NAME`, `BUCKET_NAME`, `S3_FORCE_PATH_STYLE`.
    pub stores: Stores,
    /// `RUN_EXPORT_FUNCTION`: what a one-time export's create launches.
    pub run_export_function: String,
    /// `READER_URL`: asked whether a caller may read a channel (`CHANNEL_ACCESS=reader`), and
    /// read by a preview.
    pub reader_url: String,
    /// `READER_CREDENTIAL_SCHEME`, `READER_PAGE_LIMIT`: how a preview reads its page.
    pub reader_scheme: CredentialScheme,
    pub reader_page_limit: Option<u32>,
    /// `CHANNEL_ACCESS`, `ACCESS_POLICY_URL`.
    pub access: AccessMode,
    pub schedules: ScheduleSettings,
    pub api: ApiConfig,
}

impl Environment {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            stores: stores()?,
            run_export_function: required("RUN_EXPORT_FUNCTION")?,
            reader_url: required("READER_URL")?,
            reader_scheme: credential_scheme(reader_dialect()?)?,
            reader_page_limit: match optional("READER_PAGE_LIMIT") {
                Some(_) => Some(parsed_or("READER_PAGE_LIMIT", 1000)?),
                None => None,
            },
            access: AccessMode::from_env()?,
            schedules: schedule_settings()?,
            api: ApiConfig::from_env()?,
        })
    }

    /// The policy endpoint's credential, when access is decided by one:
    /// `ACCESS_POLICY_TOKEN_PARAMETER` or `ACCESS_POLICY_TOKEN`.
    pub async fn policy_token(&self, ssm: &aws_sdk_ssm::Client) -> Result<Option<Secret>, ConfigError> {
        match self.access {
            AccessMode::Policy { .. } => {
                secret(ssm, "ACCESS_POLICY_TOKEN", "ACCESS_POLICY_TOKEN_PARAMETER").await
            }
            _ => Ok(None),
        }
    }

    /// The service's reader credential, for a preview: `READER_TOKEN_PARAMETER` (an SSM
    /// SecureString) or, locally, `READER_TOKEN`.
    pub async fn reader_token(&self, ssm: &aws_sdk_ssm::Client) -> Result<Secret, ConfigError> {
        secret(ssm, "READER_TOKEN", "READER_TOKEN_PARAMETER")
            .await?
            .ok_or(ConfigError::Missing("READER_TOKEN_PARAMETER"))
    }

    /// The link keys (`LINK_SIGNING_KEYS_PARAMETER`, or `LINK_SIGNING_KEYS` locally), re-read
    /// from their parameter when a link signed by a newer key arrives.
    pub async fn links(&self, ssm: &aws_sdk_ssm::Client) -> Result<Links, ConfigError> {
        let keys = link_signer(ssm).await?;
        Ok(match SsmLinkKeys::from_env(ssm) {
            Some(source) => Links::kept_in(keys, std::sync::Arc::new(source)),
            None => Links::fixed(keys),
        })
    }
}

/// Settings of the API, read once at cold start.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub policy: Policy,
    /// Largest accepted body; larger ones are answered `413`.
    pub max_body_bytes: usize,
    /// Exports a user may have queued or scheduled at once; more are answered `429`.
    pub max_queued_per_user: u32,
    /// Read the caller from the `x-local-identity` header when no authorizer ran (local only).
    pub local_identity: bool,
    /// How long a download link stays valid.
    pub download_url_ttl: std::time::Duration,
    /// Who messages may go to besides the caller's own address.
    pub recipients: Recipients,
    /// Verifies the signed links of messages (`GET /links/...`); `None` answers them `404`.
    pub links: Option<std::sync::Arc<Links>>,
    /// How long a deleted export's record is kept (then DynamoDB's TTL removes it).
    pub retention: chrono::TimeDelta,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            max_body_bytes: 256 * 1024,
            max_queued_per_user: 100,
            local_identity: false,
            download_url_ttl: std::time::Duration::from_secs(3600),
            recipients: Recipients::default(),
            links: None,
            retention: defaults::RETENTION,
        }
    }
}

impl ApiConfig {
    /// Reads the limits, webhook hosts, quota, body limit, link validity and `LOCAL_IDENTITY`,
    /// each falling back to its default.
    pub fn from_env() -> Result<Self, ConfigError> {
        let default = Self::default();
        let limits = default.policy.limits;
        Ok(Self {
            policy: Policy {
                limits: Limits {
                    max_items: parsed_or("MAX_ITEMS", limits.max_items)?,
                    max_columns: parsed_or("MAX_COLUMNS", limits.max_columns)?,
                    max_messages: parsed_or("MAX_MESSAGES", limits.max_messages)?,
                },
                webhook_hosts: webhook_hosts(),
                min_periodicity_seconds: parsed_or(
                    "MIN_PERIODICITY_SECONDS",
                    default.policy.min_periodicity_seconds,
                )?,
                dialect: reader_dialect()?,
                subtopic_separator: subtopic_separator()?,
            },
            max_body_bytes: parsed_or("MAX_BODY_BYTES", default.max_body_bytes)?,
            max_queued_per_user: parsed_or("MAX_QUEUED_EXPORTS_PER_USER", default.max_queued_per_user)?,
            local_identity: flag("LOCAL_IDENTITY"),
            download_url_ttl: std::time::Duration::from_secs(parsed_or(
                "DOWNLOAD_URL_SECONDS",
                default.download_url_ttl.as_secs(),
            )?),
            recipients: recipients(),
            links: None,
            retention: retention()?,
        })
    }
}
