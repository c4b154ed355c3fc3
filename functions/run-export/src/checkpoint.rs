//! Where a job stands between two invocations.

use exporter_core::domain::job::JobDetail;
use exporter_core::render::series::Paused;

/// Where a job stands between two invocations: the items finished, and how far the current
/// one got. Stored as JSON under the job's prefix, committed by the job's leg.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// The occurrence of a recurring export's job (what its windows are computed from).
    pub occurrence: Option<u64>,
    /// The finished items' files, every started item's window, the warnings so far.
    pub detail: JobDetail,
    pub current: Option<ItemProgress>,
}

/// How far one item got: where its reading goes on, the writer's and decimator's state, the
/// parts of its file already uploaded and the bytes after them (the tail, kept in the store).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemProgress {
    pub index: usize,
    /// Reading goes on from here (Unix nanoseconds).
    pub from_ns: i64,
    pub paused: Paused,
    pub upload: Option<String>,
    pub parts: Vec<(i32, String)>,
    /// Bytes in the uploaded parts.
    pub uploaded: u64,
    /// The key of the bytes written after the parts, when there are some.
    pub tail: Option<String>,
}

/// What became of a job in this invocation.
pub(crate) enum Progress {
    Done(JobDetail),
    /// The budget ran out: the job goes on from this checkpoint.
    Paused(Box<Checkpoint>),
}

/// The key of a job's checkpoint of `leg`.
pub(crate) fn checkpoint_key(prefix: &str, leg: u32) -> String {
    format!("{prefix}/.resume/leg-{leg}.json")
}
