//! Composition root of run-export.

use exporter::adapters::dynamodb::DynamoStore;
use exporter::config::{self, required};
use exporter::domain::RunEvent;
use exporter::ports::SystemClock;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use run_export::{handle, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    config::init_tracing();
    let table = required("TABLE_NAME")?;
    let aws = exporter::adapters::aws_config().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table);
    let clock = SystemClock;
    let deps = Deps {
        store: &store,
        clock: &clock,
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<RunEvent>| async move {
        handle(deps, event.payload).await
    }))
    .await
}
