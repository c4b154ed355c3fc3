//! Composition root of the exports API: its configuration (`config.rs`) wired to the adapters.

use exporter_adapters::access::checker;
use exporter_adapters::dynamodb::DynamoStore;
use exporter_adapters::lambda::LambdaLauncher;
use exporter_adapters::reader::HttpReader;
use exporter_adapters::s3::S3Files;
use exporter_adapters::scheduler::EventBridgeSchedules;
use exporter_core::ports::SystemClock;
use exports_api::config::Environment;
use exports_api::{handle, ApiConfig, Deps};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let telemetry = exporter_adapters::telemetry::init("exports-api");
    let telemetry = &telemetry;
    let env = Environment::from_env()?;
    if env.api.local_identity && !cfg!(debug_assertions) {
        // A deployment is a release build: the local identity can never be switched on there.
        return Err(
            "LOCAL_IDENTITY is set, but this is a release build; it only works in local debug builds".into(),
        );
    }
    let aws = exporter_adapters::aws_config().await;
    let ssm = aws_sdk_ssm::Client::new(&aws);
    let policy_token = env.policy_token(&ssm).await?;
    let access = checker(
        env.access.clone(),
        &env.reader_url,
        policy_token,
        env.api.policy.dialect,
    )?;
    let mut reader = HttpReader::new(env.reader_url.clone(), env.reader_token(&ssm).await?)?
        .with_dialect(env.api.policy.dialect)
        .with_credential_scheme(env.reader_scheme);
    if let Some(limit) = env.reader_page_limit {
        reader = reader.with_page_limit(limit);
    }
    let api_config = ApiConfig {
        links: Some(std::sync::Arc::new(env.links(&ssm).await?)),
        ..env.api
    };
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), env.stores.table);
    let schedules = EventBridgeSchedules::new(aws_sdk_scheduler::Client::new(&aws), env.schedules);
    let launcher = LambdaLauncher::new(aws_sdk_lambda::Client::new(&aws), env.run_export_function);
    let files = S3Files::new(S3Files::client(&aws, env.stores.path_style), env.stores.bucket);
    let clock = SystemClock;
    let deps = Deps {
        exports: &store,
        lifecycle: &store,
        history: &store,
        ends: &store,
        reader: &reader,
        access: access.as_ref(),
        schedules: &schedules,
        launcher: &launcher,
        files: &files,
        clock: &clock,
        config: &api_config,
    };
    lambda_http::run(lambda_http::service_fn(
        move |request: lambda_http::Request| async move {
            use lambda_http::RequestExt;
            let request_id = request
                .lambda_context_ref()
                .map(|c| c.request_id.clone())
                .unwrap_or_default();
            let answered = handle(deps, request).await;
            telemetry.flush(&request_id, &[]);
            answered
        },
    ))
    .await
}
