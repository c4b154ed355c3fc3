//! Chat adapter of [`ChatPoster`]: one module per medium, each with its message's shape
//! (Telegram's Bot API `sendMessage`, Slack's and Discord's incoming webhooks); here, what they
//! share: the HTTP client, how an answer is read, and the dispatch by medium. Hosts are checked
//! against the allow-list before any webhook request; redirects are never followed; the bot
//! token and webhook URLs never reach the logs (errors name the medium and the status, not the
//! URL). A new medium is a module here and an arm in `post` (the match is exhaustive).

mod discord;
mod slack;
mod telegram;

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::support::{capped_text, retry_after, wait_of, Secret};
use exporter_core::domain::notification::Composed;
use exporter_core::domain::request::{Medium, Target, WebhookHosts};
use exporter_core::ports::{ChatPoster, DeliveryError};

/// Posts to chats over HTTPS.
#[derive(Clone, Debug)]
pub struct HttpChat {
    http: reqwest::Client,
    telegram_api: String,
    telegram_token: Option<Secret>,
    hosts: WebhookHosts,
}

impl HttpChat {
    /// `telegram_api` is the Bot API's base URL (`https://api.telegram.org`, or a local one).
    pub fn new(
        telegram_api: impl Into<String>,
        telegram_token: Option<Secret>,
        hosts: WebhookHosts,
    ) -> Result<Self, DeliveryError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| DeliveryError::Permanent(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            telegram_api: telegram_api.into().trim_end_matches('/').to_owned(),
            telegram_token,
            hosts,
        })
    }

    /// Posts `body` to `url` for `medium`; the answer's status and text, or why it failed.
    async fn send(&self, medium: Medium, url: &str, body: &Value) -> Result<(u16, String), DeliveryError> {
        let response = self
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|e| DeliveryError::Transient {
                reason: format!(
                    "{} did not answer ({})",
                    medium.as_str(),
                    if e.is_timeout() {
                        "timed out"
                    } else {
                        "connection failed"
                    }
                ),
                retry_after: None,
            })?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        // An answer is a status and a few words; never read more than that.
        let text = capped_text(response, 64 * 1024).await;
        match status {
            200..=299 => Ok((status, text)),
            300..=399 => Err(DeliveryError::Permanent(format!(
                "{} answered a redirect ({status}), not followed",
                medium.as_str()
            ))),
            429 => {
                // Telegram also says when to come back in its body.
                let told = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v.pointer("/parameters/retry_after").and_then(Value::as_f64))
                    .and_then(wait_of);
                Err(DeliveryError::Transient {
                    reason: format!("{} answered 429", medium.as_str()),
                    retry_after: retry_after.or(told),
                })
            }
            500..=599 => Err(DeliveryError::Transient {
                reason: format!("{} answered {status}", medium.as_str()),
                retry_after,
            }),
            _ => Err(DeliveryError::Permanent(format!(
                "{} answered {status}: {}",
                medium.as_str(),
                text.chars().take(200).collect::<String>()
            ))),
        }
    }
}

#[async_trait]
impl ChatPoster for HttpChat {
    async fn post(&self, target: &Target, message: &Composed) -> Result<Option<String>, DeliveryError> {
        match target {
            Target::Telegram(chat) => telegram::post(self, chat, message).await,
            Target::Slack(url) => {
                target.allowed_by(&self.hosts).map_err(DeliveryError::Permanent)?;
                slack::post(self, url, message).await
            }
            Target::Discord(url) => {
                target.allowed_by(&self.hosts).map_err(DeliveryError::Permanent)?;
                discord::post(self, url, message).await
            }
            Target::Email(_) => Err(DeliveryError::Permanent("email does not go through chat".into())),
        }
    }
}
