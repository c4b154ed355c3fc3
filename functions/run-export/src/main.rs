//! Composition root of run-export.

use exporter_adapters::access::{checker, AccessMode};
use exporter_adapters::config::{
    self, credential_scheme, flag, optional, parsed_or, reader_dialect, required, schedule_settings,
};
use exporter_adapters::dynamodb::DynamoStore;
use exporter_adapters::flow::DEFAULT_MAX_IN_FLIGHT;
use exporter_adapters::lambda::LambdaLauncher;
use exporter_adapters::reader::{HttpReader, DEFAULT_PAGE_MAX_BYTES};
use exporter_adapters::s3::{S3Files, DEFAULT_PART_BYTES};
use exporter_adapters::scheduler::EventBridgeSchedules;
use exporter_adapters::ssm::secret;
use exporter_core::domain::RunEvent;
use exporter_core::ports::SystemClock;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use run_export::{handle, Deps, RunConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    config::init_tracing();
    let table = required("TABLE_NAME")?;
    let bucket = required("BUCKET_NAME")?;
    let reader_url = required("READER_URL")?;
    let notify_function = required("NOTIFY_FUNCTION")?;
    let settings = schedule_settings()?;
    let part_size = parsed_or("UPLOAD_PART_BYTES", DEFAULT_PART_BYTES)?;
    let run_config = RunConfig {
        settle: chrono::TimeDelta::seconds(settings.settle_seconds),
        part_bytes: part_size,
        ..RunConfig::from_env()?
    };
    let access_mode = AccessMode::from_env()?;
    let dialect = reader_dialect()?;
    let scheme = credential_scheme(dialect)?;

    let aws = exporter_adapters::aws_config().await;
    let ssm = aws_sdk_ssm::Client::new(&aws);
    let reader_token = secret(&ssm, "READER_TOKEN", "READER_TOKEN_PARAMETER")
        .await?
        .ok_or(config::ConfigError::Missing("READER_TOKEN_PARAMETER"))?;
    let mut reader = HttpReader::new(reader_url, reader_token)?
        .with_dialect(dialect)
        .with_credential_scheme(scheme);
    if optional("READER_PAGE_LIMIT").is_some() {
        reader = reader.with_page_limit(parsed_or("READER_PAGE_LIMIT", dialect.largest_page())?);
    }
    let page_max_bytes = parsed_or("READER_PAGE_MAX_BYTES", DEFAULT_PAGE_MAX_BYTES)?;
    let reader = reader
        .with_max_page_bytes(page_max_bytes)
        .with_max_in_flight(parsed_or("READER_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT)?)
        .with_max_pages_held(config::pages_held(page_max_bytes)?);
    // Only a policy endpoint can answer for the owner without their credential: then every run
    // re-checks; otherwise access was checked when the export was created.
    let access = match access_mode {
        AccessMode::Policy { .. } => {
            let token = secret(&ssm, "ACCESS_POLICY_TOKEN", "ACCESS_POLICY_TOKEN_PARAMETER").await?;
            Some(checker(access_mode, "", token, dialect)?)
        }
        _ => None,
    };
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table);
    let schedules = EventBridgeSchedules::new(aws_sdk_scheduler::Client::new(&aws), settings);
    let files =
        S3Files::new(S3Files::client(&aws, flag("S3_FORCE_PATH_STYLE")), bucket).with_part_size(part_size);
    let lambda = aws_sdk_lambda::Client::new(&aws);
    let notifier = LambdaLauncher::new(lambda.clone(), notify_function);
    // Itself: occurrences that passed without their trigger run in invocations of their own.
    let launcher = LambdaLauncher::new(lambda, required("RUN_EXPORT_FUNCTION")?);
    let clock = SystemClock;
    let deps = Deps {
        exports: &store,
        runs: &store,
        ledger: &store,
        items: &store,
        history: &store,
        budgets: &store,
        schedules: &schedules,
        launcher: &launcher,
        reader: &reader,
        files: &files,
        notifier: &notifier,
        access: access.as_deref(),
        clock: &clock,
        config: &run_config,
        stop_at: None,
        deadline: None,
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<RunEvent>| async move {
        let deadline = i64::try_from(event.context.deadline)
            .ok()
            .and_then(chrono::DateTime::from_timestamp_millis);
        let deps = Deps {
            stop_at: run_export::stop_at(deadline, chrono::Utc::now(), run_config.deadline_margin),
            ..deps
        };
        handle(deps, event.payload).await
    }))
    .await
}
