//! Each owner's counter of queued exports recomputed from the records and corrected when it
//! still reads what was read before the records were.

use std::collections::BTreeMap;

use crate::pass::{Pass, Repairs};
use exporter_adapters::failure::Failure;

/// The counters read first (`counters`), corrected against the live exports.
pub(crate) async fn correct(
    pass: &Pass<'_>,
    counters: &[(String, i64)],
    repairs: &mut Repairs,
) -> Result<(), Failure> {
    let mut queued: BTreeMap<&str, i64> = BTreeMap::new();
    for export in pass
        .exports
        .iter()
        .filter(|e| e.deleted_at.is_none() && e.status.counts_against_quota())
    {
        *queued.entry(export.owner.as_str()).or_default() += 1;
    }
    for (owner, stored) in counters {
        let actual = queued.get(owner.as_str()).copied().unwrap_or(0);
        if *stored != actual && pass.deps.sweep.set_quota(owner, *stored, actual).await? {
            tracing::warn!(
                owner,
                stored,
                actual,
                "corrected an owner's counter of queued exports"
            );
            repairs.quotas_corrected += 1;
        }
    }
    Ok(())
}
