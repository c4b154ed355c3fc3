//! Composition root of reconcile.

use exporter_adapters::config::{self, flag, required, schedule_settings};
use exporter_adapters::dynamodb::DynamoStore;
use exporter_adapters::lambda::LambdaLauncher;
use exporter_adapters::s3::S3Files;
use exporter_adapters::scheduler::EventBridgeSchedules;
use exporter_core::ports::SystemClock;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use reconcile::{handle, Deps, ReconcileConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    config::init_tracing();
    let table = required("TABLE_NAME")?;
    let settings = schedule_settings()?;
    let reconcile_config = ReconcileConfig::from_env()?;
    let aws = exporter_adapters::aws_config().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table);
    let schedules = EventBridgeSchedules::new(aws_sdk_scheduler::Client::new(&aws), settings);
    let lambda = aws_sdk_lambda::Client::new(&aws);
    let launcher = LambdaLauncher::new(lambda.clone(), required("RUN_EXPORT_FUNCTION")?);
    let notifier = LambdaLauncher::new(lambda, required("NOTIFY_FUNCTION")?);
    let files = S3Files::new(
        S3Files::client(&aws, flag("S3_FORCE_PATH_STYLE")),
        required("BUCKET_NAME")?,
    );
    let clock = SystemClock;
    let deps = Deps {
        sweep: &store,
        exports: &store,
        history: &store,
        ledger: &store,
        items: &store,
        lifecycle: &store,
        runs: &store,
        schedules: &schedules,
        launcher: &launcher,
        notifier: &notifier,
        files: &files,
        clock: &clock,
        config: &reconcile_config,
    };
    // The rate schedule's event carries nothing the sweep needs.
    let store = &store;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        // Once per table: records older than the sweep's index get their key (one read after).
        store
            .index_for_sweeps(chrono::Utc::now(), std::time::Duration::from_secs(60))
            .await?;
        handle(deps).await
    }))
    .await
}
