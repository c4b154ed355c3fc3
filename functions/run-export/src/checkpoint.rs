//! Where a job stands between two invocations.

use exporter_core::domain::job::JobDetail;
use exporter_core::ports::Upload;
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
    /// The digest of the export's definition the job began with: a continuation of an export
    /// edited since fails rather than mix two definitions in one file (absent in checkpoints
    /// written before edits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
    /// An extra job's window, in place of its items' own (absent for the chain's jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<exporter_core::domain::ExtraWindow>,
}

/// How far one item got: where its reading goes on, the writer's and decimator's state, its
/// file as the store has it so far and the bytes after that (the tail, kept in the store).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", from = "ItemProgressRecord")]
pub struct ItemProgress {
    pub index: usize,
    /// Reading goes on from here (Unix nanoseconds).
    pub from_ns: i64,
    pub paused: Paused,
    /// The file on its way to the store (none before its first piece).
    pub upload: Option<Upload>,
    /// The key of the bytes written after the pieces sent, when there are some.
    pub tail: Option<String>,
}

/// An item's progress as stored: as written now, or by an earlier version (the multipart
/// upload's id, its parts and their size beside it), so that a job paused across a deployment
/// goes on.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemProgressRecord {
    index: usize,
    from_ns: i64,
    paused: Paused,
    upload: Option<UploadRecord>,
    #[serde(default)]
    parts: Vec<(i32, String)>,
    #[serde(default)]
    uploaded: u64,
    tail: Option<String>,
}

/// A file's upload as stored: the handle, or an earlier version's multipart upload id.
#[derive(serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum UploadRecord {
    Handle(Upload),
    MultipartId(String),
}

impl From<ItemProgressRecord> for ItemProgress {
    fn from(record: ItemProgressRecord) -> Self {
        let upload = record.upload.map(|upload| match upload {
            UploadRecord::Handle(upload) => upload,
            UploadRecord::MultipartId(id) => {
                exporter_adapters::s3::upload_of_multipart(id, record.parts, record.uploaded)
            }
        });
        Self {
            index: record.index,
            from_ns: record.from_ns,
            paused: record.paused,
            upload,
            tail: record.tail,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_of_an_earlier_version_resumes_its_upload_as_the_store_recorded_it() {
        // As run-export wrote it before uploads were the store's own record.
        let earlier = serde_json::json!({
            "index": 1,
            "fromNs": 1_767_225_600_000_000_000_i64,
            "paused": {"rows": 10, "cut": 0, "decimator": null},
            "upload": "upload-7",
            "parts": [[1, "\"tag-1\""], [2, "\"tag-2\""]],
            "uploaded": 10_485_760,
            "tail": "job/.resume/item-1.tail"
        });
        let progress: ItemProgress = serde_json::from_value(earlier).expect("reads");
        let upload = progress.upload.clone().expect("an upload");
        assert_eq!(upload.size(), 10_485_760);
        assert_eq!(
            upload.state(),
            &serde_json::json!({"uploadId": "upload-7", "parts": [[1, "\"tag-1\""], [2, "\"tag-2\""]]})
        );
        assert_eq!(progress.tail.as_deref(), Some("job/.resume/item-1.tail"));
        // Written again, it is read back the same.
        let again: ItemProgress =
            serde_json::from_value(serde_json::to_value(&progress).expect("writes")).expect("reads");
        assert_eq!(again, progress);
        // Before its first piece, no upload.
        let fresh = ItemProgress {
            upload: None,
            ..progress
        };
        let read: ItemProgress =
            serde_json::from_value(serde_json::to_value(&fresh).expect("writes")).expect("reads");
        assert_eq!(read.upload, None);
    }
}
