//! Composition root of the exports API: configuration, AWS clients, adapters, runtime.

use exporter::adapters::dynamodb::DynamoStore;
use exporter::adapters::lambda::LambdaLauncher;
use exporter::adapters::s3::S3Files;
use exporter::adapters::scheduler::EventBridgeSchedules;
use exporter::config::{self, flag, list_or, parsed_or, required, schedule_settings};
use exporter::domain::request::{Limits, WebhookHosts};
use exporter::domain::Policy;
use exporter::ports::SystemClock;
use exports_api::{handle, ApiConfig, Deps};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    config::init_tracing();
    let local_identity = flag("LOCAL_IDENTITY");
    if local_identity && !cfg!(debug_assertions) {
        // A deployment is a release build: the local identity can never be switched on there.
        return Err(
            "LOCAL_IDENTITY is set, but this is a release build; it only works in local debug builds".into(),
        );
    }
    let defaults = Limits::default();
    let hosts = WebhookHosts::default();
    let api_config = ApiConfig {
        policy: Policy {
            limits: Limits {
                max_items: parsed_or("MAX_ITEMS", defaults.max_items)?,
                max_columns: parsed_or("MAX_COLUMNS", defaults.max_columns)?,
                max_messages: parsed_or("MAX_MESSAGES", defaults.max_messages)?,
            },
            webhook_hosts: Some(WebhookHosts {
                slack: list_or("SLACK_ALLOWED_HOSTS", hosts.slack),
                discord: list_or("DISCORD_ALLOWED_HOSTS", hosts.discord),
            }),
        },
        max_body_bytes: parsed_or("MAX_BODY_BYTES", 256 * 1024)?,
        max_queued_per_user: parsed_or("MAX_QUEUED_EXPORTS_PER_USER", 100)?,
        local_identity,
        download_url_ttl: std::time::Duration::from_secs(parsed_or("DOWNLOAD_URL_SECONDS", 3600)?),
    };
    let table = required("TABLE_NAME")?;
    let settings = schedule_settings()?;
    let bucket = required("BUCKET_NAME")?;
    let run_export = required("RUN_EXPORT_FUNCTION")?;

    let aws = exporter::adapters::aws_config().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table);
    let schedules = EventBridgeSchedules::new(aws_sdk_scheduler::Client::new(&aws), settings);
    let launcher = LambdaLauncher::new(aws_sdk_lambda::Client::new(&aws), run_export);
    let files = S3Files::new(S3Files::client(&aws, flag("S3_FORCE_PATH_STYLE")), bucket);
    let clock = SystemClock;
    let deps = Deps {
        store: &store,
        schedules: &schedules,
        launcher: &launcher,
        files: &files,
        clock: &clock,
        config: &api_config,
    };
    lambda_http::run(lambda_http::service_fn(move |request| handle(deps, request))).await
}
