//! The zip of a job's files, streamed from the store to the store: each file read a part at a
//! time, compressed, and the zip sent in parts as it grows, so neither the files nor the zip are
//! ever on the function's local disk, and memory holds about two parts. It watches the attempt's
//! deadline between reads: out of time, its upload is aborted and it says so
//! ([`JobError::ZipOutOfTime`]), so that a fresh invocation zips again with its whole time.

use std::io::Write;
use std::sync::{Arc, Mutex};

use exporter_core::domain::files;
use exporter_core::domain::job::FileRecord;
use exporter_core::domain::Export;

use crate::deps::Deps;
use crate::error::JobError;
use crate::upload::Sent;

/// The zip's bytes not yet sent, shared between the zip writer and the uploader.
#[derive(Clone, Default)]
struct Pending(Arc<Mutex<Vec<u8>>>);

impl Write for Pending {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("the zip's buffer is poisoned"))?
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Pending {
    /// The first `len` bytes, taken out, when there are that many (all of them when `all`).
    fn take(&self, len: usize, all: bool) -> Option<Vec<u8>> {
        let mut bytes = self.0.lock().ok()?;
        if bytes.is_empty() || (!all && bytes.len() < len) {
            return None;
        }
        let at = len.min(bytes.len());
        let rest = bytes.split_off(at);
        Some(std::mem::replace(&mut *bytes, rest))
    }
}

/// Zips the job's stored files, named `names`, into the job's zip.
pub(crate) async fn archive(
    deps: Deps<'_>,
    export: &Export,
    job_id: &str,
    records: &[FileRecord],
    names: &[String],
) -> Result<FileRecord, JobError> {
    let key = files::archive_key(&export.id, job_id, export.request.format.filename.as_ref());
    let part = deps.uploads.piece_bytes().max(1);
    let pending = Pending::default();
    let mut zip = zip::ZipWriter::new_stream(pending.clone());
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut sent = Sent {
        key: &key,
        upload: None,
        local: 0,
    };
    let total: u64 = records.iter().map(|r| r.bytes).sum();
    for (record, name) in records.iter().zip(names) {
        // Zip64 only for an entry that needs it: some extractors refuse its fields otherwise.
        let large = record.bytes >= u64::from(u32::MAX);
        zip.start_file(name.as_str(), options.large_file(large))
            .map_err(std::io::Error::other)?;
        let mut offset = 0;
        while offset < record.bytes {
            if deps.deadline.is_some_and(|stop| deps.clock.now() >= stop) {
                // Nothing of the zip may stay: its open upload goes, and a fresh invocation
                // writes it whole.
                deps.files.remove_all(&key).await?;
                return Err(JobError::ZipOutOfTime {
                    files: records.len(),
                    bytes: total,
                });
            }
            let rest = record.bytes - offset;
            let piece = deps
                .pieces
                .read_range(&record.key, offset, (part as u64).min(rest))
                .await?;
            if piece.is_empty() {
                return Err(std::io::Error::other(format!(
                    "{} ends at {offset} bytes, not {}",
                    record.key, record.bytes
                ))
                .into());
            }
            offset += piece.len() as u64;
            zip.write_all(&piece)?;
            while let Some(full) = pending.take(part, false) {
                sent.send_part(deps, full, files::ZIP_CONTENT_TYPE).await?;
            }
        }
    }
    zip.finish().map_err(std::io::Error::other)?;
    while let Some(rest) = pending.take(part, true) {
        sent.send_part(deps, rest, files::ZIP_CONTENT_TYPE).await?;
    }
    sent.complete(deps).await?;
    let bytes = sent.uploaded();
    let rows = records.iter().map(|f| f.rows).sum();
    Ok(FileRecord { key, rows, bytes })
}
