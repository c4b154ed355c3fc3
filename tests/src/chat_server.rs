//! Local chat endpoints of the project's own, capturing what they receive: Telegram's Bot API
//! (`POST /bot{token}/sendMessage`), Slack incoming webhooks (`POST /slack/...`, answering `ok`)
//! and Discord webhooks (`POST /discord/...`, answering the message with `?wait=true`).
//! Tests script failures per path prefix (a status, optionally with `Retry-After`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{json, Value};

/// One request received.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Captured {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
    /// The status answered (a scripted failure's, else 200).
    pub answered: u16,
}

/// A scripted answer: the status and an optional `Retry-After` in seconds.
#[derive(Clone, Copy, Debug)]
pub struct Scripted {
    pub status: u16,
    pub retry_after: Option<u64>,
}

/// What the server saw and what it will answer next.
#[derive(Debug, Default)]
pub struct ChatState {
    pub captured: Mutex<Vec<Captured>>,
    script: Mutex<HashMap<String, VecDeque<Scripted>>>,
}

impl ChatState {
    /// Answers to give, in order, to requests whose path starts with `prefix`.
    pub fn script(&self, prefix: &str, answers: &[Scripted]) {
        if let Ok(mut script) = self.script.lock() {
            script
                .entry(prefix.to_owned())
                .or_default()
                .extend(answers.iter().copied());
        }
    }

    pub fn captured(&self) -> Vec<Captured> {
        self.captured.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn next_scripted(&self, path: &str) -> Option<Scripted> {
        let mut script = self.script.lock().ok()?;
        script
            .iter_mut()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .and_then(|(_, queue)| queue.pop_front())
    }
}

/// Starts the endpoints on `address`; returns their base URL and state.
///
/// # Panics
/// When the address cannot be bound.
pub async fn start_on(address: &str) -> (String, Arc<ChatState>) {
    let state = Arc::new(ChatState::default());
    let app = Router::new()
        .route("/captured", get(captured))
        .fallback(any(receive))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .expect("a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, state)
}

/// Starts the endpoints on a free loopback port.
///
/// # Panics
/// When no loopback port can be bound.
pub async fn start() -> (String, Arc<ChatState>) {
    start_on("127.0.0.1:0").await
}

async fn captured(State(state): State<Arc<ChatState>>) -> Json<Vec<Captured>> {
    Json(state.captured())
}

async fn receive(
    State(state): State<Arc<ChatState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let scripted = state.next_scripted(&path);
    let capture = Captured {
        answered: scripted.map_or(200, |a| a.status),
        method: method.to_string(),
        path: path.clone(),
        query: uri.query().unwrap_or_default().to_owned(),
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let number = {
        let Ok(mut all) = state.captured.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        all.push(capture);
        all.len()
    };
    if let Some(answer) = scripted {
        let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (
            status,
            Json(json!({"ok": false, "description": "scripted failure"})),
        )
            .into_response();
        if let Some(seconds) = answer.retry_after {
            if let Ok(value) = seconds.to_string().parse() {
                response.headers_mut().insert("retry-after", value);
            }
        }
        return response;
    }
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    if path.starts_with("/bot") && path.ends_with("/sendMessage") {
        Json(json!({"ok": true, "result": {"message_id": number, "chat": {"id": 1}}})).into_response()
    } else if path.starts_with("/slack/") {
        "ok".into_response()
    } else if path.starts_with("/discord/") {
        Json(json!({"id": format!("{}", 1_000_000 + number), "type": 0})).into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}
