//! Records of history written straight into a table (deleted exports, ended jobs handed off
//! and notified), for the sweep's test and benchmark.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chrono::{TimeDelta, Utc};

use exporter_core::domain::ExportId;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// A time as the store writes it (RFC 3339, milliseconds, UTC).
pub fn millis(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub async fn put_all(client: &aws_sdk_dynamodb::Client, table: &str, items: Vec<Item>) {
    for chunk in items.chunks(25) {
        let writes = chunk
            .iter()
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item.clone()))
                    .build()
                    .expect("a put");
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        client
            .batch_write_item()
            .request_items(table, writes)
            .send()
            .await
            .expect("moto writes");
    }
}

/// A deleted export like `template`, and four of its jobs, ended, handed off and notified.
pub fn history_of(template: &Item, n: usize) -> Vec<Item> {
    let id = ExportId::new_random();
    let mut export = template.clone();
    export.remove("sweep");
    export.insert("pk".into(), AttributeValue::S(format!("EXPORT#{id}")));
    export.insert("deletedAt".into(), AttributeValue::S(millis(Utc::now())));
    let mut items = vec![export];
    for j in 0..4 {
        let at = Utc::now() - TimeDelta::days(2) - TimeDelta::minutes((n * 4 + j) as i64);
        items.push(HashMap::from([
            ("pk".into(), AttributeValue::S(format!("EXPORT#{id}"))),
            ("sk".into(), AttributeValue::S(format!("JOB#{}", millis(at)))),
            (
                "jobId".into(),
                AttributeValue::S(at.format("%Y%m%dT%H%M%S%3fZ").to_string()),
            ),
            ("scheduledAt".into(), AttributeValue::S(millis(at))),
            ("status".into(), AttributeValue::S("done".into())),
            ("finishedAt".into(), AttributeValue::S(millis(at))),
            ("detail".into(), AttributeValue::S("{}".into())),
            ("leaseUntil".into(), AttributeValue::N("0".into())),
            ("attempts".into(), AttributeValue::N("1".into())),
            ("handedOff".into(), AttributeValue::Bool(true)),
            ("notified".into(), AttributeValue::Bool(true)),
        ]));
    }
    items
}
