//! run-export's configuration: every variable it reads, read once at cold start and failing
//! there naming the variable; each default written once (the shared ones in
//! `exporter_core::domain::defaults`).

use std::path::PathBuf;

use chrono::TimeDelta;
use exporter_adapters::access::AccessMode;
use exporter_adapters::config::{
    catch_up_lateness, credential_scheme, optional, pages_held, parsed_or, reader_dialect, required,
    retention, schedule_settings, stores, ConfigError, Stores,
};
use exporter_adapters::flow::DEFAULT_MAX_IN_FLIGHT;
use exporter_adapters::reader::DEFAULT_PAGE_MAX_BYTES;
use exporter_adapters::scheduler::ScheduleSettings;
use exporter_adapters::ssm::secret;
use exporter_adapters::support::Secret;
use exporter_core::domain::{defaults, CredentialScheme, Dialect};

/// Everything the composition root wires from the environment.
pub struct Environment {
    /// `TABLE_NAME`, `BUCKET_NAME`, `S3_FORCE_PATH_STYLE`.
    pub stores: Stores,
    /// `NOTIFY_FUNCTION`, and `RUN_EXPORT_FUNCTION` (itself: continuations, item runs, missed
    /// occurrences run in invocations of their own).
    pub notify_function: String,
    pub run_export_function: String,
    pub schedules: ScheduleSettings,
    pub run: RunConfig,
    pub reader: ReaderSettings,
    /// `CHANNEL_ACCESS`, `ACCESS_POLICY_URL`.
    pub access: AccessMode,
    /// `UPLOAD_PART_BYTES`: the pieces a file is sent to the store in (S3's minimum at least).
    pub part_bytes: usize,
}

/// How the platform's reader is reached and read.
pub struct ReaderSettings {
    /// `READER_URL`.
    pub url: String,
    /// `READER_DIALECT`, `READER_CREDENTIAL_SCHEME`.
    pub dialect: Dialect,
    pub scheme: CredentialScheme,
    /// `READER_PAGE_LIMIT`: messages a page; the dialect's largest when unset.
    pub page_limit: Option<u32>,
    /// `READER_PAGE_MAX_BYTES`, `READER_MAX_IN_FLIGHT`, and the pages held at once (from the
    /// function's memory).
    pub page_max_bytes: usize,
    pub max_in_flight: usize,
    pub pages_held: usize,
}

impl Environment {
    pub fn from_env() -> Result<Self, ConfigError> {
        let schedules = schedule_settings()?;
        let run = RunConfig {
            settle: TimeDelta::seconds(schedules.settle_seconds),
            ..RunConfig::from_env()?
        };
        let dialect = reader_dialect()?;
        let page_max_bytes = parsed_or("READER_PAGE_MAX_BYTES", DEFAULT_PAGE_MAX_BYTES)?;
        let page_limit = match optional("READER_PAGE_LIMIT") {
            Some(_) => Some(parsed_or("READER_PAGE_LIMIT", dialect.largest_page())?),
            None => None,
        };
        Ok(Self {
            stores: stores()?,
            notify_function: required("NOTIFY_FUNCTION")?,
            run_export_function: required("RUN_EXPORT_FUNCTION")?,
            schedules,
            run,
            reader: ReaderSettings {
                url: required("READER_URL")?,
                dialect,
                scheme: credential_scheme(dialect)?,
                page_limit,
                page_max_bytes,
                max_in_flight: parsed_or("READER_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT)?,
                pages_held: pages_held(page_max_bytes)?,
            },
            access: AccessMode::from_env()?,
            part_bytes: parsed_or("UPLOAD_PART_BYTES", defaults::PART_BYTES)?,
        })
    }
}

/// The service's reader credential: `READER_TOKEN_PARAMETER` (an SSM SecureString) or, locally,
/// `READER_TOKEN`.
pub async fn reader_token(ssm: &aws_sdk_ssm::Client) -> Result<Secret, ConfigError> {
    secret(ssm, "READER_TOKEN", "READER_TOKEN_PARAMETER")
        .await?
        .ok_or(ConfigError::Missing("READER_TOKEN_PARAMETER"))
}

/// The policy endpoint's credential, if any: `ACCESS_POLICY_TOKEN_PARAMETER` or
/// `ACCESS_POLICY_TOKEN`.
pub async fn policy_token(ssm: &aws_sdk_ssm::Client) -> Result<Option<Secret>, ConfigError> {
    secret(ssm, "ACCESS_POLICY_TOKEN", "ACCESS_POLICY_TOKEN_PARAMETER").await
}

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// How long files and job records are kept (S3 lifecycle and DynamoDB TTL).
    pub retention: TimeDelta,
    /// Where temporary files go (Lambda: /tmp); the system default when unset.
    pub work_dir: Option<PathBuf>,
    /// How long an attempt holds its job: longer than the function's timeout, so that only an
    /// attempt that is surely over (crashed, timed out) can be taken over by a retry.
    pub lease: TimeDelta,
    /// Runs an owner's exports may make in a UTC day; past it, runs are recorded failed.
    pub max_runs_per_day: u32,
    /// How late an occurrence whose trigger never came may still run; older ones are recorded
    /// as missed.
    pub lateness: TimeDelta,
    /// How long before the invocation's deadline a run stops reading, to remove its files,
    /// record its job and hand off to notify.
    pub deadline_margin: TimeDelta,
    /// How long after its occurrence a schedule fires (the schedules' settle delay): an
    /// occurrence can still be armed until then.
    pub settle: TimeDelta,
    /// How long one invocation works on a job before it saves a checkpoint and continues in a
    /// fresh one; `None`: until the deadline's margin.
    pub budget: Option<TimeDelta>,
    /// How many times a job may continue; past it, a job out of time fails.
    pub max_legs: u32,
    /// The most rows one item's workbook may hold; a job past it fails as soon as it gets there.
    pub xlsx_max_rows: u64,
    /// The most rows one item's Parquet file may hold (staged like a workbook's rows).
    pub parquet_max_rows: u64,
    /// The most rows of a decimated item's workbook that get a native line chart; 0: none.
    pub xlsx_chart_max_rows: u64,
    /// The most bytes of a file one invocation writes locally before it pauses (its full parts
    /// uploaded) and continues in a fresh one: the function's local storage is bounded by it.
    pub max_local_bytes: u64,
    /// How many items of a job run at once, each in an invocation of its own; 1: a job's items
    /// run one after the other in the job's invocation.
    pub fan_out: u32,
    /// The look of every PDF report: its accent colour and footer, and the key of its logo (a
    /// PNG or JPEG in the exports bucket).
    pub report: ReportLook,
}

/// The operator's look of the PDF reports (`REPORT_COLOUR`, `REPORT_FOOTER`, `REPORT_LOGO_KEY`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportLook {
    pub colour: (u8, u8, u8),
    pub footer: String,
    pub logo_key: Option<String>,
}

impl Default for ReportLook {
    fn default() -> Self {
        Self {
            colour: (31, 119, 180),
            footer: String::new(),
            logo_key: None,
        }
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            retention: defaults::RETENTION,
            work_dir: None,
            lease: TimeDelta::seconds(930),
            max_runs_per_day: 10_000,
            lateness: defaults::CATCH_UP_LATENESS,
            deadline_margin: TimeDelta::seconds(60),
            settle: defaults::SCHEDULE_SETTLE,
            budget: None,
            max_legs: 200,
            xlsx_max_rows: 5_000_000,
            parquet_max_rows: 20_000_000,
            xlsx_chart_max_rows: 10_000,
            fan_out: 4,
            max_local_bytes: 1 << 30,
            report: ReportLook::default(),
        }
    }
}

impl RunConfig {
    /// Reads `RETENTION_DAYS`, `WORK_DIR`, `JOB_LEASE_SECONDS` and `MAX_RUNS_PER_DAY`, each falling back to its default.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            retention: retention()?,
            work_dir: optional("WORK_DIR").map(Into::into),
            lease: TimeDelta::seconds(parsed_or("JOB_LEASE_SECONDS", defaults.lease.num_seconds())?),
            max_runs_per_day: parsed_or("MAX_RUNS_PER_DAY", defaults.max_runs_per_day)?,
            lateness: catch_up_lateness()?,
            deadline_margin: TimeDelta::seconds(parsed_or(
                "RUN_DEADLINE_MARGIN_SECONDS",
                defaults.deadline_margin.num_seconds(),
            )?),
            // Set by `Environment::from_env` from the schedules' settings, which read it.
            settle: defaults.settle,
            budget: optional("RUN_BUDGET_SECONDS")
                .map(|s| s.parse::<i64>().map(TimeDelta::seconds))
                .transpose()
                .map_err(|e| ConfigError::Malformed {
                    name: "RUN_BUDGET_SECONDS",
                    reason: e.to_string(),
                })?,
            max_legs: parsed_or("RUN_MAX_CONTINUATIONS", defaults.max_legs)?,
            xlsx_max_rows: parsed_or("XLSX_MAX_ROWS", defaults.xlsx_max_rows)?,
            parquet_max_rows: parsed_or("PARQUET_MAX_ROWS", defaults.parquet_max_rows)?,
            xlsx_chart_max_rows: parsed_or("XLSX_CHART_MAX_ROWS", defaults.xlsx_chart_max_rows)?,
            fan_out: parsed_or("ITEM_FAN_OUT", defaults.fan_out)?,
            max_local_bytes: parsed_or("RUN_MAX_LOCAL_BYTES", defaults.max_local_bytes)?,
            report: ReportLook {
                colour: match optional("REPORT_COLOUR") {
                    None => defaults.report.colour,
                    Some(text) => exporter_core::render::report::colour(&text).ok_or(ConfigError::Malformed {
                        name: "REPORT_COLOUR",
                        reason: format!("`{text}` is not a colour as #RRGGBB"),
                    })?,
                },
                footer: optional("REPORT_FOOTER").unwrap_or_default(),
                logo_key: match optional("REPORT_LOGO_KEY") {
                    Some(key) if !key.starts_with("branding/") => {
                        return Err(ConfigError::Malformed {
                            name: "REPORT_LOGO_KEY",
                            reason: format!(
                                "`{key}` is not under `branding/` (the function may read only there and under `exports/`)"
                            ),
                        })
                    }
                    key => key,
                },
            },
        })
    }
}
