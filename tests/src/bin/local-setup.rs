//! Creates the local stack's resources on the emulator (table, schedule group), as the SAM
//! template does in AWS. Safe to run again: what exists already is left as it is.

use exporter::adapters::dynamodb::DynamoStore;
use exporter::adapters::scheduler::EventBridgeSchedules;
use exporter::config::required;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let table = required("TABLE_NAME")?;
    let group = required("SCHEDULE_GROUP")?;
    let aws = exporter::adapters::aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    let scheduler = aws_sdk_scheduler::Client::new(&aws);
    if dynamo.describe_table().table_name(&table).send().await.is_err() {
        DynamoStore::create_table(&dynamo, &table).await?;
    }
    if scheduler.get_schedule_group().name(&group).send().await.is_err() {
        EventBridgeSchedules::create_group(&scheduler, &group).await?;
    }
    println!("table {table} and schedule group {group} are ready");
    Ok(())
}
