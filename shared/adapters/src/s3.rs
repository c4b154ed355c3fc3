//! S3 adapter of the file ports: [`FileStore`] (a finished local file stored by multipart upload
//! in parts of `part_size`, so it is visible whole or not at all and memory holds one part, the
//! upload aborted on any failure; deletes; presigned download URLs), [`FilePieces`] (ranged
//! reads, downloads) and [`GrowingFiles`] (a file written across invocations, its multipart
//! upload's id and parts kept in the opaque [`Upload`] the caller carries). Path-style
//! addressing is a setting, for emulators. Parts, ETags and S3's 5 MiB rule stay in here.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;

use exporter_core::ports::{Cause, FileError, FilePieces, FileStore, GrowingFiles, Upload};

/// The export files' bucket.
#[derive(Clone, Debug)]
pub struct S3Files {
    client: Client,
    bucket: String,
    part_size: usize,
}

/// S3's smallest part but the last.
pub const MIN_PART_BYTES: usize = 5 * 1024 * 1024;
/// The default part size: a few parts for most files, little memory.
pub const DEFAULT_PART_BYTES: usize = exporter_core::domain::defaults::PART_BYTES;

fn failed<E: std::error::Error + Send + Sync + 'static>(what: &str) -> impl FnOnce(E) -> FileError + '_ {
    move |e| FileError::Unavailable(what.to_owned(), Box::new(e) as Cause)
}

impl S3Files {
    /// The S3 client for `config`; `path_style` for emulators that cannot resolve bucket hosts.
    pub fn client(config: &aws_config::SdkConfig, path_style: bool) -> Client {
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .build();
        Client::from_conf(s3)
    }

    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            part_size: DEFAULT_PART_BYTES,
        }
    }

    /// Uploads in parts of `bytes`, raised to S3's minimum of 5 MiB.
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(MIN_PART_BYTES);
        self
    }

    /// Creates the bucket (local runs and tests; SAM creates it in AWS).
    pub async fn create_bucket(client: &Client, bucket: &str) -> Result<(), FileError> {
        client
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(failed("create bucket"))?;
        Ok(())
    }
}

impl S3Files {
    async fn create_upload(&self, key: &str, content_type: &str) -> Result<String, FileError> {
        let output = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(failed("create multipart upload"))?;
        output.upload_id().map(str::to_owned).ok_or_else(|| {
            FileError::Unavailable(
                "create multipart upload".into(),
                "S3 returned no upload id".into(),
            )
        })
    }

    async fn part(
        &self,
        key: &str,
        upload: &str,
        number: i32,
        bytes: Vec<u8>,
    ) -> Result<CompletedPart, FileError> {
        let output = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload)
            .part_number(number)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(failed("upload part"))?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .e_tag(output.e_tag().unwrap_or_default())
            .build())
    }

    /// Sends the file in parts of `part_size`, in order; returns them and the file's size.
    async fn send_parts(
        &self,
        key: &str,
        upload: &str,
        path: &Path,
    ) -> Result<(Vec<CompletedPart>, u64), FileError> {
        let mut source = File::open(path).map_err(failed("open the local file"))?;
        let mut parts = Vec::new();
        let mut total = 0u64;
        loop {
            let mut bytes = Vec::with_capacity(self.part_size);
            (&mut source)
                .take(self.part_size as u64)
                .read_to_end(&mut bytes)
                .map_err(failed("read the local file"))?;
            // An empty file is one empty part; otherwise an empty read ends the file.
            if bytes.is_empty() && !parts.is_empty() {
                break;
            }
            let last = bytes.len() < self.part_size;
            total += bytes.len() as u64;
            let number = parts.len() as i32 + 1;
            parts.push(self.part(key, upload, number, bytes).await?);
            if last {
                break;
            }
        }
        Ok((parts, total))
    }

    /// Completes an upload. Completing one an earlier attempt completed (it died before saying
    /// so) succeeds: S3 then knows no such upload, and the file is there under its key, which
    /// only the completion of this job's upload writes.
    async fn complete(&self, key: &str, upload: &str, parts: Vec<CompletedPart>) -> Result<(), FileError> {
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await;
        match completed {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().and_then(|s| s.meta().code()) == Some("NoSuchUpload") => {
                let there = self
                    .client
                    .head_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .send()
                    .await;
                match there {
                    Ok(_) => {
                        tracing::info!(key, "the upload was completed by an earlier attempt");
                        Ok(())
                    }
                    Err(_) => Err(failed("complete multipart upload")(e)),
                }
            }
            Err(e) => Err(failed("complete multipart upload")(e)),
        }
    }

    /// Aborts every multipart upload open under `prefix`; how many.
    async fn abort_all(&self, prefix: &str) -> Result<u64, FileError> {
        let uploads = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(prefix)
            .send()
            .await
            .map_err(failed("list multipart uploads"))?;
        let mut aborted = 0;
        for upload in uploads.uploads() {
            if let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) {
                self.abort(key, id).await;
                aborted += 1;
            }
        }
        Ok(aborted)
    }

    /// Drops an upload and its parts; a failure is logged, as the bucket's lifecycle rule
    /// removes incomplete uploads after a day anyway.
    async fn abort(&self, key: &str, upload: &str) {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload)
            .send()
            .await;
        if let Err(e) = aborted {
            tracing::error!(key, error = %e, "could not abort a multipart upload; the bucket's lifecycle rule will");
        }
    }
}

#[async_trait]
impl FileStore for S3Files {
    async fn put(&self, key: &str, path: &Path, content_type: &str) -> Result<u64, FileError> {
        let upload = self.create_upload(key, content_type).await?;
        let sent = match self.send_parts(key, &upload, path).await {
            Ok((parts, bytes)) => self.complete(key, &upload, parts).await.map(|()| bytes),
            Err(e) => Err(e),
        };
        if sent.is_err() {
            self.abort(key, &upload).await;
        }
        sent
    }

    async fn remove(&self, key: &str) -> Result<(), FileError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(failed("delete object"))?;
        Ok(())
    }

    async fn remove_all(&self, prefix: &str) -> Result<u64, FileError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut removed = 0;
        while let Some(page) = pages.next().await {
            for object in page.map_err(failed("list objects"))?.contents() {
                if let Some(key) = object.key() {
                    self.remove(key).await?;
                    removed += 1;
                }
            }
        }
        // Uploads left open under the prefix (a job that continued across invocations).
        Ok(removed + self.abort_all(prefix).await?)
    }

    async fn read(&self, key: &str) -> Result<Vec<u8>, FileError> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(failed("get object"))?;
        let bytes = object.body.collect().await.map_err(failed("read object"))?;
        Ok(bytes.into_bytes().to_vec())
    }

    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), FileError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(failed("put object"))?;
        Ok(())
    }

    async fn presign(&self, key: &str, expires_in: Duration) -> Result<String, FileError> {
        let config = PresigningConfig::expires_in(expires_in).map_err(failed("presigning config"))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(failed("presign"))?;
        Ok(request.uri().to_owned())
    }
}

#[async_trait]
impl FilePieces for S3Files {
    async fn read_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, FileError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={offset}-{}", offset.saturating_add(len) - 1))
            .send()
            .await;
        let object = match object {
            Ok(object) => object,
            // A range wholly past the end of the file.
            Err(e) if e.as_service_error().and_then(|s| s.meta().code()) == Some("InvalidRange") => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(failed("get object range")(e)),
        };
        let bytes = object.body.collect().await.map_err(failed("read object range"))?;
        Ok(bytes.into_bytes().to_vec())
    }

    async fn download(&self, key: &str, path: &Path) -> Result<u64, FileError> {
        let mut object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(failed("get object"))?;
        let mut out = std::io::BufWriter::new(File::create(path).map_err(failed("create the local file"))?);
        let mut size = 0u64;
        while let Some(chunk) = object.body.next().await {
            let chunk = chunk.map_err(failed("read object"))?;
            out.write_all(&chunk).map_err(failed("write the local file"))?;
            size += chunk.len() as u64;
        }
        out.flush().map_err(failed("write the local file"))?;
        Ok(size)
    }
}

/// The S3 record of a file that grows: its multipart upload and the parts sent, in order.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Multipart {
    upload_id: String,
    parts: Vec<(i32, String)>,
}

impl Multipart {
    fn of(upload: &Upload) -> Result<Self, FileError> {
        serde_json::from_value(upload.state().clone()).map_err(failed("read a file's upload record"))
    }

    fn state(&self) -> Result<serde_json::Value, FileError> {
        serde_json::to_value(self).map_err(failed("write a file's upload record"))
    }
}

/// A file's upload as recorded before the upload's record was the store's own (a checkpoint
/// of an earlier version: the upload's id, its parts and their size).
pub fn upload_of_multipart(upload_id: String, parts: Vec<(i32, String)>, size: u64) -> Upload {
    let state = serde_json::json!({ "uploadId": upload_id, "parts": parts });
    Upload::resumed(size, state)
}

/// Whether two handles are of the same multipart upload (whatever parts each has seen).
pub fn same_multipart(a: &Upload, b: &Upload) -> bool {
    match (Multipart::of(a), Multipart::of(b)) {
        (Ok(a), Ok(b)) => a.upload_id == b.upload_id,
        _ => false,
    }
}

#[async_trait]
impl GrowingFiles for S3Files {
    fn piece_bytes(&self) -> usize {
        self.part_size
    }

    async fn begin(&self, key: &str, content_type: &str) -> Result<Upload, FileError> {
        let upload_id = self.create_upload(key, content_type).await?;
        let record = Multipart {
            upload_id,
            parts: Vec::new(),
        };
        Ok(Upload::begun(record.state()?))
    }

    async fn append(&self, key: &str, upload: &mut Upload, bytes: Vec<u8>) -> Result<(), FileError> {
        let mut record = Multipart::of(upload)?;
        let number = i32::try_from(record.parts.len() + 1).map_err(failed("number the next part"))?;
        let size = bytes.len() as u64;
        let part = self.part(key, &record.upload_id, number, bytes).await?;
        record
            .parts
            .push((number, part.e_tag().unwrap_or_default().to_owned()));
        upload.appended(size, record.state()?);
        Ok(())
    }

    async fn finish(&self, key: &str, upload: &Upload) -> Result<(), FileError> {
        let record = Multipart::of(upload)?;
        let parts = record
            .parts
            .iter()
            .map(|(number, tag)| CompletedPart::builder().part_number(*number).e_tag(tag).build())
            .collect();
        self.complete(key, &record.upload_id, parts).await
    }

    async fn abandon_unfinished(&self, prefix: &str) -> Result<u64, FileError> {
        self.abort_all(prefix).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_recorded_by_an_earlier_version_reads_as_the_multipart_record() {
        let upload = upload_of_multipart("id-1".into(), vec![(1, "t1".into()), (2, "t2".into())], 42);
        let record = Multipart::of(&upload).expect("reads");
        assert_eq!(record.upload_id, "id-1");
        assert_eq!(record.parts, vec![(1, "t1".to_owned()), (2, "t2".to_owned())]);
        assert_eq!(upload.size(), 42);
        let begun = Upload::begun(
            Multipart {
                upload_id: "id-2".into(),
                parts: Vec::new(),
            }
            .state()
            .expect("writes"),
        );
        assert_eq!(Multipart::of(&begun).expect("reads").upload_id, "id-2");
        assert!(Multipart::of(&Upload::begun(serde_json::json!("junk"))).is_err());
    }
}
