//! Test doubles shared by the integration tests: ports that record what they are asked, run it
//! in this process, or tell a time they are given. Each implements one small port.

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use exporter::domain::{NotifyEvent, RunEvent};
use exporter::ports::{Clock, JobNotifier, LaunchError, RunLauncher};

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
