//! SES v2 adapter of [`Mailer`]: a MIME message (text and HTML parts, and an attachment when
//! given) sent raw from the configured sender. Raw, because SES v2's simple content cannot carry
//! attachments. Throttling and transport failures are transient; rejections are permanent.

use async_trait::async_trait;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{EmailContent, RawMessage};
use aws_sdk_sesv2::Client;
use mail_builder::MessageBuilder;

use crate::ports::{DeliveryError, Email, Mailer};

/// Sends email through SES v2.
#[derive(Clone, Debug)]
pub struct SesMailer {
    client: Client,
    from: String,
}

impl SesMailer {
    pub fn new(client: Client, from: impl Into<String>) -> Self {
        Self {
            client,
            from: from.into(),
        }
    }

    /// The message as MIME.
    pub fn mime(&self, email: &Email) -> Result<Vec<u8>, DeliveryError> {
        let mut message = MessageBuilder::new()
            .from(self.from.as_str())
            .to(email.to.as_str())
            .subject(email.subject.as_str())
            .text_body(email.text.as_str())
            .html_body(email.html.as_str());
        if let Some(attachment) = &email.attachment {
            message = message.attachment(
                attachment.content_type.as_str(),
                attachment.name.as_str(),
                attachment.bytes.as_slice(),
            );
        }
        message
            .write_to_vec()
            .map_err(|e| DeliveryError::Permanent(format!("cannot build the email: {e}")))
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, email: &Email) -> Result<String, DeliveryError> {
        let raw = RawMessage::builder()
            .data(Blob::new(self.mime(email)?))
            .build()
            .map_err(|e| DeliveryError::Permanent(format!("cannot build the email: {e}")))?;
        let sent = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(
                aws_sdk_sesv2::types::Destination::builder()
                    .to_addresses(email.to.as_str())
                    .build(),
            )
            .content(EmailContent::builder().raw(raw).build())
            .send()
            .await;
        match sent {
            Ok(output) => Ok(output.message_id().unwrap_or_default().to_owned()),
            Err(e) => {
                let transient = match e.as_service_error() {
                    Some(s) => s.is_too_many_requests_exception() || s.is_limit_exceeded_exception(),
                    // Timeouts, connection failures, 5xx without a modelled error.
                    None => true,
                };
                let reason = match e.as_service_error() {
                    Some(s) => format!(
                        "SES refused the email: {}",
                        aws_sdk_sesv2::error::ProvideErrorMetadata::message(s).unwrap_or("no message")
                    ),
                    None => "SES did not answer".to_owned(),
                };
                if transient {
                    Err(DeliveryError::Transient {
                        reason,
                        retry_after: None,
                    })
                } else {
                    Err(DeliveryError::Permanent(reason))
                }
            }
        }
    }
}
