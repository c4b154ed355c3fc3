//! Lambda adapter of [`RunLauncher`]: invokes run-export asynchronously (`InvocationType=Event`),
//! so a one-time export starts at once while the HTTP request returns.

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_lambda::Client;

use crate::domain::RunEvent;
use crate::ports::{Cause, LaunchError, RunLauncher};

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

#[async_trait]
impl RunLauncher for LambdaLauncher {
    async fn launch(&self, event: &RunEvent) -> Result<(), LaunchError> {
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
                format!("run-export answered {error}").into(),
            ));
        }
        Ok(())
    }
}
