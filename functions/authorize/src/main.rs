//! Composition root of the authorizer.

use authorize::{handle, Authorizer};
use exporter_adapters::config;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    config::init_tracing();
    let authorizer = Authorizer::from_env()?;
    let authorizer = &authorizer;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            handle(authorizer, event.payload).await.map_err(Error::from)
        },
    ))
    .await
}
