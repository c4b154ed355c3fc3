//! SES v2 adapter of [`Mailer`]: a MIME message (text and HTML parts, images inline in the
//! HTML, and an attachment when given) sent raw from the configured sender. Raw, because SES v2's simple content cannot carry
//! attachments. Throttling and transport failures are transient; rejections are permanent.

use async_trait::async_trait;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{EmailContent, RawMessage};
use aws_sdk_sesv2::Client;
use mail_builder::MessageBuilder;

use exporter_core::ports::{DeliveryError, Email, Mailer};

/// Sends email through SES v2.
#[derive(Clone, Debug)]
pub struct SesMailer {
    client: Client,
    from: String,
    /// The configuration set every email is sent with (its bounces and complaints become
    /// metrics), if any.
    configuration_set: Option<String>,
}

impl SesMailer {
    pub fn new(client: Client, from: impl Into<String>) -> Self {
        Self {
            client,
            from: from.into(),
            configuration_set: None,
        }
    }

    /// Sends every email with the configuration set `name` (`SES_CONFIGURATION_SET`).
    pub fn with_configuration_set(self, name: Option<String>) -> Self {
        Self {
            configuration_set: name.filter(|n| !n.is_empty()),
            ..self
        }
    }

    /// The message as MIME. Headers hold exactly what is set here whatever the values contain:
    /// the mail builder writes a header value as given, so line breaks in a subject would start
    /// new headers; they become spaces, and an address with a control character is refused.
    pub fn mime(&self, email: &Email) -> Result<Vec<u8>, DeliveryError> {
        if email.to.as_str().chars().any(char::is_control) {
            return Err(DeliveryError::Permanent(
                "the recipient is not a valid address".into(),
            ));
        }
        let subject: String = email
            .subject
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let mut message = MessageBuilder::new()
            .from(self.from.as_str())
            .to(email.to.as_str())
            .subject(subject)
            .text_body(email.text.as_str())
            .html_body(email.html.as_str());
        for image in &email.inline {
            message = message.inline(
                image.content_type.as_str(),
                image.id.as_str(),
                image.bytes.as_slice(),
            );
        }
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
            .set_configuration_set_name(self.configuration_set.clone())
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

#[cfg(test)]
mod tests {
    use super::*;
    use exporter_core::domain::request::EmailAddress;

    /// The names of a MIME message's top-level headers, folded lines joined.
    fn header_names(mime: &[u8]) -> Vec<String> {
        let text = String::from_utf8_lossy(mime);
        let head = text.split("\r\n\r\n").next().unwrap_or_default();
        head.split("\r\n")
            .filter(|line| !line.starts_with([' ', '\t']))
            .filter_map(|line| line.split_once(':').map(|(name, _)| name.to_ascii_lowercase()))
            .collect()
    }

    #[test]
    fn a_subject_with_line_breaks_never_becomes_a_header() {
        let config = aws_sdk_sesv2::Config::builder()
            .behavior_version(aws_sdk_sesv2::config::BehaviorVersion::latest())
            .build();
        let mailer = SesMailer::new(Client::from_conf(config), "exports@example.com");
        let email = Email {
            to: EmailAddress::parse("me@example.com").expect("an address"),
            subject: "Report\r\nReply-To: attacker@evil.example\r\nBcc: x@evil.example".into(),
            text: "body\r\nBcc: y@evil.example".into(),
            html: "<p>body</p>".into(),
            attachment: None,
            inline: Vec::new(),
        };
        let mime = mailer.mime(&email).expect("a message");
        let mut names = header_names(&mime);
        names.sort();
        assert_eq!(
            names,
            [
                "content-type",
                "date",
                "from",
                "message-id",
                "mime-version",
                "subject",
                "to"
            ],
            "{}",
            String::from_utf8_lossy(&mime)
        );
    }
}
