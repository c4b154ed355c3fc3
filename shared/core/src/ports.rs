//! The traits the functions depend on, speaking domain types, each small and named for a role.
//! A function's `Deps` takes only the roles it uses, so its ports mirror its IAM policy in the
//! template (notify reads exports and jobs and writes only its delivery log). Adapters implement
//! them; tests drive the handlers through the real adapters against emulated AWS, and a
//! fault-injecting double overrides one method of one small trait.

use std::error::Error as StdError;
use std::path::Path;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::job::{Counted, ItemOutcome, ItemRun, Job, JobEnd, JobKey};
use crate::domain::notification::{Composed, Delivery};
use crate::domain::request::{EmailAddress, Target};
use crate::domain::series::Point;
use crate::domain::{Export, ExportId, ExportStatus, NotifyEvent, RunEvent, Window};

/// A boxed cause from an SDK or transport, kept for the log.
pub type Cause = Box<dyn StdError + Send + Sync + 'static>;

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the owner already has the maximum number of queued exports")]
    QuotaReached,
    #[error("an export with this id already exists")]
    AlreadyExists,
    #[error("no such export")]
    NotFound,
    #[error("a stored record is unreadable: {0}")]
    Corrupt(String),
    #[error("the store is unavailable")]
    Unavailable(#[source] Cause),
}

/// The exports as stored, read: every function reads them (DynamoDB `GetItem`, `Query`).
#[async_trait]
pub trait Exports: Send + Sync {
    /// The export with this id, whatever its state; `None` when there is none.
    async fn get(&self, id: &ExportId) -> Result<Option<Export>, StoreError>;

    /// Every export of an owner, deleted ones included (the caller filters).
    async fn list_by_owner(&self, owner: &str) -> Result<Vec<Export>, StoreError>;
}

/// The API's writes to exports: create, arm, give up, delete; each with the owner's quota.
#[async_trait]
pub trait ExportLifecycle: Send + Sync {
    /// Stores a new export (status `creating`), counting it against its owner's quota of queued
    /// exports. Fails with `QuotaReached` at `max_queued`, `AlreadyExists` for a taken id.
    async fn insert(&self, export: &Export, max_queued: u32) -> Result<(), StoreError>;

    /// Marks a stored export armed: its new status and next run. Only an export still in
    /// `creating` changes; otherwise it fails with `NotFound` (a one-time run may be faster).
    async fn activate(
        &self,
        id: &ExportId,
        status: ExportStatus,
        next_run_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Removes an export whose trigger could not be armed, and gives its quota back (the
    /// counter touched `at`, the caller's time).
    async fn discard(&self, export: &Export, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Sets `deletedAt` on a live export of `owner`, gives its quota back, and lets the record
    /// expire at `expires_at`. Fails with `NotFound` when the export is missing, another
    /// owner's, or already deleted.
    async fn soft_delete(
        &self,
        id: &ExportId,
        owner: &str,
        at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Export, StoreError>;

    /// Writes an owner's change of a live recurring export (an edit, a pause, a resume): its
    /// request, status, `updatedAt` and `export.version` as `export` holds them (and its next
    /// run when `moves_chain`; else the run's own moves stand), only while the stored version
    /// is `export.version - 1` and the export is not deleted; `false` when that did not hold
    /// (another change came first).
    async fn revise(&self, export: &Export, moves_chain: bool) -> Result<bool, StoreError>;
}

/// What a run writes on its export: the next armed occurrence, and a one-time export's end.
#[async_trait]
pub trait ExportRuns: Send + Sync {
    /// Moves a live recurring export's next run forward to `next`, never back, while it is
    /// scheduled at `version` (the version the run read: a chain its owner paused or edited
    /// since is not moved by a run of what it was): `Advanced` when it was earlier (or unset),
    /// `Same` when it is `next` already (a retried attempt), `Behind` when a later occurrence is
    /// recorded (a late or replayed trigger), the export changed, or it is gone.
    ///
    /// First, each job of `passed` (the occurrences the chain moves past) that is not on record
    /// is recorded `notProcessed`, unclaimed and never attempted, so that an occurrence whose
    /// every attempt dies after the chain moved on is found among the unfinished jobs.
    async fn advance_next_run(
        &self,
        (id, version): (&ExportId, u64),
        next: DateTime<Utc>,
        at: DateTime<Utc>,
        passed: &[JobKey],
    ) -> Result<Advance, StoreError>;

    /// Sets a one-time export's final status and gives its quota back, once.
    async fn settle_one_time(
        &self,
        export: &Export,
        status: ExportStatus,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

/// What moving the next run to an occurrence did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advance {
    Advanced,
    Same,
    Behind,
}

/// The jobs of an export, read (status, download, notify, a duplicate trigger).
#[async_trait]
pub trait JobHistory: Send + Sync {
    /// Every job of an export, oldest first (the partition expires with its jobs, so it stays
    /// bounded by the retention; prefer the two below where they do).
    async fn jobs(&self, id: &ExportId) -> Result<Vec<Job>, StoreError>;

    /// One job, read by its key.
    async fn job(&self, job: &JobKey) -> Result<Option<Job>, StoreError>;

    /// At most `limit` jobs, newest first, scheduled before `before` when given.
    async fn recent_jobs(
        &self,
        id: &ExportId,
        before: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError>;
}

/// The job ledger of run-export: one job per trigger, held by one attempt at a time, leg by
/// leg (how it ends: [`JobEnds`]).
#[async_trait]
pub trait JobLedger: Send + Sync {
    /// Claims the job of one trigger for this attempt until `lease_until`: records it as
    /// `notProcessed` when it is new, or takes it over when an earlier attempt left it unfinished
    /// (`notProcessed` or `inProgress`) and that attempt's lease has passed (it crashed or timed
    /// out, or gave the job back). `false` when the job is finished or another attempt holds it:
    /// a duplicate trigger.
    async fn open_job(
        &self,
        job: &JobKey,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Gives back this attempt's claim on an unfinished job at `at`, so that a retry may take it
    /// at once, while the reconciler's grace still counts from `at` (a job given back for an
    /// outage is the runtime's retry's, not a stalled one); does nothing to a finished job.
    async fn release_job(&self, job: &JobKey, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Marks a job `inProgress`.
    async fn start_job(&self, job: &JobKey, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Commits leg `leg`'s checkpoint of an unfinished job this attempt holds at leg `leg - 1`:
    /// the job's leg becomes `leg` and its lease is given back at `at`, so that the continuation
    /// may take it at once while the reconciler's grace counts from `at` (the continuation may
    /// wait in Lambda's queue). `false` when the job is not at leg `leg - 1` (another writer
    /// moved it).
    async fn checkpoint_job(&self, job: &JobKey, leg: u32, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Claims an unfinished job at leg `leg` for a continuation until `lease_until`, when no
    /// attempt holds it; `false` otherwise (a duplicate continuation, a stale one).
    async fn resume_job(
        &self,
        job: &JobKey,
        leg: u32,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// How a job ends: its end recorded once, a job that never ran recorded, the hand-off to
/// notify marked.
#[async_trait]
pub trait JobEnds: Send + Sync {
    /// Records how a job ended: `done` (with its files' expiry) or `failed`, unless it ended
    /// already (another attempt ended it); `true` when this call ended it.
    async fn finish_job(&self, job: &JobKey, end: &JobEnd) -> Result<bool, StoreError>;

    /// Records a job that did not run (a missed occurrence, a trigger that is no occurrence) as
    /// `failed` with its reason, unless the job exists already. It sends no messages.
    async fn record_unrun(&self, job: &JobKey, end: &JobEnd) -> Result<(), StoreError>;

    /// Records that a finished job was handed to notify (so the reconciler need not).
    async fn handed_off(&self, job: &JobKey) -> Result<(), StoreError>;

    /// Takes a finished job out of the reconciler's hands for good: its messages were not
    /// finished within the day the reconciler keeps handing it to notify. It leaves the
    /// sweep's index (rather than being read by every sweep until its record expires).
    async fn stop_handing_off(&self, job: &JobKey) -> Result<(), StoreError>;
}

/// A job spread over parallel invocations, one item each: the spread, the items launched and
/// left, their outcomes and runs (each item's own claim: [`ItemLedger`]).
#[async_trait]
pub trait JobSpread: Send + Sync {
    /// Spreads an unfinished job over `items` item runs, `launched` of them to be launched now.
    /// `false` when it was spread already.
    async fn spread_job(&self, job: &JobKey, items: u32, launched: u32) -> Result<bool, StoreError>;

    /// Records that item `item` is launched (before its invocation is asked for), so that a
    /// launch that never arrives is found.
    async fn launch_item(&self, job: &JobKey, item: u32, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Takes the next item to launch, when one is left.
    async fn next_item(&self, job: &JobKey, items: u32) -> Result<Option<u32>, StoreError>;

    /// The outcomes of a spread job's items, by index.
    async fn item_outcomes(&self, job: &JobKey) -> Result<Vec<(u32, ItemOutcome)>, StoreError>;

    /// The runs of a spread job's launched items (and of its finisher, [`ItemRun::finisher`]).
    async fn item_runs(&self, job: &JobKey) -> Result<Vec<ItemRun>, StoreError>;
}

/// The runs of the items of a spread job: each item claimed, leased, checkpointed and continued
/// like a job; their outcomes counted on the job with one atomic write, so exactly one item (the
/// last) assembles the job.
#[async_trait]
pub trait ItemLedger: Send + Sync {
    /// Claims item `item` at leg `leg` until `lease_until` when no attempt holds it; `false`
    /// for a duplicate, a stale continuation, or an item done.
    async fn claim_item(
        &self,
        job: &JobKey,
        item: u32,
        leg: u32,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Gives back this attempt's claim on an item.
    async fn release_item(&self, job: &JobKey, item: u32) -> Result<(), StoreError>;

    /// Commits an item's checkpoint of leg `leg` (from leg `leg - 1`) and gives its claim back at
    /// `at` (the reconciler's grace counts from there).
    async fn checkpoint_item(
        &self,
        job: &JobKey,
        item: u32,
        leg: u32,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Records an item's outcome on its job and counts it, atomically; its run is marked done at
    /// `at`.
    async fn item_done(
        &self,
        job: &JobKey,
        item: u32,
        outcome: &ItemOutcome,
        at: DateTime<Utc>,
    ) -> Result<Counted, StoreError>;
}

/// Who asks to read a channel: the subject of their token, and the credential they presented
/// (the request's `Authorization` header), for checkers that ask the platform as the caller.
/// A run re-checks with the owner's subject and no credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller<'a> {
    pub subject: &'a str,
    pub credential: Option<&'a str>,
}

/// One read an item makes: a channel, its subtopic, a SenML name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChannelRead<'a> {
    /// The channel's domain, on platforms that have domains.
    pub domain: Option<uuid::Uuid>,
    pub channel: uuid::Uuid,
    pub subtopic: &'a str,
    pub name: &'a str,
    /// The message table read (Connhex's `format`), when not the default.
    pub table: Option<&'a str>,
}

impl<'a> ChannelRead<'a> {
    /// Every read an item makes: one per target (a wide item names several, each checked).
    pub fn of_item(item: &'a crate::domain::request::Item) -> Vec<Self> {
        item.targets()
            .into_iter()
            .map(|(name, _)| ChannelRead {
                domain: item.domain_id,
                channel: item.channel_id,
                subtopic: item.subtopic.as_str(),
                name: name.as_str(),
                table: item.table.map(|t| t.as_str()),
            })
            .collect()
    }
}

/// Why a channel's access could not be decided.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The checker did not answer, or answered something other than yes or no.
    #[error("the channel access checker is unavailable")]
    Unavailable(#[source] Cause),
    /// This checker needs the caller's own credential, and there is none.
    #[error("the request carries no credential to check channel access with")]
    NoCredential,
}

/// Whether a caller may read a channel (the platform's answer, or a policy endpoint's).
#[async_trait]
pub trait ChannelAccess: Send + Sync {
    /// `Ok(false)` when the caller may not read it.
    async fn may_read(&self, caller: &Caller<'_>, read: &ChannelRead<'_>) -> Result<bool, AccessError>;
}

/// What a daily budget counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spend {
    /// A job run.
    Run,
    /// Message `index` of a job.
    Message(usize),
}

/// Each owner's daily budgets of runs and messages, spent once per job and per message of a job.
#[async_trait]
pub trait Budgets: Send + Sync {
    /// Spends one `spend` of `job` from `owner`'s budget for the UTC day of `at`: `true` when it
    /// is spent now or was already (a retried attempt spends nothing twice), `false` when the
    /// owner has spent `limit` that day.
    async fn spend(
        &self,
        owner: &str,
        job: &JobKey,
        spend: Spend,
        at: DateTime<Utc>,
        limit: u32,
    ) -> Result<bool, StoreError>;
}

/// What the reconciler sweeps: the live exports, unfinished jobs whose lease ended long ago,
/// ended jobs notify has not finished, and the per-owner counters of queued exports. Each is
/// found among the records that are work (a sparse index in the DynamoDB adapter), never by
/// reading every record kept: a sweep's cost follows the live exports and the jobs under way,
/// not the history.
#[async_trait]
pub trait Sweep: Send + Sync {
    /// The exports that are live: `creating`, `queued`, `scheduled` or running, and not deleted
    /// (read from an index that may lag a write by a moment).
    async fn live_exports(&self) -> Result<Vec<Export>, StoreError>;

    /// Jobs still `notProcessed` or `inProgress` whose lease ended before `lease_before`.
    async fn stalled_jobs(&self, lease_before: DateTime<Utc>) -> Result<Vec<(ExportId, Job)>, StoreError>;

    /// Records a stalled job's end, only while it is still unfinished and its lease ended before
    /// `lease_before` (a live attempt keeps it); `false` when it moved on meanwhile.
    async fn abandon_job(
        &self,
        job: &JobKey,
        end: &JobEnd,
        lease_before: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Jobs that ended before `before` whose messages notify never finished: never handed to
    /// it, or left by its last run with a message another run was sending.
    async fn unhanded_jobs(&self, before: DateTime<Utc>) -> Result<Vec<(ExportId, Job)>, StoreError>;

    /// Each owner's counter of queued exports, but those changed since `settled_before`: a
    /// counter changed a moment ago may be ahead of the index the live exports are read from.
    async fn quotas(&self, settled_before: DateTime<Utc>) -> Result<Vec<(String, i64)>, StoreError>;

    /// Sets an owner's counter to `to`, only if it still reads `from`; `false` otherwise.
    async fn set_quota(&self, owner: &str, from: i64, to: i64) -> Result<bool, StoreError>;
}

/// Why arming or disarming a schedule failed.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("the scheduler is unavailable")]
    Unavailable(#[source] Cause),
}

/// The one-time `at(...)` schedules that trigger recurring runs.
#[async_trait]
pub trait RunSchedules: Send + Sync {
    /// Creates or moves the export's schedule to fire once at `event.scheduled_at`.
    async fn arm(&self, event: &RunEvent) -> Result<(), ScheduleError>;

    /// Removes the export's schedule; removing one that is not there succeeds.
    async fn disarm(&self, id: &ExportId) -> Result<(), ScheduleError>;

    /// The exports that have a schedule.
    async fn armed(&self) -> Result<Vec<ExportId>, ScheduleError>;
}

/// Why a run could not be launched.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("the run could not be launched")]
    Unavailable(#[source] Cause),
}

/// Starts a run now, asynchronously (Lambda `Invoke`, type `Event`).
#[async_trait]
pub trait RunLauncher: Send + Sync {
    async fn launch(&self, event: &RunEvent) -> Result<(), LaunchError>;
}

/// The time, injected so the domain and the handlers never read a clock themselves.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// One series to read: a SenML name on a channel's subtopic, in a window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesQuery {
    /// The channel's domain, on platforms that have domains.
    pub domain: Option<String>,
    pub channel: String,
    pub subtopic: String,
    pub name: String,
    /// The message table to read (Connhex's `format`: `messages`, `params`, ...); `None` reads
    /// the reader's default.
    pub table: Option<String>,
    pub window: Window,
}

/// Why reading a series failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The reader refused (a 4xx, an unreadable answer): retrying cannot help.
    #[error("{0}")]
    Permanent(String),
    /// The reader refused the service's own credential (`401`/`403`): no run can read until
    /// the operator replaces it, so it fails at once and says so.
    #[error("the reader refused the service's credential: {0}")]
    Refused(String),
    /// The reader kept failing (timeouts, 5xx, 429) until the retries ran out.
    #[error("{0} (gave up after retrying)")]
    Exhausted(String),
    /// The consumer of the points failed.
    #[error("writing the points failed")]
    Sink(#[source] Cause),
}

/// Takes the points of a series slice by slice, oldest first.
#[async_trait]
pub trait SliceSink {
    async fn accept(&mut self, points: &[Point<'_>]) -> Result<(), Cause>;
    /// Every point before `until` has been accepted, and none at or after it: a place where
    /// reading can stop and later go on from `until` (an error stops the read there).
    async fn boundary(&mut self, until: DateTime<Utc>) -> Result<(), Cause> {
        let _ = until;
        Ok(())
    }
}

/// The platform's reader API.
#[async_trait]
pub trait SeriesReader: Send + Sync {
    /// Feeds the whole series to `sink`, oldest first, a bounded slice at a time; returns the
    /// number of points read.
    async fn read(&self, query: &SeriesQuery, sink: &mut (dyn SliceSink + Send)) -> Result<u64, ReadError>;

    /// Feeds the series' first messages to `sink`, oldest first: at most one page of them (a
    /// preview); returns how many messages the whole window holds.
    async fn first_page(
        &self,
        query: &SeriesQuery,
        sink: &mut (dyn SliceSink + Send),
    ) -> Result<u64, ReadError> {
        let _ = (query, sink);
        Err(ReadError::Permanent("this reader has no preview".into()))
    }
}

/// Why a file operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("the file store failed: {0}")]
    Unavailable(String, #[source] Cause),
}

/// Where finished files go (S3): each file visible whole or not at all.
#[async_trait]
pub trait FileStore: Send + Sync {
    /// Stores the finished local file at `path` under `key` with its content type; returns its
    /// size. Fails leaving nothing under `key` (how the bytes travel is the adapter's business).
    async fn put(&self, key: &str, path: &Path, content_type: &str) -> Result<u64, FileError>;
    /// Stores small bytes under `key` at once (a checkpoint, a tail kept between invocations).
    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), FileError>;
    /// A file's bytes (to attach it to an email, a checkpoint).
    async fn read(&self, key: &str) -> Result<Vec<u8>, FileError>;
    /// Removes a file; removing a missing one succeeds.
    async fn remove(&self, key: &str) -> Result<(), FileError>;
    /// Removes every file whose key starts with `prefix` (what an attempt that died left, files
    /// on their way included); returns how many there were.
    async fn remove_all(&self, prefix: &str) -> Result<u64, FileError>;
    /// A time-limited URL to download a file.
    async fn presign(&self, key: &str, expires_in: std::time::Duration) -> Result<String, FileError>;
}

/// A stored file read without holding it whole in memory.
#[async_trait]
pub trait FilePieces: Send + Sync {
    /// `len` bytes of a stored file from `offset` (fewer at its end, none past it).
    async fn read_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, FileError>;
    /// Copies a file into the local file at `path`, streaming; returns its size.
    async fn download(&self, key: &str, path: &Path) -> Result<u64, FileError>;
}

/// A file on its way to the store a piece at a time, across invocations: its size so far and
/// what the store needs to go on with it, which nobody but the store reads (for S3, the upload's
/// id and its parts' tags). Serialisable: a job's checkpoint keeps it between legs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Upload {
    size: u64,
    state: serde_json::Value,
}

impl Upload {
    /// A file begun with nothing in it yet, with the store's record of it.
    pub fn begun(state: serde_json::Value) -> Self {
        Self { size: 0, state }
    }

    /// A file `size` bytes long so far, with the store's record of it.
    pub fn resumed(size: u64, state: serde_json::Value) -> Self {
        Self { size, state }
    }

    /// The bytes appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The store's record of the file: for the store's adapter only.
    pub fn state(&self) -> &serde_json::Value {
        &self.state
    }

    /// A piece of `bytes` appended, and the store's record as it stands now.
    pub fn appended(&mut self, bytes: u64, state: serde_json::Value) {
        self.size += bytes;
        self.state = state;
    }
}

/// Files that grow: a file written across invocations goes to the store a piece at a time and
/// appears whole when finished, or never. How pieces travel (S3's parts, their tags, its
/// minimum size) is the adapter's.
#[async_trait]
pub trait GrowingFiles: Send + Sync {
    /// The size of every piece but the last (the store's part size).
    fn piece_bytes(&self) -> usize;
    /// Begins a file under `key`; nothing is visible there until [`GrowingFiles::finish`].
    async fn begin(&self, key: &str, content_type: &str) -> Result<Upload, FileError>;
    /// Appends the next piece (of [`GrowingFiles::piece_bytes`], or fewer for the last).
    async fn append(&self, key: &str, upload: &mut Upload, bytes: Vec<u8>) -> Result<(), FileError>;
    /// Ends the file: it appears whole under `key`.
    async fn finish(&self, key: &str, upload: &Upload) -> Result<(), FileError>;
    /// Abandons every file begun under `prefix` and never finished (begun by an attempt that
    /// died before it could record it); how many.
    async fn abandon_unfinished(&self, prefix: &str) -> Result<u64, FileError>;
}

/// The hand-off to notify when a job ends.
#[async_trait]
pub trait JobNotifier: Send + Sync {
    async fn job_ended(&self, event: &NotifyEvent) -> Result<(), LaunchError>;
}

/// Why one attempt to deliver a message failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth trying again (timeouts, 5xx, 429, throttling), after `retry_after` when told.
    #[error("{reason}")]
    Transient {
        reason: String,
        retry_after: Option<std::time::Duration>,
    },
    /// Trying again cannot help (a 4xx, a refused host, a bad address).
    #[error("{0}")]
    Permanent(String),
}

/// A file attached to an email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// An image shown in an email's HTML part (`<img src="cid:{id}">`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inline {
    pub id: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// An email to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    pub to: EmailAddress,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub attachment: Option<Attachment>,
    pub inline: Vec<Inline>,
}

/// Sends email (SES v2); returns the provider's message id.
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, email: &Email) -> Result<String, DeliveryError>;
}

/// Posts chat messages (Telegram, Slack, Discord); returns the provider's message id if any.
#[async_trait]
pub trait ChatPoster: Send + Sync {
    /// Fails permanently for an email target, or a webhook whose host is no longer allowed.
    async fn post(&self, target: &Target, message: &Composed) -> Result<Option<String>, DeliveryError>;
}

/// Where the deliveries of a job's messages are recorded.
#[async_trait]
pub trait DeliveryLog: Send + Sync {
    /// Claims message `index` of a job for sending until `claimed_until`: `false` when it was
    /// sent already, or another run is sending it and its claim has not lapsed (so a second
    /// notify run sends nothing twice, and a run that died does not keep a message unsent).
    async fn claim_delivery(
        &self,
        job: &JobKey,
        index: usize,
        at: DateTime<Utc>,
        claimed_until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Records how a message's delivery ended.
    async fn record_delivery(&self, job: &JobKey, delivery: &Delivery) -> Result<(), StoreError>;
    /// Records whether every message of a job ended (sent, failed, or not for its outcome) after
    /// a notify run: a job left with a message another run is still sending (which may have
    /// died) is handed to notify again by the sweep.
    async fn notified(&self, job: &JobKey, all_ended: bool) -> Result<(), StoreError>;
}

/// Where the keys of signed links are kept (SSM), read again when a link names a key the
/// reader does not hold: the keys were rotated since it started.
#[async_trait]
pub trait LinkKeys: Send + Sync {
    /// The keys as kept now.
    async fn current(&self) -> Result<crate::domain::link::LinkSigner, StoreError>;
}
