//! The pure domain of the export service: requests, time arithmetic, exports and their runs.
//!
//! Nothing in here touches AWS, HTTP, the environment or a clock; every input arrives as a value.

pub mod chain;
pub mod decimation;
pub mod defaults;
pub mod dialect;
pub mod duration;
pub mod export;
pub mod files;
pub mod formats;
pub mod granularity;
pub mod job;
pub mod link;
pub mod media;
pub mod notification;
pub mod record;
pub mod recurrence;
pub mod request;
pub mod series;
pub mod timestamp;

pub use dialect::{CredentialScheme, Dialect, TimeUnit};
pub use duration::IsoDuration;
pub use export::{
    Export, ExportId, ExportStatus, Extra, ExtraWindow, ListPage, ListQuery, NotifyEvent, RunEvent,
};
pub use granularity::Granularity;
pub use recurrence::{ItemSpan, Recurrence, Window};
pub use request::{ExportRequest, ExportType, Policy, Problem, Schedule};
