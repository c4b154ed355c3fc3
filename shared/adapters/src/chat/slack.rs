//! Slack: an incoming webhook, the title in bold (`*title*`) over the text; Slack answers no id.

use serde_json::json;

use exporter_core::domain::notification::{fit, max_chars, Composed};
use exporter_core::domain::request::{Medium, WebhookUrl};
use exporter_core::ports::DeliveryError;

use super::HttpChat;

pub(super) async fn post(
    chat: &HttpChat,
    url: &WebhookUrl,
    message: &Composed,
) -> Result<Option<String>, DeliveryError> {
    let text = fit(
        &format!("*{}*\n{}", message.title, message.text),
        max_chars(Medium::Slack),
    );
    chat.send(Medium::Slack, url.as_str(), &json!({"text": text}))
        .await?;
    Ok(None)
}
