//! Telegram: the Bot API's `sendMessage`, the title and the text in one plain message; the
//! message's id comes back.

use serde_json::{json, Value};

use exporter_core::domain::notification::{fit, max_chars, Composed};
use exporter_core::domain::request::{Medium, TelegramChat};
use exporter_core::ports::DeliveryError;

use super::HttpChat;

pub(super) async fn post(
    chat: &HttpChat,
    to: &TelegramChat,
    message: &Composed,
) -> Result<Option<String>, DeliveryError> {
    let token = chat
        .telegram_token
        .as_ref()
        .ok_or_else(|| DeliveryError::Permanent("no Telegram bot token is configured".into()))?;
    let text = fit(
        &format!("{}\n\n{}", message.title, message.text),
        max_chars(Medium::Telegram),
    );
    let url = format!("{}/bot{}/sendMessage", chat.telegram_api, token.expose());
    let body = json!({"chat_id": to.as_str(), "text": text, "disable_web_page_preview": true});
    let (_, answer) = chat.send(Medium::Telegram, &url, &body).await?;
    Ok(serde_json::from_str::<Value>(&answer)
        .ok()
        .and_then(|v| v.pointer("/result/message_id").map(|id| id.to_string())))
}
