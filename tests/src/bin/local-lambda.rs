//! The local Lambda Invoke API as Lambda answers it: in front of `cargo lambda watch`, which
//! holds an asynchronous (`Event`) invoke until the invocation has finished, this answers an
//! `Event` invoke with `202` at once and hands it to watch in the background, so a function that
//! launches another (the API launching a run, a run launching its items and continuations)
//! never waits on it. Other invokes (and every other path) are passed through as they are.
//! `LOCAL_LAMBDA_ADDRESS` (default 127.0.0.1:9001) and `WATCH_ENDPOINT` (default
//! http://127.0.0.1:9000) say where it listens and where watch is.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

#[derive(Clone)]
struct Watch {
    http: reqwest::Client,
    base: String,
}

/// Request headers the Invoke API reads; the rest (host, length) are the client's business.
const PASSED: [&str; 5] = [
    "content-type",
    "x-amz-invocation-type",
    "x-amz-log-type",
    "x-amz-client-context",
    "authorization",
];

async fn forward(
    watch: &Watch,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<reqwest::Response, reqwest::Error> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = watch
        .http
        .request(method, format!("{}{path}", watch.base))
        .body(body);
    for name in PASSED {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value.as_bytes());
        }
    }
    request.send().await
}

async fn dispatch(
    State(watch): State<Watch>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let asynchronous = headers
        .get("x-amz-invocation-type")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"Event"));
    if asynchronous && uri.path().ends_with("/invocations") {
        // Lambda queues the event and answers at once; the invocation runs on its own.
        tokio::spawn(async move {
            match forward(&watch, method, &uri, &headers, body).await {
                Ok(answer) if !answer.status().is_success() => {
                    eprintln!("local-lambda: {} answered {}", uri.path(), answer.status());
                }
                Ok(_) => {}
                Err(e) => eprintln!("local-lambda: {} failed: {e}", uri.path()),
            }
        });
        return StatusCode::ACCEPTED.into_response();
    }
    match forward(&watch, method, &uri, &headers, body).await {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut out = HeaderMap::new();
            for (name, value) in answer.headers() {
                if name.as_str().starts_with("x-amz") || name.as_str() == "content-type" {
                    out.insert(name.clone(), value.clone());
                }
            }
            let body = answer.bytes().await.unwrap_or_default();
            (status, out, body).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("watch did not answer: {e}")).into_response(),
    }
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let address = std::env::var("LOCAL_LAMBDA_ADDRESS").unwrap_or_else(|_| "127.0.0.1:9001".into());
    let base = std::env::var("WATCH_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9000".into());
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(900))
        .build()
        .map_err(|e| e.to_string())?;
    let app = Router::new().fallback(dispatch).with_state(Watch {
        http,
        base: base.clone(),
    });
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|e| format!("{address}: {e}"))?;
    println!("local Lambda Invoke API at http://{address}, in front of {base}");
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}
