//! Typed configuration from the environment. Functions read it once at cold start and fail
//! there, naming the variable, rather than on the first request.

use std::str::FromStr;

/// A variable missing or malformed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is malformed: {reason}")]
    Malformed { name: &'static str, reason: String },
}

/// The value of a required variable.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing(name))
}

/// The value of an optional variable; empty counts as unset.
pub fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A parsed optional variable, or its default.
pub fn parsed_or<T: FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match optional(name) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|e: T::Err| ConfigError::Malformed {
            name,
            reason: e.to_string(),
        }),
    }
}

/// A comma-separated list, or its default.
pub fn list_or(name: &'static str, default: Vec<String>) -> Vec<String> {
    match optional(name) {
        None => default,
        Some(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    }
}

/// Sets up JSON logs on stdout for CloudWatch, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .init();
}

/// The run schedules' settings, shared by the functions that arm them.
pub fn schedule_settings() -> Result<crate::scheduler::ScheduleSettings, ConfigError> {
    Ok(crate::scheduler::ScheduleSettings {
        group: required("SCHEDULE_GROUP")?,
        target_arn: required("RUN_EXPORT_ARN")?,
        role_arn: required("SCHEDULER_ROLE_ARN")?,
        dead_letter_arn: optional("SCHEDULE_DLQ_ARN"),
        max_retries: parsed_or("SCHEDULE_MAX_RETRIES", 10)?,
        max_event_age_seconds: parsed_or("SCHEDULE_MAX_EVENT_AGE_SECONDS", 86_400)?,
        settle_seconds: parsed_or(
            "SCHEDULE_SETTLE_SECONDS",
            exporter_core::domain::defaults::SCHEDULE_SETTLE.num_seconds(),
        )?,
    })
}

/// `RETENTION_DAYS`: how long files and records are kept.
pub fn retention() -> Result<chrono::TimeDelta, ConfigError> {
    let days = parsed_or(
        "RETENTION_DAYS",
        exporter_core::domain::defaults::RETENTION.num_days(),
    )?;
    Ok(chrono::TimeDelta::days(days))
}

/// `CATCH_UP_LATENESS_SECONDS`: how late an occurrence that never ran may still run.
pub fn catch_up_lateness() -> Result<chrono::TimeDelta, ConfigError> {
    let seconds = parsed_or(
        "CATCH_UP_LATENESS_SECONDS",
        exporter_core::domain::defaults::CATCH_UP_LATENESS.num_seconds(),
    )?;
    Ok(chrono::TimeDelta::seconds(seconds))
}

/// Where a function's records and files are.
#[derive(Clone, Debug)]
pub struct Stores {
    /// `TABLE_NAME`: the DynamoDB table.
    pub table: String,
    /// `BUCKET_NAME`: the S3 bucket of the files.
    pub bucket: String,
    /// `S3_FORCE_PATH_STYLE`: path-style addressing (local S3 emulators).
    pub path_style: bool,
}

/// `TABLE_NAME`, `BUCKET_NAME` and `S3_FORCE_PATH_STYLE`.
pub fn stores() -> Result<Stores, ConfigError> {
    Ok(Stores {
        table: required("TABLE_NAME")?,
        bucket: required("BUCKET_NAME")?,
        path_style: flag("S3_FORCE_PATH_STYLE"),
    })
}

/// True when `name` is `1` or `true`.
pub fn flag(name: &'static str) -> bool {
    optional(name).is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// The hosts chat webhook targets may name: `SLACK_ALLOWED_HOSTS` and `DISCORD_ALLOWED_HOSTS`,
/// else the official ones.
pub fn webhook_hosts() -> exporter_core::domain::request::WebhookHosts {
    use exporter_core::domain::request::{Medium, WebhookHosts};
    let defaults = WebhookHosts::default();
    let slack = list_or("SLACK_ALLOWED_HOSTS", defaults.of(Medium::Slack).to_vec());
    let discord = list_or("DISCORD_ALLOWED_HOSTS", defaults.of(Medium::Discord).to_vec());
    defaults.with(Medium::Slack, slack).with(Medium::Discord, discord)
}

/// Who messages may go to besides the caller's own address: `EMAIL_ALLOWED_RECIPIENTS`
/// (addresses and domains) and `TELEGRAM_ALLOWED_CHATS`, with `TELEGRAM_DEFAULT_CHAT` allowed too.
pub fn recipients() -> exporter_core::domain::request::Recipients {
    let mut telegram_chats = list_or("TELEGRAM_ALLOWED_CHATS", Vec::new());
    telegram_chats.extend(optional("TELEGRAM_DEFAULT_CHAT"));
    exporter_core::domain::request::Recipients {
        emails: list_or("EMAIL_ALLOWED_RECIPIENTS", Vec::new()),
        telegram_chats,
    }
}

/// `READER_DIALECT`: how the platform's reader speaks (`mainflux`, `magistrala` for Magistrala
/// >= 0.15 and SuperMQ, `connhex`, the default).
pub fn reader_dialect() -> Result<exporter_core::domain::Dialect, ConfigError> {
    match optional("READER_DIALECT") {
        None => Ok(exporter_core::domain::Dialect::default()),
        Some(text) => exporter_core::domain::Dialect::parse(&text).map_err(|reason| ConfigError::Malformed {
            name: "READER_DIALECT",
            reason,
        }),
    }
}

/// `READER_CREDENTIAL_SCHEME`: how the service's reader credential is presented (`Bearer`, the
/// default; `Thing` on Mainflux; `Client` on Magistrala). Fails naming the schemes the
/// dialect's reader takes.
pub fn credential_scheme(
    dialect: exporter_core::domain::Dialect,
) -> Result<exporter_core::domain::CredentialScheme, ConfigError> {
    let Some(text) = optional("READER_CREDENTIAL_SCHEME") else {
        return Ok(exporter_core::domain::CredentialScheme::default());
    };
    let takes = dialect.credential_schemes();
    match exporter_core::domain::CredentialScheme::parse(&text) {
        Some(scheme) if takes.contains(&scheme) => Ok(scheme),
        _ => Err(ConfigError::Malformed {
            name: "READER_CREDENTIAL_SCHEME",
            reason: format!(
                "`{text}` is not a scheme the {dialect} reader takes ({})",
                takes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ),
        }),
    }
}

/// `READER_SUBTOPIC_SEPARATOR`: `.` or `/` when the reader stores subtopics with another
/// separator than its dialect's (Magistrala v0.15 to v0.19 store `.`); unset: the dialect's.
pub fn subtopic_separator() -> Result<Option<char>, ConfigError> {
    match optional("READER_SUBTOPIC_SEPARATOR").as_deref() {
        None => Ok(None),
        Some(".") => Ok(Some('.')),
        Some("/") => Ok(Some('/')),
        Some(other) => Err(ConfigError::Malformed {
            name: "READER_SUBTOPIC_SEPARATOR",
            reason: format!("`{other}` is neither `.` nor `/`"),
        }),
    }
}

/// How many of the largest pages a read may hold at once: half the function's memory
/// (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, in MB, set by Lambda; 1024 when absent) over the largest
/// page (`page_max_bytes`), at least one. Pages of large `stringValue`s or `dataValue`s then fill
/// half the memory at most, never more than the function has.
pub fn pages_held(page_max_bytes: usize) -> Result<usize, ConfigError> {
    let memory_mb: usize = parsed_or("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 1024)?;
    Ok((memory_mb.saturating_mul(1024 * 1024) / 2 / page_max_bytes.max(1)).max(1))
}
