//! Composition root of run-export.

use chrono::TimeDelta;
use exporter::adapters::dynamodb::DynamoStore;
use exporter::adapters::lambda::LambdaLauncher;
use exporter::adapters::reader::HttpReader;
use exporter::adapters::s3::S3Files;
use exporter::adapters::scheduler::EventBridgeSchedules;
use exporter::adapters::ssm::secret;
use exporter::config::{self, flag, optional, parsed_or, required, schedule_settings};
use exporter::domain::RunEvent;
use exporter::ports::SystemClock;
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
    let run_config = RunConfig {
        retention: TimeDelta::days(parsed_or("RETENTION_DAYS", 7)?),
        part_size: parsed_or::<usize>("UPLOAD_PART_BYTES", 8 * 1024 * 1024)?.max(5 * 1024 * 1024),
        work_dir: optional("WORK_DIR").map(Into::into),
        lease: TimeDelta::seconds(parsed_or("JOB_LEASE_SECONDS", 930)?),
    };

    let aws = exporter::adapters::aws_config().await;
    let ssm = aws_sdk_ssm::Client::new(&aws);
    let reader_token = secret(&ssm, "READER_TOKEN", "READER_TOKEN_PARAMETER")
        .await?
        .ok_or(config::ConfigError::Missing("READER_TOKEN_PARAMETER"))?;
    let reader = HttpReader::new(reader_url, reader_token)?.with_paging(
        parsed_or("READER_PAGE_LIMIT", 1000)?,
        parsed_or("READER_SLICE_POINTS", 50_000)?,
    );
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table);
    let schedules = EventBridgeSchedules::new(aws_sdk_scheduler::Client::new(&aws), settings);
    let files = S3Files::new(S3Files::client(&aws, flag("S3_FORCE_PATH_STYLE")), bucket);
    let notifier = LambdaLauncher::new(aws_sdk_lambda::Client::new(&aws), notify_function);
    let clock = SystemClock;
    let deps = Deps {
        store: &store,
        schedules: &schedules,
        reader: &reader,
        files: &files,
        notifier: &notifier,
        clock: &clock,
        config: &run_config,
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<RunEvent>| async move {
        handle(deps, event.payload).await
    }))
    .await
}
