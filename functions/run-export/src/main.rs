//! Composition root of run-export: its configuration (`config.rs`) wired to the adapters.

use exporter_adapters::access::{checker, AccessMode};
use exporter_adapters::dynamodb::DynamoStore;
use exporter_adapters::lambda::LambdaLauncher;
use exporter_adapters::reader::HttpReader;
use exporter_adapters::s3::S3Files;
use exporter_adapters::scheduler::EventBridgeSchedules;
use exporter_core::domain::RunEvent;
use exporter_core::ports::SystemClock;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use run_export::config::{policy_token, reader_token, Environment};
use run_export::{handle, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = exporter_adapters::telemetry::init("run-export");
    let telemetry = &telemetry;
    let env = Environment::from_env()?;
    let run_config = env.run;
    let aws = exporter_adapters::aws_config().await;
    let ssm = aws_sdk_ssm::Client::new(&aws);
    let settings = env.reader;
    let mut reader = HttpReader::new(settings.url, reader_token(&ssm).await?)?
        .with_dialect(settings.dialect)
        .with_credential_scheme(settings.scheme);
    if let Some(limit) = settings.page_limit {
        reader = reader.with_page_limit(limit);
    }
    let reader = reader
        .with_max_page_bytes(settings.page_max_bytes)
        .with_max_in_flight(settings.max_in_flight)
        .with_max_pages_held(settings.pages_held);
    // Only a policy endpoint can answer for the owner without their credential: then every run
    // re-checks; otherwise access was checked when the export was created.
    let access = match env.access {
        AccessMode::Policy { .. } => Some(checker(
            env.access,
            "",
            policy_token(&ssm).await?,
            settings.dialect,
        )?),
        _ => None,
    };
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), env.stores.table);
    let schedules = EventBridgeSchedules::new(aws_sdk_scheduler::Client::new(&aws), env.schedules);
    let files = S3Files::new(S3Files::client(&aws, env.stores.path_style), env.stores.bucket)
        .with_part_size(env.part_bytes);
    let lambda = aws_sdk_lambda::Client::new(&aws);
    let notifier = LambdaLauncher::new(lambda.clone(), env.notify_function);
    // Itself: continuations, item runs and missed occurrences run in invocations of their own.
    let launcher = LambdaLauncher::new(lambda, env.run_export_function);
    let clock = SystemClock;
    let deps = Deps {
        exports: &store,
        runs: &store,
        ledger: &store,
        ends: &store,
        items: &store,
        spread: &store,
        history: &store,
        budgets: &store,
        schedules: &schedules,
        launcher: &launcher,
        reader: &reader,
        files: &files,
        pieces: &files,
        uploads: &files,
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
        let properties = [
            ("exportId", event.payload.export_id.to_string()),
            ("jobId", event.payload.job_id()),
        ];
        let ran = handle(deps, event.payload).await;
        telemetry.flush(&event.context.request_id, &properties);
        ran
    }))
    .await
}
