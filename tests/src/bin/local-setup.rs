//! Creates the local stack's resources on the emulator (table, schedule group, bucket, the SES
//! sender identity), as the SAM
//! template does in AWS. Safe to run again: what exists already is left as it is.

use exporter_adapters::config::required;
use exporter_adapters::dynamodb::DynamoStore;
use exporter_adapters::s3::S3Files;
use exporter_adapters::scheduler::EventBridgeSchedules;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let table = required("TABLE_NAME")?;
    let group = required("SCHEDULE_GROUP")?;
    let bucket = required("BUCKET_NAME")?;
    let sender = required("EMAIL_FROM")?;
    let aws = exporter_adapters::aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    let scheduler = aws_sdk_scheduler::Client::new(&aws);
    if dynamo.describe_table().table_name(&table).send().await.is_err() {
        DynamoStore::create_table(&dynamo, &table).await?;
    }
    if scheduler.get_schedule_group().name(&group).send().await.is_err() {
        EventBridgeSchedules::create_group(&scheduler, &group).await?;
    }
    let s3 = S3Files::client(&aws, true);
    if s3.head_bucket().bucket(&bucket).send().await.is_err() {
        S3Files::create_bucket(&s3, &bucket).await?;
    }
    let ses = aws_sdk_sesv2::Client::new(&aws);
    if ses
        .get_email_identity()
        .email_identity(&sender)
        .send()
        .await
        .is_err()
    {
        ses.create_email_identity().email_identity(&sender).send().await?;
    }
    println!("table {table}, schedule group {group}, bucket {bucket} and sender {sender} are ready");
    Ok(())
}
