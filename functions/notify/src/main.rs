//! Composition root of notify.

use exporter_adapters::chat::HttpChat;
use exporter_adapters::config::{self, flag, optional, required, webhook_hosts};
use exporter_adapters::dynamodb::DynamoStore;
use exporter_adapters::s3::S3Files;
use exporter_adapters::ses::SesMailer;
use exporter_adapters::ssm::{link_signer, optional_secret};
use exporter_adapters::support::Secret;
use exporter_core::domain::request::Medium;
use exporter_core::ports::SystemClock;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use notify::{default_target, handle, Deps, Links, NotifyConfig, NotifyEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    config::init_tracing();
    let table = required("TABLE_NAME")?;
    let bucket = required("BUCKET_NAME")?;
    let sender = required("EMAIL_FROM")?;
    let mut notify_config = NotifyConfig::from_env()?;
    let public_api = required("PUBLIC_API_URL")?;
    let aws = exporter_adapters::aws_config().await;
    let ssm = aws_sdk_ssm::Client::new(&aws);
    notify_config.links = Some(Links {
        base_url: public_api,
        signer: link_signer(&ssm).await?,
    });
    // Optional parts: one not set up (or whose secret cannot be read) is off, said at cold start;
    // email and the other media go on.
    let slack = optional_secret(
        &ssm,
        "SLACK_DEFAULT_WEBHOOK",
        "SLACK_DEFAULT_WEBHOOK_PARAMETER",
        "the default Slack webhook",
    )
    .await?;
    notify_config.slack_default = default_target(
        "SLACK_DEFAULT_WEBHOOK_PARAMETER",
        Medium::Slack,
        slack.as_ref().map(Secret::expose),
    )?;
    let discord = optional_secret(
        &ssm,
        "DISCORD_DEFAULT_WEBHOOK",
        "DISCORD_DEFAULT_WEBHOOK_PARAMETER",
        "the default Discord webhook",
    )
    .await?;
    notify_config.discord_default = default_target(
        "DISCORD_DEFAULT_WEBHOOK_PARAMETER",
        Medium::Discord,
        discord.as_ref().map(Secret::expose),
    )?;
    let telegram_token = optional_secret(
        &ssm,
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_BOT_TOKEN_PARAMETER",
        "Telegram",
    )
    .await?;
    let chat = HttpChat::new(
        optional("TELEGRAM_API_URL").unwrap_or_else(|| "https://api.telegram.org".into()),
        telegram_token,
        webhook_hosts(),
    )?;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table);
    let files = S3Files::new(S3Files::client(&aws, flag("S3_FORCE_PATH_STYLE")), bucket);
    let mailer = SesMailer::new(aws_sdk_sesv2::Client::new(&aws), sender);
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
        handle(deps, event.payload).await
    }))
    .await
}
