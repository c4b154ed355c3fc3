//! A local identity service of the project's own, for the authorizer's tests: an OIDC issuer
//! (discovery document and key set, tokens signed with the test key in
//! `tests/data/oidc-test-key.pem`) and a platform's "who am I" routes as each dialect serves them
//! (`GET /users/profile` as Mainflux or Magistrala/SuperMQ answer it, `GET
//! /auth/sessions/whoami` as Connhex's accounts service, an Ory Kratos, answers it), with `401`
//! for a token it does not know.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use exporter_core::domain::Dialect;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// A platform user.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub email: String,
    /// A disabled user (Mainflux, Magistrala) or an inactive session (Connhex).
    pub disabled: bool,
}

/// What the service knows and how it answers.
pub struct IdentityState {
    pub issuer: String,
    /// The key ids the key set publishes (all for the one test key).
    pub kids: Mutex<Vec<String>>,
    /// Tokens the platform issued, by token.
    pub users: Mutex<HashMap<String, User>>,
    /// How `/users/profile` answers: as Mainflux (`credentials.identity`) or as Magistrala.
    pub profile_dialect: Mutex<Dialect>,
    /// Answer `500` to everything.
    pub down: AtomicBool,
    pub key_set_fetches: AtomicUsize,
    pub profile_requests: AtomicUsize,
}

/// The test key, PEM (PKCS #1).
pub const TEST_KEY: &[u8] = include_bytes!("../data/oidc-test-key.pem");

/// The published form of the test key under `kid`.
///
/// # Panics
/// When the test key cannot be read (a broken checkout).
pub fn public_key(kid: &str) -> Jwk {
    let key = EncodingKey::from_rsa_pem(TEST_KEY).expect("the test key is an RSA PEM");
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).expect("the test key publishes");
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

/// `claims` signed with the test key under `kid` (RS256).
///
/// # Panics
/// When the test key cannot sign (a broken checkout).
pub fn signed(claims: &Value, kid: &str) -> String {
    let key = EncodingKey::from_rsa_pem(TEST_KEY).expect("the test key is an RSA PEM");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    encode(&header, claims, &key).expect("the test key signs")
}

/// Starts the service on a free loopback port; its base URL is the issuer.
///
/// # Panics
/// When no loopback port can be bound.
pub async fn start() -> Arc<IdentityState> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let issuer = format!("http://{}", listener.local_addr().expect("bound"));
    let state = Arc::new(IdentityState {
        issuer,
        kids: Mutex::new(vec!["key-1".into()]),
        users: Mutex::new(HashMap::new()),
        profile_dialect: Mutex::new(Dialect::Magistrala),
        down: AtomicBool::new(false),
        key_set_fetches: AtomicUsize::new(0),
        profile_requests: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/keys", get(keys))
        .route("/users/profile", get(profile))
        .route("/auth/sessions/whoami", get(whoami))
        .with_state(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    state
}

fn down(state: &IdentityState) -> Option<Response> {
    state
        .down
        .load(Ordering::SeqCst)
        .then(|| (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response())
}

async fn discovery(State(state): State<Arc<IdentityState>>) -> Response {
    if let Some(answer) = down(&state) {
        return answer;
    }
    Json(json!({"issuer": state.issuer, "jwks_uri": format!("{}/keys", state.issuer)})).into_response()
}

async fn keys(State(state): State<Arc<IdentityState>>) -> Response {
    if let Some(answer) = down(&state) {
        return answer;
    }
    state.key_set_fetches.fetch_add(1, Ordering::SeqCst);
    let kids = state.kids.lock().map(|k| k.clone()).unwrap_or_default();
    Json(JwkSet {
        keys: kids.iter().map(|kid| public_key(kid)).collect(),
    })
    .into_response()
}

/// Why no user is answered: the service is down (`500`), or the token is unknown (`401`).
enum NoUser {
    Down,
    Unknown,
}

impl IntoResponse for NoUser {
    fn into_response(self) -> Response {
        match self {
            Self::Down => (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response(),
            Self::Unknown => (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "", "message": "failed to perform authentication over the entity"})),
            )
                .into_response(),
        }
    }
}

/// The user a request's bearer token names.
fn user_of(state: &IdentityState, headers: &HeaderMap) -> Result<User, NoUser> {
    if state.down.load(Ordering::SeqCst) {
        return Err(NoUser::Down);
    }
    state.profile_requests.fetch_add(1, Ordering::SeqCst);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let users = state.users.lock().map(|u| u.clone()).unwrap_or_default();
    token.and_then(|t| users.get(t).cloned()).ok_or(NoUser::Unknown)
}

async fn profile(State(state): State<Arc<IdentityState>>, headers: HeaderMap) -> Response {
    let user = match user_of(&state, &headers) {
        Ok(user) => user,
        Err(no) => return no.into_response(),
    };
    let status = if user.disabled { "disabled" } else { "enabled" };
    let dialect = state.profile_dialect.lock().map(|d| *d).unwrap_or_default();
    let body = match dialect {
        Dialect::Mainflux => json!({
            "id": user.id, "name": "someone", "credentials": {"identity": user.email},
            "status": status, "created_at": "2026-01-01T00:00:00Z",
        }),
        _ => json!({
            "id": user.id, "first_name": "Some", "last_name": "One", "email": user.email,
            "credentials": {"username": "someone"}, "status": status, "role": "user",
        }),
    };
    Json(body).into_response()
}

async fn whoami(State(state): State<Arc<IdentityState>>, headers: HeaderMap) -> Response {
    let user = match user_of(&state, &headers) {
        Ok(user) => user,
        Err(no) => return no.into_response(),
    };
    Json(json!({
        "id": "session-1",
        "active": !user.disabled,
        "identity": {"id": user.id, "schema_id": "default", "traits": {"email": user.email}},
    }))
    .into_response()
}
