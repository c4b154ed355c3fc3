//! `exporter-core`: the pure part of the export service.
//!
//! [`domain`] holds the rules (requests, calendar arithmetic, decimation, exports, jobs,
//! notifications, file names); [`render`] writes rows to CSV and XLSX; [`page`] parses the
//! reader's pages into points; [`ports`] are the traits the functions depend on, speaking
//! domain types. Nothing here can reach I/O beyond the writers it is handed: this crate does not
//! depend on the AWS SDK, an HTTP client, the environment or a clock, so the domain is pure by
//! construction and the benchmark builds without the SDK.

pub mod domain;
pub mod page;
pub mod ports;
pub mod render;
