//! The local reader API for the demo: `LOCAL_READER_ADDRESS` (default 127.0.0.1:9100),
//! `READER_TOKEN`, a point every `LOCAL_READER_STEP_SECONDS` (default 300) from 2025-01-01.

use integration_tests::reader_server::{start_on, ReaderConfig};

#[tokio::main]
async fn main() {
    let address = std::env::var("LOCAL_READER_ADDRESS").unwrap_or_else(|_| "127.0.0.1:9100".into());
    let token = std::env::var("READER_TOKEN").unwrap_or_else(|_| "local-reader-token".into());
    let step = std::env::var("LOCAL_READER_STEP_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let (url, _) = start_on(ReaderConfig::new(&token, 1_735_689_600, step), &address).await;
    println!("local reader at {url}");
    std::future::pending::<()>().await;
}
