//! Composition root of notify.

use std::time::Duration;

use exporter::adapters::chat::HttpChat;
use exporter::adapters::dynamodb::DynamoStore;
use exporter::adapters::s3::S3Files;
use exporter::adapters::ses::SesMailer;
use exporter::adapters::ssm::secret;
use exporter::config::{self, flag, list_or, optional, parsed_or, required};
use exporter::domain::request::WebhookHosts;
use exporter::ports::SystemClock;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use notify::{handle, Deps, NotifyConfig, NotifyEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    config::init_tracing();
    let table = required("TABLE_NAME")?;
    let bucket = required("BUCKET_NAME")?;
    let sender = required("EMAIL_FROM")?;
    let defaults = NotifyConfig::default();
    let notify_config = NotifyConfig {
        attachment_max_bytes: parsed_or("ATTACHMENT_MAX_BYTES", defaults.attachment_max_bytes)?,
        link_ttl: Duration::from_secs(parsed_or("LINK_TTL_SECONDS", defaults.link_ttl.as_secs())?),
        retry: defaults.retry,
        slack_default: optional("SLACK_DEFAULT_WEBHOOK"),
        discord_default: optional("DISCORD_DEFAULT_WEBHOOK"),
        claim: chrono::TimeDelta::seconds(parsed_or("DELIVERY_CLAIM_SECONDS", defaults.claim.num_seconds())?),
        telegram_default: optional("TELEGRAM_DEFAULT_CHAT"),
    };
    let aws = exporter::adapters::aws_config().await;
    let ssm = aws_sdk_ssm::Client::new(&aws);
    let telegram_token = secret(&ssm, "TELEGRAM_BOT_TOKEN", "TELEGRAM_BOT_TOKEN_PARAMETER").await?;
    let hosts = WebhookHosts::default();
    let chat = HttpChat::new(
        optional("TELEGRAM_API_URL").unwrap_or_else(|| "https://api.telegram.org".into()),
        telegram_token,
        WebhookHosts {
            slack: list_or("SLACK_ALLOWED_HOSTS", hosts.slack),
            discord: list_or("DISCORD_ALLOWED_HOSTS", hosts.discord),
        },
    )?;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table);
    let files = S3Files::new(S3Files::client(&aws, flag("S3_FORCE_PATH_STYLE")), bucket);
    let mailer = SesMailer::new(aws_sdk_sesv2::Client::new(&aws), sender);
    let clock = SystemClock;
    let deps = Deps {
        store: &store,
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
