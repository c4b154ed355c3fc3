//! `exporter-adapters`: the adapters of the export service's ports onto AWS and HTTP (the
//! reader, chat webhooks), and the typed configuration the functions read at cold start.
//!
//! The pure part (requests, calendar arithmetic, decimation, rendering, the reader's page
//! parser, and the ports themselves) is the `exporter-core` crate; functions name it themselves,
//! so pure code reads as pure code at its use site. Each adapter module is the only code that
//! knows its service's wire format; none of them holds a rule of the domain.

pub mod access;
pub mod chat;
pub mod config;
pub mod dynamodb;
pub mod failure;
pub mod flow;
pub mod lambda;
pub mod reader;
pub mod s3;
pub mod scheduler;
pub mod ses;
pub mod ssm;
pub mod support;
pub mod telemetry;

/// The shared AWS configuration: region and credentials from the standard chain, and the
/// endpoint from the SDK's standard `AWS_ENDPOINT_URL` (moto locally; unset in AWS).
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
