//! The zip of a job's files.

use crate::deps::Deps;
use crate::error::JobError;
use crate::pipeline::temp_file;
use exporter::domain::files;
use exporter::domain::job::FileRecord;
use exporter::domain::Export;
use std::io::{Seek, Write};
use tempfile::NamedTempFile;

/// Zips the job's files (those not written whole by this invocation read back from the store)
/// and stores the zip.
pub(crate) async fn archive(
    deps: Deps<'_>,
    export: &Export,
    job_id: &str,
    records: &[FileRecord],
    names: &[String],
    mut local: Vec<Option<NamedTempFile>>,
) -> Result<FileRecord, JobError> {
    let mut written = Vec::new();
    for (index, (record, name)) in records.iter().zip(names).enumerate() {
        let file = match local.get_mut(index).and_then(Option::take) {
            Some(file) => file,
            None => {
                let file = temp_file(deps)?;
                deps.files.download(&record.key, file.path()).await?;
                file
            }
        };
        written.push((file, name.clone()));
    }
    let archive = zip_files(deps, &mut written)?;
    let key = files::archive_key(&export.id, job_id);
    let bytes = deps
        .files
        .put(&key, archive.path(), files::ZIP_CONTENT_TYPE)
        .await?;
    let rows = records.iter().map(|f| f.rows).sum();
    Ok(FileRecord { key, rows, bytes })
}

/// Zips the job's files into a temporary file.
pub(crate) fn zip_files(
    deps: Deps<'_>,
    files: &mut [(NamedTempFile, String)],
) -> Result<NamedTempFile, JobError> {
    let archive = temp_file(deps)?;
    let mut zip = zip::ZipWriter::new(archive.reopen()?);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    for (file, name) in files.iter_mut() {
        zip.start_file(name.as_str(), options)
            .map_err(std::io::Error::other)?;
        let source = file.as_file_mut();
        source.rewind()?;
        std::io::copy(source, &mut zip)?;
    }
    zip.finish().map_err(std::io::Error::other)?.flush()?;
    Ok(archive)
}
