//! Composition root of reconcile: its configuration (`config.rs`) wired to the adapters.

use exporter_adapters::dynamodb::DynamoStore;
use exporter_adapters::lambda::LambdaLauncher;
use exporter_adapters::s3::S3Files;
use exporter_adapters::scheduler::EventBridgeSchedules;
use exporter_core::ports::SystemClock;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use reconcile::config::Environment;
use reconcile::{handle, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = exporter_adapters::telemetry::init("reconcile");
    let telemetry = &telemetry;
    let env = Environment::from_env()?;
    let reconcile_config = env.sweep;
    let aws = exporter_adapters::aws_config().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), env.stores.table);
    let schedules = EventBridgeSchedules::new(aws_sdk_scheduler::Client::new(&aws), env.schedules);
    let lambda = aws_sdk_lambda::Client::new(&aws);
    let launcher = LambdaLauncher::new(lambda.clone(), env.run_export_function);
    let notifier = LambdaLauncher::new(lambda, env.notify_function);
    let files = S3Files::new(S3Files::client(&aws, env.stores.path_style), env.stores.bucket);
    let clock = SystemClock;
    let deps = Deps {
        sweep: &store,
        exports: &store,
        history: &store,
        ends: &store,
        spread: &store,
        lifecycle: &store,
        runs: &store,
        schedules: &schedules,
        launcher: &launcher,
        notifier: &notifier,
        files: &files,
        uploads: &files,
        clock: &clock,
        config: &reconcile_config,
    };
    // The rate schedule's event carries nothing the sweep needs.
    let store = &store;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            // Once per table: records older than the sweep's index get their key (one read after).
            let swept = match store
                .index_for_sweeps(chrono::Utc::now(), std::time::Duration::from_secs(60))
                .await
            {
                Ok(()) => handle(deps).await,
                Err(e) => Err(e.into()),
            };
            telemetry.flush(&event.context.request_id, &[]);
            swept
        },
    ))
    .await
}
