//! The integration tests, one binary (the AWS SDK and the functions link once): each module is
//! one subject, against moto, `cargo lambda watch` and the project's local servers.

mod api_on_moto;
mod black_box;
mod callers;
mod chain;
mod channel_access;
mod charts;
mod clients;
mod connhex137;
mod continuation;
mod deadline;
mod deployable;
mod dialects;
mod events;
mod formats;
mod gaps;
mod injection;
mod items;
mod links;
mod losses;
mod manage;
mod metrics;
mod notify;
mod optional_parts;
mod reader;
mod reconcile;
mod relay;
mod reports;
mod run_export;
mod sheet_split;
mod soak;
mod template;
mod wide;
