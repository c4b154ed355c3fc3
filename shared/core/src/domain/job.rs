//! A job: one run of one export (spec section 7), `notProcessed -> inProgress -> done | failed`,
//! and `done -> expired` once its files pass the retention period.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::export::{ExportId, ExportStatus, RunEvent};
use super::notification::Delivery;
use super::request::NotifyPolicy;
use super::timestamp::rfc3339;

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JobStatus {
    NotProcessed,
    InProgress,
    Done,
    Failed,
    Expired,
    /// An occurrence of a recurring export that passed while it was paused: never run, never
    /// caught up, nothing sent.
    Skipped,
}

impl JobStatus {
    /// The status a one-time export takes from its job that ended so (its settling); `None`
    /// while the job has not ended.
    pub fn settles_as(self) -> Option<ExportStatus> {
        match self {
            Self::Done | Self::Expired => Some(ExportStatus::Done),
            Self::Failed => Some(ExportStatus::Failed),
            Self::NotProcessed | Self::InProgress | Self::Skipped => None,
        }
    }

    /// True when a message with this policy goes out for a job that ended so.
    pub fn notifies(self, policy: NotifyPolicy) -> bool {
        matches!(
            (policy, self),
            (NotifyPolicy::OnSuccess, JobStatus::Done) | (NotifyPolicy::OnFailure, JobStatus::Failed)
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotProcessed => "notProcessed",
            Self::InProgress => "inProgress",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::NotProcessed,
            Self::InProgress,
            Self::Done,
            Self::Failed,
            Self::Expired,
            Self::Skipped,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// Which job: the one of an export's occurrence (its trigger's `scheduledAt`), so a duplicate
/// trigger names the same job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JobKey {
    pub export_id: ExportId,
    pub scheduled_at: DateTime<Utc>,
}

impl RunEvent {
    /// The id of the job this trigger runs: its occurrence time, compact (`20260329T010000000Z`),
    /// so a duplicate trigger names the same job.
    pub fn job_id(&self) -> String {
        self.job().job_id()
    }

    /// The job this trigger runs.
    pub fn job(&self) -> JobKey {
        JobKey {
            export_id: self.export_id,
            scheduled_at: self.scheduled_at,
        }
    }
}

impl JobKey {
    /// The job's id: its occurrence time, compact (`20260329T010000000Z`).
    pub fn job_id(&self) -> String {
        self.scheduled_at.format(JOB_ID_FORMAT).to_string()
    }

    /// The key of the job `job_id` names (the key's time to the millisecond, as job ids carry
    /// it and job items are keyed); `None` when it is not a job id.
    pub fn of_job_id(export_id: ExportId, job_id: &str) -> Option<Self> {
        let at = chrono::NaiveDateTime::parse_from_str(job_id, JOB_ID_FORMAT).ok()?;
        Some(Self {
            export_id,
            scheduled_at: at.and_utc(),
        })
    }
}

const JOB_ID_FORMAT: &str = "%Y%m%dT%H%M%S%3fZ";

/// How a job ended, as it is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobEnd {
    /// `done` or `failed`.
    pub status: JobStatus,
    pub detail: JobDetail,
    pub finished_at: DateTime<Utc>,
    /// When the files and the record expire (done jobs only).
    pub expires_at: Option<DateTime<Utc>>,
}

impl JobEnd {
    /// The end of an occurrence skipped while its export was paused, recorded at `now`; it
    /// expires after `retention` like any job.
    pub fn skipped(now: DateTime<Utc>, retention: chrono::TimeDelta) -> Self {
        Self {
            status: JobStatus::Skipped,
            detail: JobDetail {
                error: Some("skipped: the export was paused".to_owned()),
                ..JobDetail::default()
            },
            finished_at: now,
            expires_at: Some(now + retention),
        }
    }

    /// The end of a job that failed for `reason` at `now`, keeping what it had recorded
    /// (`detail`); it expires after `retention` like any job, so an export's record does not
    /// grow without bound.
    pub fn failed(
        reason: String,
        detail: JobDetail,
        now: DateTime<Utc>,
        retention: chrono::TimeDelta,
    ) -> Self {
        Self {
            status: JobStatus::Failed,
            detail: JobDetail {
                error: Some(reason),
                ..detail
            },
            finished_at: now,
            expires_at: Some(now + retention),
        }
    }
}

/// A file a job wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileRecord {
    /// The S3 key: `exports/{exportId}/{jobId}/{name}`.
    pub key: String,
    pub rows: u64,
    pub bytes: u64,
}

/// The window one item was exported for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemWindow {
    pub from: Option<String>,
    pub to: String,
}

/// What a job did, beyond its status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobDetail {
    pub windows: Vec<ItemWindow>,
    pub files: Vec<FileRecord>,
    /// The zip of all files, for a job with several items.
    pub archive: Option<FileRecord>,
    pub warnings: Vec<String>,
    pub error: Option<String>,
    /// The version of its export the job ran with (absent on jobs recorded before versions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// What one item of a job spread over parallel item runs ended with: its window, its file and
/// its warnings, kept on the job until the last item assembles them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemOutcome {
    pub window: ItemWindow,
    pub file: FileRecord,
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// How a job is spread over parallel item runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spread {
    /// The job's items.
    pub items: u32,
    /// Items launched so far (the first `items` indexes below it).
    pub launched: u32,
    /// Items not yet done.
    pub left: u32,
    /// The items done, by index.
    pub done: Vec<u32>,
}

/// The run of one item of a spread job: whether it is running or done, its leg, its lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemRun {
    pub item: u32,
    pub done: bool,
    pub leg: u32,
    pub attempts: u32,
    /// `attempts` when its current leg was checkpointed (absent on records written before).
    pub leg_from: Option<u32>,
    pub lease_until: DateTime<Utc>,
    pub launched_at: DateTime<Utc>,
    /// When the item's run recorded its outcome (absent on records written before).
    pub done_at: Option<DateTime<Utc>>,
}

/// How many attempts the current leg took: those since its checkpoint; for records written
/// before checkpoints counted them, the attempts beyond one per earlier leg.
pub fn leg_attempts(attempts: u32, leg: u32, leg_from: Option<u32>) -> u32 {
    match leg_from {
        Some(from) => attempts.saturating_sub(from),
        None => attempts.saturating_sub(leg),
    }
}

impl ItemRun {
    /// The run that ends a spread job of `items` items once all are done (zips the files,
    /// records the job, hands it off) is claimed as item `items`: one finisher at a time, its
    /// lease and attempts kept like an item's.
    pub fn finisher(items: u32) -> u32 {
        items
    }

    /// How many attempts its current leg took (see [`leg_attempts`]).
    pub fn leg_attempts(&self) -> u32 {
        leg_attempts(self.attempts, self.leg, self.leg_from)
    }
}

/// What counting a finished item on its job gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// Counted: this many items are still to finish (0: this one was the last).
    Left(u32),
    /// This item was counted before (a retry of an item that had finished).
    Already,
    /// The job is no longer in progress (another item failed it).
    JobEnded,
}

/// One run of an export.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub job_id: String,
    pub scheduled_at: DateTime<Utc>,
    pub status: JobStatus,
    pub started_at: Option<DateTime<Utc>>,
    /// How many attempts claimed the job: more than one when a retry took over an attempt that
    /// crashed, timed out or stopped on an error.
    pub attempts: u32,
    /// The job's leg: how many times it continued in a fresh invocation (0: never).
    pub leg: u32,
    /// `attempts` when its current leg was checkpointed (absent on records written before).
    pub leg_from: Option<u32>,
    /// When its items run in parallel, how they stand.
    pub spread: Option<Spread>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When the files and the record expire (done jobs only).
    pub expires_at: Option<DateTime<Utc>>,
    pub detail: JobDetail,
    /// What became of each notification message, by message index.
    pub deliveries: Vec<Delivery>,
}

impl Job {
    /// How many attempts its current leg took (see [`leg_attempts`]).
    pub fn leg_attempts(&self) -> u32 {
        leg_attempts(self.attempts, self.leg, self.leg_from)
    }

    /// The status as of `now`: a done job past its retention is `expired`.
    pub fn status_at(&self, now: DateTime<Utc>) -> JobStatus {
        match (self.status, self.expires_at) {
            (JobStatus::Done, Some(expiry)) if now >= expiry => JobStatus::Expired,
            (status, _) => status,
        }
    }

    /// The file a download gives: the zip when there are several, else the one file.
    pub fn download(&self) -> Option<&FileRecord> {
        self.detail
            .archive
            .as_ref()
            .or(match self.detail.files.as_slice() {
                [one] => Some(one),
                _ => None,
            })
    }

    /// The API's view of the job as of `now`.
    pub fn to_json(&self, now: DateTime<Utc>) -> Value {
        json!({
            "jobId": self.job_id,
            "scheduledAt": rfc3339(self.scheduled_at),
            "status": self.status_at(now).as_str(),
            "startedAt": self.started_at.map(rfc3339),
            "attempts": self.attempts,
            "finishedAt": self.finished_at.map(rfc3339),
            "expiresAt": self.expires_at.map(rfc3339),
            "windows": self.detail.windows,
            "files": self.detail.files,
            "archive": self.detail.archive,
            "warnings": self.detail.warnings,
            "error": self.detail.error,
            "version": self.detail.version,
            "notifications": self.deliveries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legs_attempts_count_from_its_checkpoint() {
        // 100 legs, 110 attempts in all, one since the last checkpoint: the leg's first.
        assert_eq!(leg_attempts(110, 100, Some(109)), 1);
        assert_eq!(leg_attempts(113, 100, Some(109)), 4);
        // A record from before: the attempts beyond one per earlier leg.
        assert_eq!(leg_attempts(103, 100, None), 3);
        assert_eq!(leg_attempts(1, 100, Some(5)), 0, "never below zero");
    }

    #[test]
    fn only_an_ended_job_settles_its_export_and_a_failed_end_expires() {
        assert_eq!(JobStatus::Done.settles_as(), Some(ExportStatus::Done));
        assert_eq!(JobStatus::Expired.settles_as(), Some(ExportStatus::Done));
        assert_eq!(JobStatus::Failed.settles_as(), Some(ExportStatus::Failed));
        assert_eq!(JobStatus::InProgress.settles_as(), None);
        assert_eq!(JobStatus::NotProcessed.settles_as(), None);
        let now = DateTime::from_timestamp(1_767_225_600, 0).expect("in range");
        let end = JobEnd::failed(
            "why".into(),
            JobDetail::default(),
            now,
            chrono::TimeDelta::days(7),
        );
        assert_eq!(
            (end.status, end.detail.error.as_deref()),
            (JobStatus::Failed, Some("why"))
        );
        assert_eq!(end.expires_at, Some(now + chrono::TimeDelta::days(7)));
    }

    #[test]
    fn policies_match_outcomes() {
        assert!(JobStatus::Done.notifies(NotifyPolicy::OnSuccess));
        assert!(!JobStatus::Failed.notifies(NotifyPolicy::OnSuccess));
        assert!(JobStatus::Failed.notifies(NotifyPolicy::OnFailure));
        assert!(!JobStatus::Done.notifies(NotifyPolicy::OnFailure));
    }

    #[test]
    fn a_job_id_names_its_key_back() {
        let export = ExportId::new_random();
        let at = DateTime::from_timestamp(1_774_746_000, 123_456_789).expect("in range");
        let key = JobKey {
            export_id: export,
            scheduled_at: at,
        };
        assert_eq!(key.job_id(), "20260329T010000123Z");
        let back = JobKey::of_job_id(export, &key.job_id()).expect("a job id");
        assert_eq!(back.job_id(), key.job_id());
        assert_eq!(back.scheduled_at.timestamp_subsec_millis(), 123);
        assert_eq!(JobKey::of_job_id(export, "warm-up"), None);
    }
}
