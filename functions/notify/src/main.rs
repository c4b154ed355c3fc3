//! Composition root of notify.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use notify::{handle, NotifyEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    exporter::config::init_tracing();
    lambda_runtime::run(service_fn(|event: LambdaEvent<NotifyEvent>| {
        handle(event.payload)
    }))
    .await
}
