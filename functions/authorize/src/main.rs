//! Composition root of the authorizer.

use authorize::{handle, Authorizer};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = exporter_adapters::telemetry::init("authorize");
    let telemetry = &telemetry;
    let authorizer = Authorizer::from_env()?;
    let authorizer = &authorizer;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let answered = handle(authorizer, event.payload).await.map_err(Error::from);
            telemetry.flush(&event.context.request_id, &[]);
            answered
        },
    ))
    .await
}
