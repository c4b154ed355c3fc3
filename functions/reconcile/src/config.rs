//! reconcile's configuration: every variable it reads, read once at cold start and failing
//! there naming the variable; the shared defaults in `exporter_core::domain::defaults`.

use chrono::TimeDelta;
use exporter_adapters::config::{
    catch_up_lateness, parsed_or, required, retention, schedule_settings, stores, ConfigError, Stores,
};
use exporter_adapters::scheduler::ScheduleSettings;
use exporter_core::domain::defaults;

/// Everything the composition root wires from the environment.
pub struct Environment {
    /// `TABLE_NAME`, `BUCKET_NAME`, `S3_FORCE_PATH_STYLE`.
    pub stores: Stores,
    /// `RUN_EXPORT_FUNCTION` and `NOTIFY_FUNCTION`: what the sweep relaunches.
    pub run_export_function: String,
    pub notify_function: String,
    pub schedules: ScheduleSettings,
    pub sweep: ReconcileConfig,
}

impl Environment {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            stores: stores()?,
            run_export_function: required("RUN_EXPORT_FUNCTION")?,
            notify_function: required("NOTIFY_FUNCTION")?,
            schedules: schedule_settings()?,
            sweep: ReconcileConfig::from_env()?,
        })
    }
}

/// Settings of the sweep.
#[derive(Clone, Debug)]
pub struct ReconcileConfig {
    /// How long past due something must be before the sweep repairs it: longer than a run's
    /// lease and the schedules' retries take, so it never races a live attempt.
    pub grace: TimeDelta,
    /// How long abandoned jobs' records are kept.
    pub retention: TimeDelta,
    /// How late an occurrence whose job was never attempted may still run; an older one is
    /// recorded missed (as run-export's catch-up does).
    pub lateness: TimeDelta,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self {
            grace: TimeDelta::minutes(20),
            retention: defaults::RETENTION,
            lateness: defaults::CATCH_UP_LATENESS,
        }
    }
}

impl ReconcileConfig {
    /// Reads `RECONCILE_GRACE_SECONDS`, `RETENTION_DAYS` and `CATCH_UP_LATENESS_SECONDS`, each
    /// falling back to its default.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            grace: TimeDelta::seconds(parsed_or(
                "RECONCILE_GRACE_SECONDS",
                defaults.grace.num_seconds(),
            )?),
            retention: retention()?,
            lateness: catch_up_lateness()?,
        })
    }
}
