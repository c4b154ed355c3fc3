//! The local chat endpoints for the demo (`LOCAL_CHAT_ADDRESS`, default 127.0.0.1:9200): what
//! they receive is listed at `GET /captured`.

use integration_tests::chat_server::start_on;

#[tokio::main]
async fn main() {
    let address = std::env::var("LOCAL_CHAT_ADDRESS").unwrap_or_else(|_| "127.0.0.1:9200".into());
    let (url, _) = start_on(&address).await;
    println!("local chat endpoints at {url}");
    std::future::pending::<()>().await;
}
