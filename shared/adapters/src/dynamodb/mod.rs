//! DynamoDB adapter of the store's roles: one table, exports and their jobs under one partition.
//! One file a role, each implementing its port with the actions its IAM policy grants:
//!
//! | file | port | actions |
//! |---|---|---|
//! | `exports.rs` | `Exports`, `ExportLifecycle` | `GetItem`, `Query` (`byOwner`), `UpdateItem`, `TransactWriteItems` (the quota) |
//! | `runs.rs` | `ExportRuns` | `GetItem`, `UpdateItem` (the jobs it passes first, then the export), `TransactWriteItems` (settling with the quota) |
//! | `jobs.rs` | `JobHistory`, `JobLedger`, `JobEnds` | `GetItem`, `Query`, `UpdateItem` |
//! | `items.rs` | `JobSpread`, `ItemLedger` | `GetItem`, `Query`, `UpdateItem` |
//! | `deliveries.rs` | `DeliveryLog` | `UpdateItem` (the job's record) |
//! | `budgets.rs` | `Budgets` | `TransactWriteItems` |
//! | `sweep.rs` | `Sweep`, and the index's backfill | `Query` (`bySweep`), `Scan` (backfill only), `GetItem`, `PutItem`, `UpdateItem` |
//! | `codec.rs` | the layout below in code: keys, attribute codecs, conditional outcomes | |
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | export | `EXPORT#<id>` | `EXPORT` | `owner`, `createdAt` (the `byOwner` index), `status`, `nextRunAt`, `deletedAt`, `updatedAt`, `ownerEmail`; `record` is the request's versioned record (`domain::record`; items written before version 1 hold `request`, read as version 0); `sweep` while live |
//! | job | `EXPORT#<id>` | `JOB#<scheduledAt>` | `jobId`, `status`, `startedAt`, `finishedAt`, `leaseUntil` (Unix seconds; a claim given back ends a second before, so the sweep's grace counts from there), `attempts`, `leg` and `legFrom` (the attempts when the leg was checkpointed); a spread job's `items`, `itemsLeft`, `itemsLaunched`, `outcomes`; `detail` once ended; `delivery<i>` per message; `spentRun`, `spentMessage<i>`; `handedOff`, `notified`; `sweep` until it is finished; `expiresAt` |
//! | item run | `EXPORT#<id>` | `ITEM#<scheduledAt>#<index>` | one item of a spread job (not under `JOB#`, so job queries never see it): `status`, `leaseUntil`, `attempts`, `leg`, `legFrom`, `launchedAt`, `doneAt`, `expiresAt` |
//! | quota | `OWNER#<sub>` | `QUOTA` | `queued`: the owner's exports that are queued or scheduled; `touchedAt`; `sweep` |
//! | budget | `OWNER#<sub>` | `BUDGET#<yyyy-mm-dd>` | `runs`, `messages` spent that UTC day; expires two days later |
//! | marker | `META` | `SWEEP_INDEX` | the backfill's place (`firstAt`, `passAt`, `lastPk`, `lastSk`) and `done` once every record older than the `bySweep` index carries its `sweep` key |
//!
//! The reconciler finds its work through the sparse `bySweep` index (hash `sweep`, range `sk`):
//! a record carries `sweep` (`EXPORT#<s>`, `JOB#<s>` or `QUOTA#<s>`, `<s>` one of 16 shards of
//! the export id or owner) only while it is work: an export while it is live (set at create,
//! removed when a one-time export settles or any export is deleted), a job from its first record
//! until it has ended *and* notify has finished its messages (removed by whichever of
//! `handed_off` and `notified` comes second), and every quota counter. Ended exports, handed jobs
//! and item runs are never in it, so a sweep's reads follow the live exports and the jobs under
//! way, not the history kept. Records written before the index get their key once
//! ([`DynamoStore::index_for_sweeps`]).
//!
//! A job item marks what it spent (`spentRun`, `spentMessage<i>`) in the same transaction as the
//! budget, so a retried attempt never spends twice. The quota and the export change in one
//! transaction, so the per-owner limit holds under concurrent requests. This folder is the only
//! code that knows the item layout.

mod budgets;
mod codec;
mod deliveries;
mod exports;
mod items;
mod jobs;
mod runs;
mod sweep;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use exporter_core::ports::StoreError;

use codec::*;

/// Name of the index that lists an owner's exports by creation time.
pub const OWNER_INDEX: &str = "byOwner";
/// The attribute DynamoDB's TTL reads (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expiresAt";
/// Name of the sparse index the reconciler's sweeps query (see the module's header).
pub const SWEEP_INDEX: &str = "bySweep";

/// The export store on one DynamoDB table.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Creates the table as the SAM template declares it (for local runs and tests).
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(unavailable)
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(unavailable)
        };
        let index = |name: &str, hash: &str, range: &str| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(hash, KeyType::Hash)?)
                .key_schema(key(range, KeyType::Range)?)
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
                .map_err(unavailable)
        };
        client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .attribute_definitions(attr("owner")?)
            .attribute_definitions(attr("createdAt")?)
            .attribute_definitions(attr("sweep")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .global_secondary_indexes(index(OWNER_INDEX, "owner", "createdAt")?)
            .global_secondary_indexes(index(SWEEP_INDEX, "sweep", "sk")?)
            .send()
            .await
            .map_err(unavailable)?;
        let ttl = TimeToLiveSpecification::builder()
            .attribute_name(TTL_ATTRIBUTE)
            .enabled(true)
            .build()
            .map_err(unavailable)?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
