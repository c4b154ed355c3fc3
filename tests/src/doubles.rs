//! Test doubles shared by the integration tests: ports that record what they are asked, run it
//! in this process, or tell a time they are given. Each implements one small port.

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use exporter_core::domain::job::{ItemOutcome, JobKey};
use exporter_core::domain::{ExportId, NotifyEvent, RunEvent};
use exporter_core::ports::{Clock, JobNotifier, LaunchError, RunLauncher, RunSchedules};

/// A clock set to a given time.
pub struct At(pub DateTime<Utc>);

impl Clock for At {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// Records the runs it is asked to launch (a queue a test drains, or inspects).
#[derive(Default)]
pub struct Launches(pub Mutex<Vec<RunEvent>>);

impl Launches {
    /// The launches so far, taken out.
    pub fn take(&self) -> Vec<RunEvent> {
        self.0
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

#[async_trait]
impl RunLauncher for Launches {
    async fn launch(&self, event: &RunEvent) -> Result<(), LaunchError> {
        if let Ok(mut launched) = self.0.lock() {
            launched.push(event.clone());
        }
        Ok(())
    }
}

/// Runs a launched occurrence at once, in this process, as run-export would.
pub struct RunsInProcess<'a>(pub run_export::Deps<'a>);

#[async_trait]
impl RunLauncher for RunsInProcess<'_> {
    async fn launch(&self, event: &RunEvent) -> Result<(), LaunchError> {
        run_export::handle(self.0, event.clone())
            .await
            .map(drop)
            .map_err(|e| LaunchError::Unavailable(Box::new(e)))
    }
}

/// Records the hand-offs to notify.
#[derive(Default)]
pub struct HandOffs(pub Mutex<Vec<NotifyEvent>>);

#[async_trait]
impl JobNotifier for HandOffs {
    async fn job_ended(&self, event: &NotifyEvent) -> Result<(), LaunchError> {
        if let Ok(mut seen) = self.0.lock() {
            seen.push(event.clone());
        }
        Ok(())
    }
}

/// Hands a job to notify in this process, as the asynchronous invoke would.
pub struct NotifiesInProcess<'a>(pub notify::Deps<'a>);

#[async_trait]
impl JobNotifier for NotifiesInProcess<'_> {
    async fn job_ended(&self, event: &NotifyEvent) -> Result<(), LaunchError> {
        notify::handle(self.0, event.clone())
            .await
            .map(drop)
            .map_err(|e| LaunchError::Unavailable(Box::new(e)))
    }
}

/// The store of files, with every file of a key ending in `suffix` held, once stored, until the
/// test lets it go: after a whole-file `put` (unless `puts` is off) and after a file that grew
/// is finished. An attempt caught mid-await (right after storing a file or the zip) while another
/// runs, or killed there (its future dropped). It stands for all three file ports.
pub struct HeldPuts<'a> {
    pub files: &'a exporter_adapters::s3::S3Files,
    pub suffix: &'static str,
    pub puts: bool,
    /// Let go of the puts held (and every later one).
    pub release: tokio::sync::watch::Sender<bool>,
    /// How many puts are held right now.
    pub held: std::sync::atomic::AtomicUsize,
    /// How long each ranged read (the zip's) takes on top of the store's.
    pub range_delay: std::time::Duration,
}

impl<'a> HeldPuts<'a> {
    pub fn new(files: &'a exporter_adapters::s3::S3Files, suffix: &'static str) -> Self {
        Self {
            files,
            suffix,
            puts: true,
            release: tokio::sync::watch::channel(false).0,
            held: std::sync::atomic::AtomicUsize::new(0),
            range_delay: std::time::Duration::ZERO,
        }
    }
}

type FileResult<T> = Result<T, exporter_core::ports::FileError>;

#[async_trait]
impl exporter_core::ports::FileStore for HeldPuts<'_> {
    async fn put(&self, key: &str, path: &std::path::Path, content_type: &str) -> FileResult<u64> {
        let stored = self.files.put(key, path, content_type).await?;
        if self.puts && key.ends_with(self.suffix) {
            self.hold().await;
        }
        Ok(stored)
    }
    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> FileResult<()> {
        self.files.put_bytes(key, bytes).await
    }
    async fn read(&self, key: &str) -> FileResult<Vec<u8>> {
        self.files.read(key).await
    }
    async fn remove(&self, key: &str) -> FileResult<()> {
        self.files.remove(key).await
    }
    async fn remove_all(&self, prefix: &str) -> FileResult<u64> {
        self.files.remove_all(prefix).await
    }
    async fn presign(&self, key: &str, expires_in: std::time::Duration) -> FileResult<String> {
        self.files.presign(key, expires_in).await
    }
}

#[async_trait]
impl exporter_core::ports::FilePieces for HeldPuts<'_> {
    async fn read_range(&self, key: &str, offset: u64, len: u64) -> FileResult<Vec<u8>> {
        tokio::time::sleep(self.range_delay).await;
        self.files.read_range(key, offset, len).await
    }
    async fn download(&self, key: &str, path: &std::path::Path) -> FileResult<u64> {
        self.files.download(key, path).await
    }
}

#[async_trait]
impl exporter_core::ports::GrowingFiles for HeldPuts<'_> {
    fn piece_bytes(&self) -> usize {
        self.files.piece_bytes()
    }
    async fn begin(&self, key: &str, content_type: &str) -> FileResult<exporter_core::ports::Upload> {
        self.files.begin(key, content_type).await
    }
    async fn append(
        &self,
        key: &str,
        upload: &mut exporter_core::ports::Upload,
        bytes: Vec<u8>,
    ) -> FileResult<()> {
        self.files.append(key, upload, bytes).await
    }
    async fn finish(&self, key: &str, upload: &exporter_core::ports::Upload) -> FileResult<()> {
        self.files.finish(key, upload).await?;
        if key.ends_with(self.suffix) {
            self.hold().await;
        }
        Ok(())
    }
    async fn abandon_unfinished(&self, prefix: &str) -> FileResult<u64> {
        self.files.abandon_unfinished(prefix).await
    }
}

impl HeldPuts<'_> {
    /// Waits until a file is held.
    ///
    /// # Panics
    /// When none is within two minutes (the attempt never got there: a broken test).
    pub async fn until_held(&self) {
        let held = async {
            while self.held.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(120), held)
            .await
            .expect("an attempt reached the held file");
    }

    async fn hold(&self) {
        let mut released = self.release.subscribe();
        self.held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _ = released.wait_for(|go| *go).await;
        self.held.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The spread jobs' ledgers, except that taking the next item to launch fails (the store unavailable)
/// the first `failures` times: item runs that counted their item done and could not launch the
/// next; and that the first `deaths_after_done` attempts to record an item done die right after
/// recording it.
pub struct FaultyItems<'a> {
    pub items: &'a dyn exporter_core::ports::ItemLedger,
    pub spread: &'a dyn exporter_core::ports::JobSpread,
    pub failures: std::sync::atomic::AtomicU32,
    pub deaths_after_done: std::sync::atomic::AtomicU32,
}

impl<'a> FaultyItems<'a> {
    pub fn new<S: exporter_core::ports::ItemLedger + exporter_core::ports::JobSpread>(store: &'a S) -> Self {
        Self {
            items: store,
            spread: store,
            failures: std::sync::atomic::AtomicU32::new(0),
            deaths_after_done: std::sync::atomic::AtomicU32::new(0),
        }
    }
}

/// Takes one from `counter` when it is above zero; whether it did.
fn take_one(counter: &std::sync::atomic::AtomicU32) -> bool {
    counter
        .fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |left| left.checked_sub(1),
        )
        .is_ok()
}

type StoreResult<T> = Result<T, exporter_core::ports::StoreError>;

#[async_trait]
impl exporter_core::ports::ItemLedger for FaultyItems<'_> {
    async fn claim_item(
        &self,
        job: &JobKey,
        item: u32,
        leg: u32,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.items.claim_item(job, item, leg, at, lease_until).await
    }
    async fn release_item(&self, job: &JobKey, item: u32) -> StoreResult<()> {
        self.items.release_item(job, item).await
    }
    async fn checkpoint_item(
        &self,
        job: &JobKey,
        item: u32,
        leg: u32,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.items.checkpoint_item(job, item, leg, at).await
    }
    async fn item_done(
        &self,
        job: &JobKey,
        item: u32,
        outcome: &ItemOutcome,
        at: DateTime<Utc>,
    ) -> StoreResult<exporter_core::domain::job::Counted> {
        let counted = self.items.item_done(job, item, outcome, at).await?;
        if take_one(&self.deaths_after_done) {
            return Err(exporter_core::ports::StoreError::Unavailable(
                "the attempt died".into(),
            ));
        }
        Ok(counted)
    }
}

#[async_trait]
impl exporter_core::ports::JobSpread for FaultyItems<'_> {
    async fn spread_job(&self, job: &JobKey, items: u32, launched: u32) -> StoreResult<bool> {
        self.spread.spread_job(job, items, launched).await
    }
    async fn launch_item(&self, job: &JobKey, item: u32, at: DateTime<Utc>) -> StoreResult<()> {
        self.spread.launch_item(job, item, at).await
    }
    async fn next_item(&self, job: &JobKey, items: u32) -> StoreResult<Option<u32>> {
        if take_one(&self.failures) {
            return Err(exporter_core::ports::StoreError::Unavailable("throttled".into()));
        }
        self.spread.next_item(job, items).await
    }
    async fn item_outcomes(&self, job: &JobKey) -> StoreResult<Vec<(u32, ItemOutcome)>> {
        self.spread.item_outcomes(job).await
    }
    async fn item_runs(&self, job: &JobKey) -> StoreResult<Vec<exporter_core::domain::job::ItemRun>> {
        self.spread.item_runs(job).await
    }
}

/// Counts the items DynamoDB reads for the queries and scans of one client (`ScannedCount`:
/// what a query or scan pays for, before any filter).
#[derive(Clone, Debug, Default)]
pub struct ItemsRead(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl ItemsRead {
    /// The items read since the last call.
    pub fn take(&self) -> usize {
        self.0.swap(0, std::sync::atomic::Ordering::SeqCst)
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for ItemsRead {
    fn name(&self) -> &'static str {
        "ItemsRead"
    }

    fn read_after_execution(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        use aws_sdk_dynamodb::operation::{query::QueryOutput, scan::ScanOutput};
        let read = match context.output_or_error() {
            Some(Ok(output)) => output
                .downcast_ref::<QueryOutput>()
                .map(QueryOutput::scanned_count)
                .or_else(|| output.downcast_ref::<ScanOutput>().map(ScanOutput::scanned_count)),
            _ => None,
        };
        let read = usize::try_from(read.unwrap_or(0)).unwrap_or(0);
        self.0.fetch_add(read, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

/// A scheduler that holds the given schedules and changes nothing.
pub struct Armed(pub Vec<ExportId>);

#[async_trait]
impl RunSchedules for Armed {
    async fn arm(&self, _: &RunEvent) -> Result<(), exporter_core::ports::ScheduleError> {
        Ok(())
    }
    async fn disarm(&self, _: &ExportId) -> Result<(), exporter_core::ports::ScheduleError> {
        Ok(())
    }
    async fn armed(&self) -> Result<Vec<ExportId>, exporter_core::ports::ScheduleError> {
        Ok(self.0.clone())
    }
}
