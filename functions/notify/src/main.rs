//! Composition root of notify: its configuration (`config.rs`) wired to the adapters.

use exporter_adapters::chat::HttpChat;
use exporter_adapters::dynamodb::DynamoStore;
use exporter_adapters::s3::S3Files;
use exporter_adapters::ses::SesMailer;
use exporter_core::ports::SystemClock;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use notify::config::Environment;
use notify::{handle, Deps, NotifyEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = exporter_adapters::telemetry::init("notify");
    let telemetry = &telemetry;
    let mut env = Environment::from_env()?;
    let aws = exporter_adapters::aws_config().await;
    let telegram_token = env.read_secrets(&aws_sdk_ssm::Client::new(&aws)).await?;
    let chat = HttpChat::new(env.telegram_api, telegram_token, env.webhook_hosts)?;
    let notify_config = env.notify;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), env.stores.table);
    let files = S3Files::new(S3Files::client(&aws, env.stores.path_style), env.stores.bucket);
    let mailer = SesMailer::new(aws_sdk_sesv2::Client::new(&aws), env.sender)
        .with_configuration_set(env.configuration_set);
    let clock = SystemClock;
    let deps = Deps {
        exports: &store,
        history: &store,
        budgets: &store,
        deliveries: &store,
        files: &files,
        mailer: &mailer,
        chat: &chat,
        clock: &clock,
        config: &notify_config,
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<NotifyEvent>| async move {
        let properties = [
            ("exportId", event.payload.export_id.to_string()),
            ("jobId", event.payload.job_id.clone()),
        ];
        let sent = handle(deps, event.payload).await;
        telemetry.flush(&event.context.request_id, &properties);
        sent
    }))
    .await
}
