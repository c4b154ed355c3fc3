//! The local reader API for the demo and manual runs: `LOCAL_READER_ADDRESS` (default
//! 127.0.0.1:9100), `READER_TOKEN`; a point every `LOCAL_READER_STEP_SECONDS` (default 300) from
//! 2025-01-01 for any channel, subtopic and name, or, with `LOCAL_READER_DATA=<file>`, the
//! messages of that file (a JSON array of SenML messages, or a page saved from a real reader).
//! `LOCAL_READER_LATENCY_MS` delays every answer (a reader far away).
//! Users' tokens and what they may read: `LOCAL_READER_GRANTS=token=channel,channel;token=*`;
//! the policy endpoint's subjects likewise in `LOCAL_READER_POLICY=subject=*;...`.
//! `READER_DIALECT` (mainflux, magistrala, connhex: the default) sets the dialect it speaks.

use integration_tests::reader_server::{load_messages, start_on, ReaderConfig};

#[tokio::main]
async fn main() -> Result<(), String> {
    let address = std::env::var("LOCAL_READER_ADDRESS").unwrap_or_else(|_| "127.0.0.1:9100".into());
    let token = std::env::var("READER_TOKEN").unwrap_or_else(|_| "local-reader-token".into());
    let step = std::env::var("LOCAL_READER_STEP_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let dialect = match std::env::var("READER_DIALECT").ok().filter(|d| !d.is_empty()) {
        Some(name) => {
            exporter_core::domain::Dialect::parse(&name).map_err(|e| format!("READER_DIALECT: {e}"))?
        }
        None => exporter_core::domain::Dialect::default(),
    };
    let mut config = ReaderConfig::new(&token, 1_735_689_600, step).speaking(dialect);
    // A reader far away: each answer takes this long (the end-to-end benchmark sets it).
    if let Some(ms) = std::env::var("LOCAL_READER_LATENCY_MS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        config.latency = std::time::Duration::from_millis(ms);
    }
    if let Some(path) = std::env::var_os("LOCAL_READER_DATA").filter(|p| !p.is_empty()) {
        let shown = path.to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).map_err(|e| format!("LOCAL_READER_DATA {shown}: {e}"))?;
        let messages = load_messages(&text).map_err(|e| format!("LOCAL_READER_DATA {shown}: {e}"))?;
        println!("serving {} messages from {shown}", messages.len());
        config = config.with_messages(messages);
    }
    let (url, state) = start_on(config, &address).await;
    for (variable, grant) in [
        (
            "LOCAL_READER_GRANTS",
            ReaderConfig::grant as fn(&ReaderConfig, &str, &[&str]),
        ),
        ("LOCAL_READER_POLICY", ReaderConfig::allow),
    ] {
        for entry in std::env::var(variable).unwrap_or_default().split(';') {
            if let Some((who, channels)) = entry.split_once('=') {
                let channels: Vec<&str> = channels.split(',').map(str::trim).collect();
                grant(&state, who.trim(), &channels);
            }
        }
    }
    println!("local reader at {url}, speaking {dialect}");
    std::future::pending::<()>().await;
    Ok(())
}
