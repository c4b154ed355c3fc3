//! An item's file on its way to the store in parts while it is written, across legs.

use crate::deps::Deps;
use crate::error::JobError;
use exporter_core::ports::{FileError, Upload};
use std::io::{Read, Seek, SeekFrom, Write};

/// An item's file on its way to the store in parts, across legs.
pub(crate) struct Sent<'k> {
    pub(crate) key: &'k str,
    /// The file as the store has it so far (none before its first piece).
    pub(crate) upload: Option<Upload>,
    /// Bytes of this leg's local file already sent.
    pub(crate) local: u64,
}

impl Sent<'_> {
    /// Bytes sent so far, in every leg.
    pub(crate) fn uploaded(&self) -> u64 {
        self.upload.as_ref().map_or(0, Upload::size)
    }

    /// Sends the local file's full parts as it grows, each time the reading side says it did,
    /// until that side hangs up (and then what is ready).
    pub(crate) async fn send_while_written(
        &mut self,
        deps: Deps<'_>,
        path: &std::path::Path,
        content_type: &str,
        mut written: tokio::sync::watch::Receiver<()>,
    ) -> Result<(), FileError> {
        loop {
            let reading = written.changed().await.is_ok();
            self.send_ready(deps, path, content_type).await?;
            if !reading {
                return Ok(());
            }
        }
    }

    /// Sends the full parts the local file at `path` holds beyond what was sent, while the file
    /// is still being written (what is on disk is a prefix of it).
    pub(crate) async fn send_ready(
        &mut self,
        deps: Deps<'_>,
        path: &std::path::Path,
        content_type: &str,
    ) -> Result<(), FileError> {
        let part_bytes = deps.uploads.piece_bytes().max(1) as u64;
        let failed = |e: std::io::Error| FileError::Unavailable("read the local file".into(), Box::new(e));
        while std::fs::metadata(path).map_err(failed)?.len() >= self.local + part_bytes {
            let mut source = std::fs::File::open(path).map_err(failed)?;
            source.seek(SeekFrom::Start(self.local)).map_err(failed)?;
            let mut bytes = Vec::with_capacity(part_bytes as usize);
            source.take(part_bytes).read_to_end(&mut bytes).map_err(failed)?;
            self.send_part(deps, bytes, content_type).await?;
        }
        Ok(())
    }

    /// Sends the next piece (the file begun with the first), counted as sent.
    pub(crate) async fn send_part(
        &mut self,
        deps: Deps<'_>,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), FileError> {
        let upload = match &mut self.upload {
            Some(upload) => upload,
            None => self
                .upload
                .insert(deps.uploads.begin(self.key, content_type).await?),
        };
        let size = bytes.len() as u64;
        let began = std::time::Instant::now();
        deps.uploads.append(self.key, upload, bytes).await?;
        tracing::debug!(size, took_ms = began.elapsed().as_millis() as u64, "piece sent");
        self.local += size;
        Ok(())
    }

    /// Sends the local file's full parts (and, when `last`, the rest, for [`Sent::complete`]);
    /// returns the bytes left after the full parts when not `last`.
    pub(crate) async fn send(
        &mut self,
        deps: Deps<'_>,
        file: &mut std::fs::File,
        last: bool,
        content_type: &str,
    ) -> Result<Option<Vec<u8>>, JobError> {
        let part_bytes = deps.uploads.piece_bytes().max(1);
        file.flush()?;
        file.seek(SeekFrom::Start(self.local))?;
        loop {
            let mut bytes = Vec::with_capacity(part_bytes);
            (&mut *file).take(part_bytes as u64).read_to_end(&mut bytes)?;
            let full = bytes.len() == part_bytes;
            if !full && !last {
                return Ok((!bytes.is_empty()).then_some(bytes));
            }
            if bytes.is_empty() && self.uploaded() > 0 {
                break;
            }
            self.send_part(deps, bytes, content_type).await?;
            if !full {
                break;
            }
        }
        Ok(None)
    }

    /// Completes the upload once every part is sent (`send` with `last`).
    pub(crate) async fn complete(&self, deps: Deps<'_>) -> Result<(), JobError> {
        if let Some(upload) = &self.upload {
            deps.uploads.finish(self.key, upload).await?;
        }
        Ok(())
    }
}
