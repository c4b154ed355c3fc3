//! Lambda adapter of [`RunLauncher`] and [`JobNotifier`]: invokes a function asynchronously
//! (`InvocationType=Event`): run-export, so a one-time export starts at once while the HTTP
//! request returns; notify, when a job ends.

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_lambda::Client;

use exporter_core::domain::{NotifyEvent, RunEvent};
use exporter_core::ports::{Cause, JobNotifier, LaunchError, RunLauncher};

/// Launches runs by invoking a Lambda function by name or ARN.
#[derive(Clone, Debug)]
pub struct LambdaLauncher {
    client: Client,
    function: String,
}

impl LambdaLauncher {
    pub fn new(client: Client, function: impl Into<String>) -> Self {
        Self {
            client,
            function: function.into(),
        }
    }
}

fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: E) -> LaunchError {
    LaunchError::Unavailable(Box::new(e) as Cause)
}

impl LambdaLauncher {
    async fn invoke(&self, event: &impl serde::Serialize) -> Result<(), LaunchError> {
        let payload = serde_json::to_vec(event).map_err(unavailable)?;
        let output = self
            .client
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(unavailable)?;
        if let Some(error) = output.function_error() {
            return Err(LaunchError::Unavailable(
                format!("{} answered {error}", self.function).into(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl RunLauncher for LambdaLauncher {
    async fn launch(&self, event: &RunEvent) -> Result<(), LaunchError> {
        self.invoke(event).await
    }
}

#[async_trait]
impl JobNotifier for LambdaLauncher {
    async fn job_ended(&self, event: &NotifyEvent) -> Result<(), LaunchError> {
        self.invoke(event).await
    }
}
