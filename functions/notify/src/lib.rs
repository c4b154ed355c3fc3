//! notify: sends the messages of one finished job (spec section 8). Its input is
//! `{"exportId", "jobId"}` from run-export.
//!
//! Each message whose policy matches the job's outcome goes out through its medium: email (SES
//! v2, the file attached when small enough, a chart of each decimated item inline), Telegram, Slack or Discord. Every message is claimed
//! before it is sent and its result recorded on the job, so a second invocation sends nothing
//! that was sent already or is being sent (a claim lapses after `claim`, so a run that died
//! leaves its message to the next); transient failures are retried with backoff and jitter within a
//! bound, honouring `Retry-After`; one channel's failure never stops the others.

mod chart;

use chrono::{DateTime, Utc};
use serde::Serialize;

use exporter_core::domain::files::{self, ChartSeries};
use exporter_core::domain::job::{Job, JobKey, JobStatus};
use exporter_core::domain::notification::{compose, Composed, Delivery, DeliveryStatus, JobFacts};
use exporter_core::domain::request::{EmailAddress, Medium, Message, Target};
use exporter_core::domain::Export;
use exporter_core::ports::{
    Attachment, Budgets, ChatPoster, Clock, DeliveryError, DeliveryLog, Email, Exports, FileStore, Inline,
    JobHistory, Mailer, Spend,
};

pub mod config;
pub use config::{default_target, Links, NotifyConfig};
pub use exporter_adapters::failure::Failure;
use exporter_adapters::telemetry::names;
pub use exporter_core::domain::NotifyEvent;

/// What notify needs: exports and jobs to read, the delivery log to write, and the media.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub exports: &'a dyn Exports,
    pub history: &'a dyn JobHistory,
    pub budgets: &'a dyn Budgets,
    pub deliveries: &'a dyn DeliveryLog,
    pub files: &'a dyn FileStore,
    pub mailer: &'a dyn Mailer,
    pub chat: &'a dyn ChatPoster,
    pub clock: &'a dyn Clock,
    pub config: &'a NotifyConfig,
}

/// How many messages went out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub sent: usize,
    pub failed: usize,
    /// Not for this outcome, or sent already.
    pub skipped: usize,
}

/// Sends a finished job's messages.
pub async fn handle(deps: Deps<'_>, event: NotifyEvent) -> Result<Summary, Failure> {
    let Some(export) = deps.exports.get(&event.export_id).await? else {
        tracing::info!(export_id = %event.export_id, "export missing; nothing to notify");
        // Nothing will ever be sent for it: the job is finished with, for the sweep too.
        if let Some(key) = JobKey::of_job_id(event.export_id, &event.job_id) {
            deps.deliveries.notified(&key, true).await?;
        }
        return Ok(Summary::default());
    };
    let no_job = || Failure::permanent(format!("export {} has no job {}", export.id, event.job_id));
    let key = JobKey::of_job_id(export.id, &event.job_id).ok_or_else(no_job)?;
    let job = deps.history.job(&key).await?.ok_or_else(no_job)?;
    if !matches!(job.status, JobStatus::Done | JobStatus::Failed) {
        tracing::warn!(export_id = %export.id, job_id = %job.job_id, "job has not ended; nothing to notify");
        return Ok(Summary::default());
    }
    let facts = facts(deps, &export, &job).await;
    let mut summary = Summary::default();
    for (index, message) in export.request.messages.iter().enumerate() {
        let now = deps.clock.now();
        let done_before = job.deliveries.iter().any(|d| d.message == index && d.holds(now));
        if !job.status.notifies(message.policy) || done_before {
            summary.skipped += 1;
            continue;
        }
        if !deps
            .deliveries
            .claim_delivery(&key, index, now, now + deps.config.claim)
            .await?
        {
            summary.skipped += 1;
            continue;
        }
        let delivery = match refused(deps, &export, message) {
            Some(reason) => not_sent(index, message, reason),
            None => {
                let limit = deps.config.max_messages_per_day;
                if deps
                    .budgets
                    .spend(&export.owner, &key, Spend::Message(index), now, limit)
                    .await?
                {
                    deliver(deps, &export, &job, index, message, &facts).await
                } else {
                    let reason = format!(
                        "not sent: the owner's budget of {limit} messages a day (MAX_MESSAGES_PER_DAY) is spent for today (UTC)"
                    );
                    not_sent(index, message, reason)
                }
            }
        };
        tracing::info!(
            export_id = %export.id, job_id = %job.job_id, message = index, medium = message.medium.as_str(),
            status = delivery.status.as_str(), attempts = delivery.attempts, reason = delivery.reason.as_deref(),
            "notification"
        );
        let result = match delivery.status {
            DeliveryStatus::Sent => {
                summary.sent += 1;
                "sent"
            }
            _ => {
                summary.failed += 1;
                "failed"
            }
        };
        metrics::counter!(names::MESSAGES, "medium" => message.medium.as_str(), "result" => result)
            .increment(1);
        deps.deliveries.record_delivery(&key, &delivery).await?;
    }
    // Every message ended unless one is still held by another run (which may have died with
    // its claim): then the job stays unmarked, and the sweep hands it to notify again once the
    // grace has passed, when that claim has lapsed.
    let after = deps.history.job(&key).await?.ok_or_else(no_job)?;
    let held = after
        .deliveries
        .iter()
        .any(|d| d.status == DeliveryStatus::Sending);
    if held {
        tracing::warn!(export_id = %export.id, job_id = %job.job_id, "a message is still being sent by another run; the sweep comes back to it");
    }
    deps.deliveries.notified(&key, !held).await?;
    Ok(summary)
}

/// Why a message may not go to its target, if so: a record stored before the rule, or an
/// allow-list narrowed since, relays nothing.
fn refused(deps: Deps<'_>, export: &Export, message: &Message) -> Option<String> {
    let target = message.target.as_ref()?;
    let rule = deps
        .config
        .recipients
        .allows(target, export.owner_email.as_deref())
        .err()?;
    Some(format!("not sent: the target is not allowed ({rule})"))
}

/// The record of a message that was not sent, and why.
fn not_sent(index: usize, message: &Message, reason: String) -> Delivery {
    Delivery {
        message: index,
        medium: message.medium.as_str().to_owned(),
        status: DeliveryStatus::Failed,
        attempts: 0,
        reason: Some(reason),
        provider_message_id: None,
        claimed_until: None,
    }
}

/// What the placeholders stand for; the download link is presigned now.
async fn facts(deps: Deps<'_>, export: &Export, job: &Job) -> JobFacts {
    let now: DateTime<Utc> = deps.clock.now();
    let file = (job.status == JobStatus::Done).then(|| job.download()).flatten();
    let mut download_url = None;
    let mut expires_at = None;
    if let (Some(_), Some(links)) = (file, &deps.config.links) {
        // The link cannot outlive the files.
        let until = job
            .expires_at
            .into_iter()
            .chain(
                chrono::TimeDelta::from_std(deps.config.link_ttl)
                    .ok()
                    .map(|ttl| now + ttl),
            )
            .min()
            .unwrap_or(now);
        let signed = links.signer.sign(&export.id, &job.job_id, until);
        download_url = Some(format!(
            "{}/links/{}/{}?expires={}&key={}&signature={}",
            links.base_url.trim_end_matches('/'),
            export.id,
            job.job_id,
            signed.expires,
            signed.key,
            signed.signature
        ));
        expires_at = Some(until);
    }
    JobFacts {
        export_id: export.id.to_string(),
        job_id: job.job_id.clone(),
        status: job.status.as_str().to_owned(),
        download_url,
        expires_at,
        error: job.detail.error.clone(),
        files: job
            .detail
            .files
            .iter()
            .map(|f| files::file_name(&f.key).to_owned())
            .collect(),
        rows: job.detail.files.iter().map(|f| f.rows).sum(),
        warnings: job.detail.warnings.clone(),
    }
}

/// Sends one message with retries; never fails: the outcome is the delivery record.
async fn deliver(
    deps: Deps<'_>,
    export: &Export,
    job: &Job,
    index: usize,
    message: &Message,
    facts: &JobFacts,
) -> Delivery {
    let composed = compose(message, facts);
    let mut delivery = Delivery {
        message: index,
        medium: message.medium.as_str().to_owned(),
        status: DeliveryStatus::Failed,
        attempts: 0,
        reason: None,
        provider_message_id: None,
        claimed_until: None,
    };
    let prepared = match message.medium {
        Medium::Email => email(deps, export, job, message, &composed)
            .await
            .map(Outbound::Email),
        medium => chat_target(deps.config, medium, message).map(Outbound::Chat),
    };
    let outbound = match prepared {
        Ok(outbound) => outbound,
        Err(reason) => {
            delivery.reason = Some(reason);
            return delivery;
        }
    };
    let retry = deps.config.retry;
    loop {
        delivery.attempts += 1;
        let result = match &outbound {
            Outbound::Email(email) => deps.mailer.send(email).await.map(Some),
            Outbound::Chat(target) => deps.chat.post(target, &composed).await,
        };
        match result {
            Ok(id) => {
                delivery.status = DeliveryStatus::Sent;
                delivery.provider_message_id = id.filter(|id| !id.is_empty());
                delivery.reason = None;
                return delivery;
            }
            Err(DeliveryError::Permanent(reason)) => {
                delivery.reason = Some(reason);
                return delivery;
            }
            Err(DeliveryError::Transient { reason, retry_after }) => {
                delivery.reason = Some(reason);
                if delivery.attempts >= retry.attempts {
                    return delivery;
                }
                let wait = retry_after.map_or_else(|| retry.delay(delivery.attempts), |d| d.min(retry.cap));
                tokio::time::sleep(wait).await;
            }
        }
    }
}

enum Outbound {
    Email(Email),
    Chat(Target),
}

fn chat_target(config: &NotifyConfig, medium: Medium, message: &Message) -> Result<Target, String> {
    let default = match medium {
        Medium::Slack => &config.slack_default,
        Medium::Discord => &config.discord_default,
        _ => &config.telegram_default,
    };
    message
        .target
        .clone()
        .or_else(|| default.clone())
        .ok_or_else(|| format!("no target for {} and no default configured", medium.as_str()))
}

async fn email(
    deps: Deps<'_>,
    export: &Export,
    job: &Job,
    message: &Message,
    composed: &Composed,
) -> Result<Email, String> {
    let to = match &message.target {
        Some(Target::Email(address)) => address.clone(),
        Some(_) => return Err("the message's target is not an email address".into()),
        None => {
            let claim = export
                .owner_email
                .as_deref()
                .ok_or("no recipient: the message has no target and the creator's token had no email")?;
            EmailAddress::parse(claim)
                .map_err(|_| "no recipient: the creator's email claim is not an address")?
        }
    };
    let mut attachment = None;
    if job.status == JobStatus::Done {
        if let Some(file) = job
            .download()
            .filter(|f| f.bytes <= deps.config.attachment_max_bytes)
        {
            match deps.files.read(&file.key).await {
                Ok(bytes) => {
                    let name = files::file_name(&file.key);
                    attachment = Some(Attachment {
                        name: name.to_owned(),
                        content_type: files::content_type_of(name).into(),
                        bytes,
                    });
                }
                Err(e) => tracing::warn!(error = %e, "could not read the file to attach; the link stands"),
            }
        }
    }
    let charts = if job.status == JobStatus::Done {
        charts(deps, export, job).await
    } else {
        Vec::new()
    };
    let mut text = composed.text.clone();
    let mut figures = String::new();
    let mut inline = Vec::new();
    for (k, (series, png)) in charts.into_iter().enumerate() {
        let id = format!("chart-{k}");
        text.push_str(&format!("\n\n{}", chart::fallback(&series)));
        figures.push_str(&format!(
            "<p><img src=\"cid:{id}\" width=\"{}\" height=\"{}\" alt=\"{}\"></p>\n",
            chart::WIDTH,
            chart::HEIGHT,
            escape_html(&chart::fallback(&series))
        ));
        inline.push(Inline {
            id,
            content_type: "image/png".into(),
            bytes: png,
        });
    }
    let html = format!(
        "<html><body><h2>{}</h2><p>{}</p>\n{figures}</body></html>",
        escape_html(&composed.title),
        linkify(&escape_html(&composed.text)).replace('\n', "<br>\n")
    );
    Ok(Email {
        to,
        subject: composed.title.clone(),
        text,
        html,
        attachment,
        inline,
    })
}

/// The charts of a finished job's decimated items, drawn from the series run-export kept
/// beside its files; an item whose series is missing or cannot be drawn goes without one.
async fn charts(deps: Deps<'_>, export: &Export, job: &Job) -> Vec<(ChartSeries, Vec<u8>)> {
    let mut charts = Vec::new();
    for (index, item) in export.request.items.iter().enumerate() {
        if item.decimation.is_none() {
            continue;
        }
        let key = files::chart_key(&export.id, &job.job_id, index);
        let series = match deps.files.read(&key).await {
            Ok(bytes) => serde_json::from_slice::<ChartSeries>(&bytes).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match series {
            // A report's item with no value keeps an empty series: nothing to draw.
            Ok(s) if s.lines.iter().all(|l| l.points.is_empty()) => continue,
            _ => {}
        }
        match series.and_then(|s| chart::png(&s).map(|png| (s, png))) {
            Ok(drawn) => charts.push(drawn),
            Err(e) => tracing::warn!(key, error = %e, "an item's chart is left out of the email"),
        }
    }
    charts
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Turns `http(s)://` words of already-escaped text into links.
fn linkify(escaped: &str) -> String {
    escaped
        .split(' ')
        .map(|word| {
            if word.starts_with("https://") || word.starts_with("http://") {
                format!("<a href=\"{word}\">{word}</a>")
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
