//! Notification messages (spec section 8): which messages a finished job sends, their text with
//! placeholders filled in, the download link appended when the text does not place it, and the
//! length limits of each medium, cut visibly. What was delivered is recorded per message.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::request::{Medium, Message, NotifyPolicy};
use super::timestamp::rfc3339;

/// What the placeholders of a job's messages stand for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobFacts {
    pub export_id: String,
    pub job_id: String,
    /// `done` or `failed`.
    pub status: String,
    pub download_url: Option<String>,
    /// When the download link stops working.
    pub expires_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// The files' names, comma-separated in `{{files}}`.
    pub files: Vec<String>,
    pub rows: u64,
    /// What the job warned of (`0 points read`, skipped points, cut cells).
    pub warnings: Vec<String>,
}

/// A message ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Composed {
    pub title: String,
    pub text: String,
}

/// Fills `{{exportId}} {{jobId}} {{status}} {{downloadUrl}} {{expiresAt}} {{error}} {{files}}
/// {{rows}} {{warnings}}` in; unknown placeholders stay as they are.
pub fn fill(template: &str, facts: &JobFacts) -> String {
    let expires = facts.expires_at.map(rfc3339).unwrap_or_default();
    let rows = facts.rows.to_string();
    let files = facts.files.join(", ");
    let warnings = facts.warnings.join("; ");
    let pairs: [(&str, &str); 9] = [
        ("{{exportId}}", &facts.export_id),
        ("{{jobId}}", &facts.job_id),
        ("{{status}}", &facts.status),
        ("{{downloadUrl}}", facts.download_url.as_deref().unwrap_or("")),
        ("{{expiresAt}}", &expires),
        ("{{error}}", facts.error.as_deref().unwrap_or("")),
        ("{{files}}", &files),
        ("{{rows}}", &rows),
        ("{{warnings}}", &warnings),
    ];
    let mut out = template.to_owned();
    for (placeholder, value) in pairs {
        if out.contains(placeholder) {
            out = out.replace(placeholder, value);
        }
    }
    out
}

/// The message's title and text for a job; the job's warnings are appended when the text does
/// not place `{{warnings}}` itself (so `0 points read` is never missed), and on success the link
/// (with its expiry) when the text does not place `{{downloadUrl}}`.
pub fn compose(message: &Message, facts: &JobFacts) -> Composed {
    let mut text = fill(&message.text, facts);
    if !facts.warnings.is_empty() && !message.text.contains("{{warnings}}") {
        text.push_str("\n\nWarnings:");
        for warning in &facts.warnings {
            text.push_str("\n- ");
            text.push_str(warning);
        }
    }
    if let (NotifyPolicy::OnSuccess, Some(url)) = (message.policy, &facts.download_url) {
        if !message.text.contains("{{downloadUrl}}") {
            let expiry = facts
                .expires_at
                .map(|t| format!(" (valid until {})", rfc3339(t)))
                .unwrap_or_default();
            text.push_str(&format!("\n\nDownload: {url}{expiry}"));
        }
    }
    Composed {
        title: one_line(&fill(&message.title, facts)),
        text,
    }
}

/// A title on one line: placeholders bring text from outside (a reader's error message), so
/// any control character becomes a space whatever the stored title held.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// The marker that ends a text cut to fit.
pub const CUT_MARKER: &str = "… [truncated]";

/// `text` within `max_chars` characters; a longer one is cut and ends with [`CUT_MARKER`].
pub fn fit(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let keep = max_chars.saturating_sub(CUT_MARKER.chars().count());
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(CUT_MARKER);
    out
}

/// The most characters a medium's message holds (`domain::media`).
pub fn max_chars(medium: Medium) -> usize {
    crate::domain::media::of(medium).max_chars
}

/// Where a message's delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeliveryStatus {
    /// Claimed by a notify run that has not finished, or that died: sent again only once the
    /// claim has lapsed.
    Sending,
    Sent,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Sending, Self::Sent, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// The result of one message of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The message's index in `notification.messages`.
    pub message: usize,
    pub medium: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub reason: Option<String>,
    pub provider_message_id: Option<String>,
    /// While `sending`: when the claim of the invocation sending it lapses.
    #[serde(skip)]
    pub claimed_until: Option<DateTime<Utc>>,
}

impl Delivery {
    /// Whether this record keeps the message from being sent at `now`: it was sent, or an
    /// invocation is sending it and its claim has not lapsed.
    pub fn holds(&self, now: DateTime<Utc>) -> bool {
        match self.status {
            DeliveryStatus::Sent => true,
            DeliveryStatus::Failed => false,
            DeliveryStatus::Sending => self.claimed_until.is_none_or(|until| until >= now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(policy: NotifyPolicy, text: &str) -> Message {
        Message {
            policy,
            medium: Medium::Slack,
            title: "Export {{exportId}}".into(),
            text: text.into(),
            target: None,
        }
    }

    #[test]
    fn a_title_stays_on_one_line_whatever_its_placeholders_bring() {
        let mut failed = message(NotifyPolicy::OnFailure, "{{error}}");
        failed.title = "Export {{error}}".into();
        let facts = JobFacts {
            error: Some("reader said:\r\nBcc: x@evil.example".into()),
            ..facts()
        };
        let composed = compose(&failed, &facts);
        assert_eq!(composed.title, "Export reader said:  Bcc: x@evil.example");
        assert!(composed.text.contains("\r\n"), "the body keeps its lines");
    }

    fn facts() -> JobFacts {
        JobFacts {
            export_id: "e1".into(),
            job_id: "j1".into(),
            status: "done".into(),
            download_url: Some("https://files/x".into()),
            expires_at: DateTime::from_timestamp(1_795_000_000, 0),
            error: None,
            files: vec!["a.csv".into(), "b.csv".into()],
            rows: 42,
            warnings: Vec::new(),
        }
    }

    #[test]
    fn a_jobs_warnings_are_said_unless_the_text_places_them() {
        let warned = JobFacts {
            rows: 0,
            warnings: vec!["item 0: 0 points read; the file holds its header only".into()],
            ..facts()
        };
        let composed = compose(&message(NotifyPolicy::OnSuccess, "{{rows}} rows"), &warned);
        assert!(
            composed
                .text
                .starts_with("0 rows\n\nWarnings:\n- item 0: 0 points read;"),
            "{}",
            composed.text
        );
        let placed = compose(
            &message(NotifyPolicy::OnSuccess, "[{{warnings}}] {{downloadUrl}}"),
            &warned,
        );
        assert_eq!(
            placed.text,
            "[item 0: 0 points read; the file holds its header only] https://files/x"
        );
    }

    #[test]
    fn fills_placeholders_and_appends_the_link_with_its_expiry() {
        let composed = compose(
            &message(NotifyPolicy::OnSuccess, "{{rows}} rows in {{files}} ({{status}})"),
            &facts(),
        );
        assert_eq!(composed.title, "Export e1");
        assert_eq!(
            composed.text,
            "42 rows in a.csv, b.csv (done)\n\nDownload: https://files/x (valid until 2026-11-18T11:06:40.000Z)"
        );
        let placed = compose(
            &message(NotifyPolicy::OnSuccess, "get it: {{downloadUrl}}"),
            &facts(),
        );
        assert_eq!(placed.text, "get it: https://files/x");
    }

    #[test]
    fn long_texts_are_cut_visibly_within_the_limit() {
        let long = "x".repeat(2500);
        let cut = fit(&long, max_chars(Medium::Discord));
        assert_eq!(cut.chars().count(), 2000);
        assert!(cut.ends_with(CUT_MARKER));
        assert_eq!(fit("short", 2000), "short");
    }
}
