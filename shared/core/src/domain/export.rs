//! A stored export: the validated request plus its identity, owner, lifecycle and timestamps,
//! the run trigger's event, and the listing rules of `GET /exports` (filters, sort, pages).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::request::{ExportRequest, ExportType, Problem};
use super::timestamp::rfc3339;

/// The id of an export: a UUID chosen by the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExportId(Uuid);

impl ExportId {
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl FromStr for ExportId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(s).map(Self)
    }
}

impl fmt::Display for ExportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Where an export is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExportStatus {
    /// Stored, trigger not yet armed: invisible to the API, so a failed arm leaves nothing live.
    Creating,
    /// A one-time export whose run has been launched and not yet finished.
    Queued,
    /// A recurring export whose next run is armed.
    Scheduled,
    /// A recurring export paused by its owner: nothing armed, nothing runs.
    Paused,
    InProgress,
    Done,
    Failed,
}

impl ExportStatus {
    pub const VISIBLE: [ExportStatus; 6] = [
        Self::Queued,
        Self::Scheduled,
        Self::Paused,
        Self::InProgress,
        Self::Done,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Queued => "queued",
            Self::Scheduled => "scheduled",
            Self::Paused => "paused",
            Self::InProgress => "inProgress",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    /// True when an export in this state counts against its owner's quota of queued exports.
    pub fn counts_against_quota(self) -> bool {
        matches!(
            self,
            Self::Creating | Self::Queued | Self::Scheduled | Self::Paused | Self::InProgress
        )
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Creating]
            .into_iter()
            .chain(Self::VISIBLE)
            .find(|s| s.as_str() == text)
    }
}

/// An export as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    pub id: ExportId,
    /// The `sub` claim of the creator.
    pub owner: String,
    /// The creator's `email` claim, the default recipient of email messages.
    pub owner_email: Option<String>,
    pub request: ExportRequest,
    pub status: ExportStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// The next armed run of a recurring export.
    pub next_run_at: Option<DateTime<Utc>>,
    /// Counts the changes of its definition and state by its owner (edits, pauses, resumes),
    /// from 1 at create: the `ETag` of the API, and what each job records it ran with.
    pub version: u64,
}

impl Export {
    /// The API's view: the normalised request plus `id`, `status` and the timestamps.
    pub fn to_json(&self) -> Value {
        let mut out = self.request.to_json();
        if let Value::Object(map) = &mut out {
            map.insert("id".into(), json!(self.id.to_string()));
            map.insert("status".into(), json!(self.status.as_str()));
            map.insert("createdAt".into(), json!(rfc3339(self.created_at)));
            map.insert("updatedAt".into(), json!(rfc3339(self.updated_at)));
            map.insert("deletedAt".into(), json!(self.deleted_at.map(rfc3339)));
            map.insert("nextRunAt".into(), json!(self.next_run_at.map(rfc3339)));
            map.insert("version".into(), json!(self.version));
        }
        out
    }

    /// The `ETag` of this version: its number, quoted.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }

    /// True when the API shows it: armed and not deleted.
    pub fn is_visible(&self) -> bool {
        self.deleted_at.is_none() && self.status != ExportStatus::Creating
    }
}

/// The event that starts one run of an export, from any trigger (spec section 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunEvent {
    pub export_id: ExportId,
    /// RFC 3339 in UTC: the occurrence this run is for (the creation time for `oneTime`).
    #[serde(with = "super::timestamp::rfc3339_millis")]
    pub scheduled_at: DateTime<Utc>,
    /// For a recurring export, the occurrence's index `k`: what identifies it exactly, whatever
    /// precision `scheduledAt` travels with and whatever a newer timezone database computes.
    /// Absent in events armed before it was added (and for one-time exports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurrence: Option<u64>,
    /// A continuation of a job that ran out of its invocation's budget: which leg of the job it
    /// is (1 for the first continuation). The job's checkpoint of that leg says where it stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leg: Option<u32>,
    /// The run of one item of a job spread over parallel invocations: its index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<u32>,
    /// An extra job asked for by its owner (`POST /exports/{id}/runs`), outside the chain: it
    /// never moves the chain; its items' window is the one given, else its occurrence's (a
    /// recurring export's latest), else their own as of its time (a one-time export's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Extra>,
}

/// What an extra job's trigger says of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Extra {
    /// The window of every item, `[from, to)`, when the caller gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<ExtraWindow>,
}

/// The window an extra job was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtraWindow {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl RunEvent {
    /// The event of occurrence `k` of a recurring export.
    pub fn occurrence(export_id: ExportId, k: u64, at: DateTime<Utc>) -> Self {
        Self {
            export_id,
            scheduled_at: at,
            occurrence: Some(k),
            leg: None,
            item: None,
            extra: None,
        }
    }
}

/// The hand-off from run-export to notify when a job ends: one type for both sides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyEvent {
    pub export_id: ExportId,
    pub job_id: String,
}

/// The order of a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    CreatedAtAsc,
    CreatedAtDesc,
}

/// `GET /exports` query: filters, sort and page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListQuery {
    pub ids: Option<Vec<ExportId>>,
    pub status: Option<ExportStatus>,
    pub export_type: Option<ExportType>,
    /// `createdAt >= from`.
    pub from: Option<DateTime<Utc>>,
    /// `createdAt < to`.
    pub to: Option<DateTime<Utc>>,
    pub page: usize,
    pub page_size: usize,
    pub sort: Sort,
    /// `tagLabels`: labels an export must carry, every one.
    pub tag_labels: Vec<String>,
    /// `tagLabelValues`: `label:value` tags an export must carry, every one.
    pub tag_values: Vec<(String, String)>,
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPage {
    pub results: Vec<Export>,
    pub page: usize,
    pub page_size: usize,
    pub total: usize,
}

impl ListPage {
    pub fn to_json(&self) -> Value {
        json!({
            "results": self.results.iter().map(Export::to_json).collect::<Vec<_>>(),
            "page": self.page,
            "pageSize": self.page_size,
            "total": self.total,
        })
    }
}

pub const MAX_PAGE_SIZE: usize = 100;

impl ListQuery {
    /// Reads query parameters (`ids` comma-separated or repeated; times as Unix seconds or
    /// RFC 3339). Fails with every problem, at `/query/<name>`.
    pub fn parse<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, Vec<Problem>> {
        let mut query = Self {
            ids: None,
            status: None,
            export_type: None,
            from: None,
            to: None,
            page: 1,
            page_size: 20,
            sort: Sort::CreatedAtDesc,
            tag_labels: Vec::new(),
            tag_values: Vec::new(),
        };
        let mut problems = Vec::new();
        let mut fail =
            |name: &str, message: String| problems.push(Problem::new(format!("/query/{name}"), message));
        for (name, value) in params {
            match name {
                "ids" => {
                    for part in value.split(',').filter(|p| !p.is_empty()) {
                        match part.trim().parse::<ExportId>() {
                            Ok(id) => query.ids.get_or_insert_with(Vec::new).push(id),
                            Err(_) => fail(name, format!("`{part}` is not an export id (a UUID)")),
                        }
                    }
                }
                "status" => match ExportStatus::parse(value).filter(|s| *s != ExportStatus::Creating) {
                    Some(s) => query.status = Some(s),
                    None => {
                        let names: Vec<&str> = ExportStatus::VISIBLE.iter().map(|s| s.as_str()).collect();
                        fail(name, format!("must be one of: {}", names.join(", ")))
                    }
                },
                "type" => match ExportType::parse(value) {
                    Some(t) => query.export_type = Some(t),
                    None => fail(name, "must be one of: oneTime, recurring".into()),
                },
                "from" | "to" => match parse_time(value) {
                    Some(t) if name == "from" => query.from = Some(t),
                    Some(t) => query.to = Some(t),
                    None => fail(name, "must be Unix seconds or an RFC 3339 time".into()),
                },
                "page" => match value.parse::<usize>() {
                    Ok(p) if p >= 1 => query.page = p,
                    _ => fail(name, "must be a whole number from 1".into()),
                },
                "pageSize" => match value.parse::<usize>() {
                    Ok(s) if (1..=MAX_PAGE_SIZE).contains(&s) => query.page_size = s,
                    _ => fail(name, format!("must be a whole number from 1 to {MAX_PAGE_SIZE}")),
                },
                "sort" => match value {
                    "createdAt" | "+createdAt" => query.sort = Sort::CreatedAtAsc,
                    "-createdAt" => query.sort = Sort::CreatedAtDesc,
                    _ => fail(name, "must be `createdAt` (oldest first) or `-createdAt` (newest first)".into()),
                },
                // Repeated or comma-separated, as `ids` (a tag's label and value hold no comma).
                "tagLabels" => {
                    for part in value.split(',') {
                        if part.is_empty() || part.chars().count() > 128 {
                            fail(name, "must be tag labels of 1 to 128 characters".into());
                        } else {
                            query.tag_labels.push(part.to_owned());
                        }
                    }
                }
                "tagLabelValues" => {
                    for part in value.split(',') {
                        match part.split_once(':') {
                            Some((label, value)) if !label.is_empty() && !value.is_empty() => {
                                query.tag_values.push((label.to_owned(), value.to_owned()));
                            }
                            _ => fail(name, format!("`{part}` is not `label:value` (a tag's label and value)")),
                        }
                    }
                }
                other => fail(
                    other,
                    format!("unknown parameter `{other}`; expected one of: ids, status, type, from, to, page, pageSize, sort, tagLabels, tagLabelValues"),
                ),
            }
        }
        if problems.is_empty() {
            Ok(query)
        } else {
            Err(problems)
        }
    }

    /// Filters, sorts and pages an owner's exports. Hidden ones (deleted, not yet armed) never show.
    pub fn apply(&self, mut exports: Vec<Export>) -> ListPage {
        exports.retain(|e| {
            e.is_visible()
                && self.ids.as_ref().is_none_or(|ids| ids.contains(&e.id))
                && self.status.is_none_or(|s| s == e.status)
                && self.export_type.is_none_or(|t| t == e.request.export_type())
                && self.from.is_none_or(|f| e.created_at >= f)
                && self.to.is_none_or(|t| e.created_at < t)
                && self
                    .tag_labels
                    .iter()
                    .all(|label| e.request.tags.iter().any(|t| t.label == *label))
                && self.tag_values.iter().all(|(label, value)| {
                    e.request
                        .tags
                        .iter()
                        .any(|t| t.label == *label && t.value == *value)
                })
        });
        exports.sort_by_key(|e| (e.created_at, e.id));
        if self.sort == Sort::CreatedAtDesc {
            exports.reverse();
        }
        let total = exports.len();
        let start = (self.page - 1).saturating_mul(self.page_size);
        let results = exports.into_iter().skip(start).take(self.page_size).collect();
        ListPage {
            results,
            page: self.page,
            page_size: self.page_size,
            total,
        }
    }
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(secs) = text.parse::<i64>() {
        return DateTime::from_timestamp(secs, 0);
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
