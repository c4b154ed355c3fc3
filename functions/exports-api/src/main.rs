//! Composition root of the exports API: configuration, AWS clients, adapters, runtime.

use exporter_adapters::access::{checker, AccessMode};
use exporter_adapters::config::{self, flag, required, schedule_settings};
use exporter_adapters::dynamodb::DynamoStore;
use exporter_adapters::lambda::LambdaLauncher;
use exporter_adapters::s3::S3Files;
use exporter_adapters::scheduler::EventBridgeSchedules;
use exporter_adapters::ssm::{link_signer, secret, SsmLinkKeys};
use exporter_core::ports::SystemClock;
use exports_api::{handle, ApiConfig, Deps, Links};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    config::init_tracing();
    let api_config = ApiConfig::from_env()?;
    if api_config.local_identity && !cfg!(debug_assertions) {
        // A deployment is a release build: the local identity can never be switched on there.
        return Err(
            "LOCAL_IDENTITY is set, but this is a release build; it only works in local debug builds".into(),
        );
    }
    let table = required("TABLE_NAME")?;
    let settings = schedule_settings()?;
    let bucket = required("BUCKET_NAME")?;
    let run_export = required("RUN_EXPORT_FUNCTION")?;

    let reader_url = required("READER_URL")?;
    let access_mode = AccessMode::from_env()?;

    let aws = exporter_adapters::aws_config().await;
    let policy_token = match access_mode {
        AccessMode::Policy { .. } => {
            let ssm = aws_sdk_ssm::Client::new(&aws);
            secret(&ssm, "ACCESS_POLICY_TOKEN", "ACCESS_POLICY_TOKEN_PARAMETER").await?
        }
        _ => None,
    };
    let access = checker(access_mode, &reader_url, policy_token, api_config.policy.dialect)?;
    let api_config = ApiConfig {
        links: Some(std::sync::Arc::new({
            let ssm = aws_sdk_ssm::Client::new(&aws);
            let keys = link_signer(&ssm).await?;
            match SsmLinkKeys::from_env(&ssm) {
                Some(source) => Links::kept_in(keys, std::sync::Arc::new(source)),
                None => Links::fixed(keys),
            }
        })),
        ..api_config
    };
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table);
    let schedules = EventBridgeSchedules::new(aws_sdk_scheduler::Client::new(&aws), settings);
    let launcher = LambdaLauncher::new(aws_sdk_lambda::Client::new(&aws), run_export);
    let files = S3Files::new(S3Files::client(&aws, flag("S3_FORCE_PATH_STYLE")), bucket);
    let clock = SystemClock;
    let deps = Deps {
        exports: &store,
        lifecycle: &store,
        history: &store,
        access: access.as_ref(),
        schedules: &schedules,
        launcher: &launcher,
        files: &files,
        clock: &clock,
        config: &api_config,
    };
    lambda_http::run(lambda_http::service_fn(move |request| handle(deps, request))).await
}
