//! The defaults more than one function relies on, written once. Each function's configuration
//! module reads its variable and falls back to these; the template's parameters default to the
//! same values.

use chrono::TimeDelta;

/// How long files and job records are kept (`RETENTION_DAYS`): run-export's TTLs and lifecycle,
/// the API's deleted records, the jobs the reconciler abandons.
pub const RETENTION: TimeDelta = TimeDelta::days(7);

/// How late an occurrence whose job never ran may still run (`CATCH_UP_LATENESS_SECONDS`);
/// older ones are recorded missed, by run-export's catch-up and by the reconciler alike.
pub const CATCH_UP_LATENESS: TimeDelta = TimeDelta::hours(1);

/// How long after its occurrence a schedule fires (`SCHEDULE_SETTLE_SECONDS`): late data of the
/// window's last seconds arrives first; an occurrence can still be armed until then.
pub const SCHEDULE_SETTLE: TimeDelta = TimeDelta::seconds(60);

/// The size of the parts a file is uploaded in (`UPLOAD_PART_BYTES`): what memory holds of a
/// file being written, and the step a continued file resumes at.
pub const PART_BYTES: usize = 8 * 1024 * 1024;
