//! The table's layout in code: keys of each kind of record, attribute codecs, the sweep
//! index's keys, and how a conditional write's outcome is read.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use exporter_core::domain::job::{ItemOutcome, Job, JobDetail, JobKey, JobStatus, Spread};
use exporter_core::domain::notification::{Delivery, DeliveryStatus};
use exporter_core::domain::record;
use exporter_core::domain::timestamp::rfc3339;
use exporter_core::domain::{Export, ExportId, ExportStatus};
use exporter_core::ports::{Cause, StoreError};

use super::{DynamoStore, TTL_ATTRIBUTE};

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn export_key(id: &ExportId) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("EXPORT#{id}"))),
        ("sk".into(), s("EXPORT")),
    ])
}

pub(super) fn quota_key(owner: &str) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("OWNER#{owner}"))),
        ("sk".into(), s("QUOTA")),
    ])
}

pub(super) fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::Unavailable(Box::new(e) as Cause)
}

impl DynamoStore {
    pub(super) fn export_item(export: &Export) -> Item {
        let mut item = export_key(&export.id);
        item.insert("owner".into(), s(&export.owner));
        item.insert("createdAt".into(), s(rfc3339(export.created_at)));
        item.insert("updatedAt".into(), s(rfc3339(export.updated_at)));
        item.insert("status".into(), s(export.status.as_str()));
        item.insert("type".into(), s(export.request.export_type().as_str()));
        item.insert("record".into(), s(record::write_v1(&export.request)));
        item.insert("version".into(), n(export.version));
        if let Some(email) = &export.owner_email {
            item.insert("ownerEmail".into(), s(email));
        }
        match export.deleted_at {
            Some(at) => {
                item.insert("deletedAt".into(), s(rfc3339(at)));
            }
            None if export.status.counts_against_quota() => {
                item.insert("sweep".into(), Swept::of_export(&export.id));
            }
            None => {}
        }
        if let Some(at) = export.next_run_at {
            item.insert("nextRunAt".into(), s(rfc3339(at)));
        }
        item
    }

    pub(super) fn read_export(item: &Item) -> Result<Export, StoreError> {
        let text = |name: &str| text_of(item, name);
        let corrupt = |what: &str| StoreError::Corrupt(format!("export item: {what}"));
        let time = |name: &str| time_of(item, name, "export item");
        let id = text("pk")
            .and_then(|pk| pk.strip_prefix("EXPORT#"))
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| corrupt("pk"))?;
        let created_at = time("createdAt")?.ok_or_else(|| corrupt("createdAt"))?;
        // Version 1 in `record`; items written before it hold version 0 in `request`.
        let request = match (text("record"), text("request")) {
            (Some(v1), _) => record::read_v1(v1),
            (None, Some(v0)) => record::read_v0(v0),
            (None, None) => return Err(corrupt("record")),
        }
        .map_err(|e| StoreError::Corrupt(format!("export item: {e}")))?;
        Ok(Export {
            id,
            owner: text("owner").ok_or_else(|| corrupt("owner"))?.to_owned(),
            owner_email: text("ownerEmail").map(str::to_owned),
            request,
            status: text("status")
                .and_then(ExportStatus::parse)
                .ok_or_else(|| corrupt("status"))?,
            created_at,
            updated_at: time("updatedAt")?.unwrap_or(created_at),
            deleted_at: time("deletedAt")?,
            next_run_at: time("nextRunAt")?,
            // Absent on exports stored before edits: their first version.
            version: match item.get("version") {
                None => 1,
                Some(v) => v
                    .as_n()
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| corrupt("version"))?,
            },
        })
    }
}

/// Whether a conditional write happened: `false` when its condition did not hold.
pub(super) fn conditional<O, E, R>(result: Result<O, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException") => {
            Ok(false)
        }
        Err(e) => Err(unavailable(e)),
    }
}

/// True when the `index`th action of a cancelled transaction failed its condition.
pub(super) fn condition_failed<R>(
    err: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
    index: usize,
) -> bool {
    cancellation_code(err, index).as_deref() == Some("ConditionalCheckFailed")
}

/// The reason code of the `index`th action of a cancelled transaction.
pub(super) fn cancellation_code<R>(
    err: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
    index: usize,
) -> Option<String> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
    match err.as_service_error()? {
        E::TransactionCanceledException(e) => e
            .cancellation_reasons()
            .get(index)
            .and_then(|r| r.code())
            .map(str::to_owned),
        _ => None,
    }
}

/// The record of one item's run of a spread job: `ITEM#<scheduledAt>#<item>` (not under `JOB#`,
/// so job queries and scans never see it).
pub(super) fn item_key(job: &JobKey, item: u32) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("EXPORT#{}", job.export_id))),
        ("sk".into(), s(format!("{}{item:04}", item_prefix(job)))),
    ])
}

pub(super) fn item_prefix(job: &JobKey) -> String {
    format!("ITEM#{}#", rfc3339(job.scheduled_at))
}

pub(super) fn number_of(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

/// The outcomes a spread job's record holds, by item.
pub(super) fn read_outcomes(item: &Item) -> Result<Vec<(u32, ItemOutcome)>, StoreError> {
    let Some(map) = item.get("outcomes").and_then(|v| v.as_m().ok()) else {
        return Ok(Vec::new());
    };
    let corrupt = || StoreError::Corrupt("job item: outcomes".into());
    let mut outcomes = map
        .iter()
        .map(|(index, json)| {
            let index = index.parse().map_err(|_| corrupt())?;
            let json = json.as_s().map_err(|_| corrupt())?;
            Ok((index, serde_json::from_str(json).map_err(|_| corrupt())?))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    outcomes.sort_by_key(|(index, _)| *index);
    Ok(outcomes)
}

pub(super) fn job_key(job: &JobKey) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("EXPORT#{}", job.export_id))),
        ("sk".into(), s(format!("JOB#{}", rfc3339(job.scheduled_at)))),
    ])
}

/// A string attribute of an item.
pub(super) fn text_of<'i>(item: &'i Item, name: &str) -> Option<&'i str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

/// An RFC 3339 attribute of an item; `Corrupt` (naming `kind` and the attribute) when unreadable.
pub(super) fn time_of(item: &Item, name: &str, kind: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    text_of(item, name)
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| StoreError::Corrupt(format!("{kind}: {name}")))
        })
        .transpose()
}

/// A job item and the export it belongs to.
pub(super) fn read_job_of_export(item: &Item) -> Result<(ExportId, Job), StoreError> {
    let id = text_of(item, "pk")
        .and_then(|pk| pk.strip_prefix("EXPORT#"))
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| StoreError::Corrupt("job item: pk".into()))?;
    Ok((id, read_job(item)?))
}

pub(super) fn read_job(item: &Item) -> Result<Job, StoreError> {
    let text = |name: &str| text_of(item, name);
    let corrupt = |what: &str| StoreError::Corrupt(format!("job item: {what}"));
    let time = |name: &str| time_of(item, name, "job item");
    let detail = match text("detail") {
        Some(json) => serde_json::from_str(json).map_err(|_| corrupt("detail"))?,
        None => JobDetail::default(),
    };
    let expires_at = item
        .get(TTL_ATTRIBUTE)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok())
        .and_then(|secs| DateTime::from_timestamp(secs, 0));
    Ok(Job {
        job_id: text("jobId").ok_or_else(|| corrupt("jobId"))?.to_owned(),
        scheduled_at: time("scheduledAt")?.ok_or_else(|| corrupt("scheduledAt"))?,
        status: text("status")
            .and_then(JobStatus::parse)
            .ok_or_else(|| corrupt("status"))?,
        started_at: time("startedAt")?,
        attempts: item
            .get("attempts")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
        leg: item
            .get("leg")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        leg_from: item
            .get("legFrom")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok()),
        spread: number_of(item, "items").map(|items| {
            let count = |name| {
                number_of(item, name)
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(0)
            };
            let mut done: Vec<u32> = item
                .get("outcomes")
                .and_then(|v| v.as_m().ok())
                .map(|m| m.keys().filter_map(|k| k.parse().ok()).collect())
                .unwrap_or_default();
            done.sort_unstable();
            Spread {
                items: u32::try_from(items).unwrap_or(0),
                launched: count("itemsLaunched"),
                left: count("itemsLeft"),
                done,
            }
        }),
        finished_at: time("finishedAt")?,
        expires_at,
        detail,
        deliveries: read_deliveries(item),
    })
}

/// The attribute holding message `index`'s delivery on a job item.
pub(super) fn delivery_attribute(index: usize) -> String {
    format!("delivery{index}")
}

pub(super) fn read_deliveries(item: &Item) -> Vec<Delivery> {
    let mut deliveries: Vec<Delivery> = item
        .iter()
        .filter(|(name, _)| name.starts_with("delivery"))
        .filter_map(|(_, value)| {
            let map = value.as_m().ok()?;
            let text = |k: &str| map.get(k).and_then(|v| v.as_s().ok()).cloned();
            let number = |k: &str| {
                map.get(k)
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<u64>().ok())
            };
            Some(Delivery {
                message: number("message")? as usize,
                medium: text("medium").unwrap_or_default(),
                status: text("status").as_deref().and_then(DeliveryStatus::parse)?,
                attempts: number("attempts").unwrap_or(0) as u32,
                reason: text("reason"),
                provider_message_id: text("providerMessageId"),
                claimed_until: map
                    .get("claimedUntil")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<i64>().ok())
                    .and_then(|secs| DateTime::from_timestamp(secs, 0)),
            })
        })
        .collect();
    deliveries.sort_by_key(|d| d.message);
    deliveries
}

pub(super) fn delivery_value(delivery: &Delivery) -> AttributeValue {
    let mut map = HashMap::from([
        ("message".to_owned(), n(delivery.message)),
        ("medium".to_owned(), s(&delivery.medium)),
        ("status".to_owned(), s(delivery.status.as_str())),
        ("attempts".to_owned(), n(delivery.attempts)),
    ]);
    if let Some(reason) = &delivery.reason {
        map.insert("reason".into(), s(reason));
    }
    if let Some(id) = &delivery.provider_message_id {
        map.insert("providerMessageId".into(), s(id));
    }
    if let Some(until) = delivery.claimed_until {
        map.insert("claimedUntil".into(), n(until.timestamp()));
    }
    AttributeValue::M(map)
}

/// The shards of each kind of record in [`SWEEP_INDEX`], so that no partition of the index
/// takes every write of a busy table.
pub(super) const SWEEP_SHARDS: u32 = 16;

/// The kinds of record in [`SWEEP_INDEX`].
#[derive(Clone, Copy)]
pub(super) enum Swept {
    Export,
    Job,
    Quota,
}

impl Swept {
    pub(super) fn prefix(self) -> &'static str {
        match self {
            Self::Export => "EXPORT",
            Self::Job => "JOB",
            Self::Quota => "QUOTA",
        }
    }

    /// The index key of a record of this kind that belongs to `of` (an export id, an owner).
    pub(super) fn key(self, of: &str) -> AttributeValue {
        // FNV-1a: stable across builds and processes, unlike the standard library's hasher.
        let hash = of.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        s(format!("{}#{:x}", self.prefix(), hash % SWEEP_SHARDS))
    }

    pub(super) fn of_export(id: &ExportId) -> AttributeValue {
        Self::Export.key(&id.to_string())
    }

    pub(super) fn of_job(job: &JobKey) -> AttributeValue {
        Self::Job.key(&job.export_id.to_string())
    }
}
