//! Discord: an incoming webhook asked to wait for the message (`wait=true`), the title in bold
//! (`**title**`) over the text, mentions off; the message's id comes back.

use serde_json::{json, Value};

use exporter_core::domain::notification::{fit, max_chars, Composed};
use exporter_core::domain::request::{Medium, WebhookUrl};
use exporter_core::ports::DeliveryError;

use super::HttpChat;

pub(super) async fn post(
    chat: &HttpChat,
    url: &WebhookUrl,
    message: &Composed,
) -> Result<Option<String>, DeliveryError> {
    let content = fit(
        &format!("**{}**\n{}", message.title, message.text),
        max_chars(Medium::Discord),
    );
    let body = json!({"content": content, "allowed_mentions": {"parse": []}});
    let (_, answer) = chat
        .send(Medium::Discord, &url.with_query("wait", "true"), &body)
        .await?;
    Ok(serde_json::from_str::<Value>(&answer)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned)))
}
