//! Adapters of the ports onto AWS: each file is the only code that knows its service's wire format.

pub mod chat;
pub mod dynamodb;
pub mod lambda;
pub mod reader;
pub mod s3;
pub mod scheduler;
pub mod ses;
pub mod ssm;

/// The shared AWS configuration: region and credentials from the standard chain, and the
/// endpoint from the SDK's standard `AWS_ENDPOINT_URL` (moto locally; unset in AWS).
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
