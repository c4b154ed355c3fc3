//! S3 adapter of [`FileStore`]: multipart uploads (a file is visible whole or not at all),
//! deletes, and presigned download URLs. Path-style addressing is a setting, for emulators.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;

use crate::ports::{Cause, FileError, FileStore};

/// The export files' bucket.
#[derive(Clone, Debug)]
pub struct S3Files {
    client: Client,
    bucket: String,
}

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
        }
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

#[async_trait]
impl FileStore for S3Files {
    async fn begin(&self, key: &str, content_type: &str) -> Result<String, FileError> {
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

    async fn part(&self, key: &str, upload: &str, number: i32, bytes: Vec<u8>) -> Result<String, FileError> {
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
        Ok(output.e_tag().unwrap_or_default().to_owned())
    }

    async fn complete(&self, key: &str, upload: &str, tags: Vec<String>) -> Result<(), FileError> {
        let parts = tags
            .into_iter()
            .enumerate()
            .map(|(i, tag)| {
                CompletedPart::builder()
                    .part_number(i as i32 + 1)
                    .e_tag(tag)
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(failed("complete multipart upload"))?;
        Ok(())
    }

    async fn abort(&self, key: &str, upload: &str) -> Result<(), FileError> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload)
            .send()
            .await
            .map_err(failed("abort multipart upload"))?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), FileError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(failed("delete object"))?;
        Ok(())
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
