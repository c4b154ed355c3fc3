//! The API's request authorizer against a local identity service speaking the upstream
//! contracts: OIDC tokens checked against the issuer's published keys, and platform tokens
//! checked by asking the platform whose they are, per dialect; then the authorizer's answer as
//! the API reads it, through the handler on moto.

use std::sync::atomic::Ordering;
use std::time::Duration;

use authorize::oidc::Issuer;
use authorize::platform::Users;
use authorize::{handle, Authorizer, Caller, Verdict, PLATFORM_DEFAULT_PERMISSIONS};
use exporter_core::domain::Dialect;
use integration_tests::identity_server::{self, signed, User};
use integration_tests::{http_event, one_time_body, request, status_and_json, Fixture};
use serde_json::{json, Value};

const AUDIENCE: &str = "https://exporter.example.com";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(issuer: &str, sub: &str) -> Value {
    json!({
        "iss": issuer, "aud": AUDIENCE, "sub": sub, "exp": now() + 600, "iat": now(),
        "email": "ada@example.com", "scope": "openid exporter:exports:list",
        "permissions": ["exporter:exports:create"],
    })
}

async fn oidc() -> (std::sync::Arc<identity_server::IdentityState>, Authorizer) {
    let state = identity_server::start().await;
    let issuer = Issuer::new(&state.issuer, vec![AUDIENCE.into()]).expect("a valid issuer");
    (state, Authorizer::Oidc(issuer))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn denied(verdict: &Verdict) -> bool {
    matches!(verdict, Verdict::Deny(_))
}

#[tokio::test]
async fn an_oidc_token_names_its_caller_and_actions() {
    let (state, authorizer) = oidc().await;
    let token = signed(&claims(&state.issuer, "ada"), "key-1");
    let verdict = authorizer
        .decide(Some(&bearer(&token)))
        .await
        .expect("the issuer answers");
    assert_eq!(
        verdict,
        Verdict::Allow(Caller {
            sub: "ada".into(),
            email: Some("ada@example.com".into()),
            permissions: "exporter:exports:create exporter:exports:list openid".into(),
        })
    );
    // A second token needs no second fetch of the key set.
    let again = signed(&claims(&state.issuer, "bob"), "key-1");
    assert!(!denied(&authorizer.decide(Some(&again)).await.expect("answers")));
    assert_eq!(state.key_set_fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn oidc_tokens_that_are_not_the_issuers_for_this_api_are_denied() {
    let (state, authorizer) = oidc().await;
    let mut cases: Vec<(&str, String)> = Vec::new();
    let mut expired = claims(&state.issuer, "ada");
    expired["exp"] = json!(now() - 3600);
    cases.push(("expired", signed(&expired, "key-1")));
    let mut not_yet = claims(&state.issuer, "ada");
    not_yet["nbf"] = json!(now() + 3600);
    cases.push(("not valid before an hour from now", signed(&not_yet, "key-1")));
    let mut other_audience = claims(&state.issuer, "ada");
    other_audience["aud"] = json!("https://other.example.com");
    cases.push(("another audience", signed(&other_audience, "key-1")));
    let mut other_issuer = claims(&state.issuer, "ada");
    other_issuer["iss"] = json!("https://evil.example.com");
    cases.push(("another issuer", signed(&other_issuer, "key-1")));
    let mut no_sub = claims(&state.issuer, "ada");
    no_sub.as_object_mut().expect("an object").remove("sub");
    cases.push(("no sub", signed(&no_sub, "key-1")));
    cases.push((
        "an unpublished key",
        signed(&claims(&state.issuer, "ada"), "key-9"),
    ));
    let shared_secret = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(&state.issuer, "ada"),
        &jsonwebtoken::EncodingKey::from_secret(b"a secret anyone could pick").expect("a key"),
    )
    .expect("signs");
    cases.push(("a shared-secret signature", shared_secret));
    let good = signed(&claims(&state.issuer, "ada"), "key-1");
    let (head, rest) = good.split_once('.').expect("three parts");
    let (_, signature) = rest.split_once('.').expect("three parts");
    let forged_body = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        claims(&state.issuer, "root").to_string(),
    );
    cases.push(("a forged body", format!("{head}.{forged_body}.{signature}")));
    cases.push(("not a JWT", "not-a-jwt".into()));
    for (what, token) in cases {
        let verdict = authorizer
            .decide(Some(&bearer(&token)))
            .await
            .expect("the issuer answers");
        assert!(denied(&verdict), "{what}: {verdict:?}");
    }
    assert!(
        denied(&authorizer.decide(None).await.expect("answers")),
        "no header"
    );
    assert!(denied(
        &authorizer
            .decide(Some("Basic YWxhZGRpbg=="))
            .await
            .expect("answers")
    ));
}

#[tokio::test]
async fn a_rotated_key_is_fetched_once_and_an_unknown_one_not_again_within_the_interval() {
    let state = identity_server::start().await;
    let issuer = Issuer::new(&state.issuer, vec![AUDIENCE.into()])
        .expect("a valid issuer")
        .refetching_every(Duration::from_millis(300));
    let authorizer = Authorizer::Oidc(issuer);
    let first = signed(&claims(&state.issuer, "ada"), "key-1");
    assert!(!denied(&authorizer.decide(Some(&first)).await.expect("answers")));
    // The issuer rotates: a token under the new key arrives before the cache knows it.
    state.kids.lock().expect("lock").push("key-2".into());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let rotated = signed(&claims(&state.issuer, "ada"), "key-2");
    assert!(!denied(
        &authorizer.decide(Some(&rotated)).await.expect("answers")
    ));
    assert_eq!(state.key_set_fetches.load(Ordering::SeqCst), 2);
    // Tokens under a key nobody publishes do not make every request fetch the set: once per
    // interval at most.
    let unknown = signed(&claims(&state.issuer, "ada"), "key-9");
    for _ in 0..5 {
        assert!(denied(&authorizer.decide(Some(&unknown)).await.expect("answers")));
    }
    assert_eq!(state.key_set_fetches.load(Ordering::SeqCst), 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    for _ in 0..5 {
        assert!(denied(&authorizer.decide(Some(&unknown)).await.expect("answers")));
    }
    assert_eq!(state.key_set_fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_issuer_that_cannot_answer_fails_the_request_rather_than_deny_it() {
    let (state, authorizer) = oidc().await;
    state.down.store(true, Ordering::SeqCst);
    let token = signed(&claims(&state.issuer, "ada"), "key-1");
    let event = json!({"headers": {"authorization": bearer(&token)}});
    let error = handle(&authorizer, event)
        .await
        .expect_err("no verdict without keys");
    assert!(error.to_string().contains("500"), "{error}");
    // Once it answers again, the same token is allowed.
    state.down.store(false, Ordering::SeqCst);
    let event = json!({"headers": {"Authorization": bearer(&token)}});
    let answer = handle(&authorizer, event).await.expect("answers");
    assert_eq!(answer["isAuthorized"], json!(true));
    assert_eq!(answer["context"]["sub"], json!("ada"));
}

async fn platform(dialect: Dialect) -> (std::sync::Arc<identity_server::IdentityState>, Authorizer) {
    let state = identity_server::start().await;
    *state.profile_dialect.lock().expect("lock") = dialect;
    let users = Users::new(
        &state.issuer,
        dialect,
        PLATFORM_DEFAULT_PERMISSIONS.map(str::to_owned).to_vec(),
    )
    .expect("a valid URL");
    (state, Authorizer::Platform(users))
}

#[tokio::test]
async fn each_platform_says_whose_a_token_is() {
    for dialect in [Dialect::Mainflux, Dialect::Magistrala, Dialect::Connhex] {
        let (state, authorizer) = platform(dialect).await;
        state.users.lock().expect("lock").extend([
            (
                "tok-ada".to_owned(),
                User {
                    id: "u-ada".into(),
                    email: "ada@example.com".into(),
                    disabled: false,
                },
            ),
            (
                "tok-gone".to_owned(),
                User {
                    id: "u-gone".into(),
                    email: "gone@example.com".into(),
                    disabled: true,
                },
            ),
        ]);
        let verdict = authorizer
            .decide(Some("Bearer tok-ada"))
            .await
            .expect("the platform answers");
        assert_eq!(
            verdict,
            Verdict::Allow(Caller {
                sub: "u-ada".into(),
                email: Some("ada@example.com".into()),
                permissions: PLATFORM_DEFAULT_PERMISSIONS.join(" "),
            }),
            "{dialect}"
        );
        // Mainflux's own clients send the bare token.
        assert!(
            !denied(&authorizer.decide(Some("tok-ada")).await.expect("answers")),
            "{dialect}"
        );
        for refused in ["Bearer tok-unknown", "Bearer tok-gone"] {
            let verdict = authorizer.decide(Some(refused)).await.expect("answers");
            assert!(denied(&verdict), "{dialect} {refused}: {verdict:?}");
        }
        state.down.store(true, Ordering::SeqCst);
        assert!(
            authorizer.decide(Some("Bearer tok-ada")).await.is_err(),
            "{dialect}: a 500 is no verdict"
        );
    }
}

/// The authorizer's answer as API Gateway hands it on: the API sees that caller, and only them.
#[tokio::test]
async fn the_api_serves_the_caller_the_authorizer_names() {
    let Some(fixture) = Fixture::new().await else {
        return;
    };
    let (state, authorizer) = platform(Dialect::Magistrala).await;
    let id = format!("u-{}", uuid::Uuid::new_v4());
    state.users.lock().expect("lock").insert(
        "tok-ada".into(),
        User {
            id: id.clone(),
            email: "ada@example.com".into(),
            disabled: false,
        },
    );
    let answer = handle(&authorizer, json!({"identitySource": ["Bearer tok-ada"]}))
        .await
        .expect("answers");
    assert_eq!(answer["isAuthorized"], json!(true));
    let through = |method: &str, path: &str, body: Option<&Value>| {
        let mut event = http_event(method, path, body.map(Value::to_string).as_deref(), &[]);
        event["headers"]["authorization"] = json!("Bearer user-token");
        event["requestContext"]["authorizer"] = json!({"lambda": answer["context"]});
        request(&event)
    };
    let created = exports_api::handle(
        fixture.deps(),
        through("POST", "/exports", Some(&one_time_body())),
    )
    .await
    .unwrap_or_else(|never| match never {});
    let (status, body) = status_and_json(created);
    assert_eq!(status, 201, "{body}");
    let listed = exports_api::handle(fixture.deps(), through("GET", "/exports", None))
        .await
        .unwrap_or_else(|never| match never {});
    let (status, body) = status_and_json(listed);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], json!(1), "{body}");
    // With an empty context (an authorizer that named nobody), nobody is served.
    let mut event = http_event("GET", "/exports", None, &[]);
    event["requestContext"]["authorizer"] = json!({"lambda": {"email": "x@example.com"}});
    let (status, _) = status_and_json(
        exports_api::handle(fixture.deps(), request(&event))
            .await
            .unwrap_or_else(|never| match never {}),
    );
    assert_eq!(status, 400);
}
