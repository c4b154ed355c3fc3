//! The links in messages, on moto: a signed route of the API that needs no login and answers
//! with a fresh short-lived presigned redirect, so a link holds for the whole of its stated
//! validity (here: followed six days after it was sent, long after the signing function's
//! credentials would have expired); `410` past its expiry, `404` for any tampering.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use integration_tests::doubles::At;
use integration_tests::{http_event, one_time_body, request, someone, status_and_json, Fixture};
use run_export::{handle, Outcome};

/// Follows `path_and_query` through the API as of `now`, without any login.
async fn follow(fx: &Fixture, path_and_query: &str, now: DateTime<Utc>) -> (u16, Option<String>) {
    let clock = At(now);
    let deps = exports_api::Deps {
        clock: &clock,
        ..fx.deps()
    };
    let event = http_event("GET", path_and_query, None, &[]);
    let response = match exports_api::handle(deps, request(&event)).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let location = response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned);
    (status_and_json(response).0, location)
}

#[tokio::test]
async fn a_link_in_a_message_holds_for_its_whole_stated_validity_and_not_longer() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let mut body = one_time_body();
    body["notification"]["messages"] = json!([{"policy": "onSuccess", "medium": "slack",
        "title": "Export", "text": "{{downloadUrl}} until {{expiresAt}}",
        "target": format!("{}/slack/links", fx.chat_url)}]);
    let event = fx.create_run(&alice, &body).await;
    assert_eq!(
        handle(fx.run_deps(), event.clone()).await.expect("runs"),
        Outcome::Done
    );
    let sent_at = Utc::now();
    let summary = fx.notify_job(event.export_id, event.job_id()).await;
    assert_eq!(summary.sent, 1);
    let text = fx
        .chat_state
        .captured()
        .into_iter()
        .find(|c| c.path.starts_with("/slack/links"))
        .and_then(|c| c.body["text"].as_str().map(str::to_owned))
        .expect("the message");
    let url = text
        .split_whitespace()
        .find(|w| w.contains("/links/"))
        .expect("a link in the message");
    let (link, stated) = (
        &url[url.find("/links/").expect("the route")..],
        text.rsplit(' ')
            .next()
            .and_then(|t| t.parse::<DateTime<Utc>>().ok())
            .expect("the stated expiry"),
    );
    assert!(!url.contains("X-Amz"), "not a presigned S3 URL: {url}");
    assert!(
        stated - sent_at > TimeDelta::days(6),
        "a week's validity, as the file's: {stated}"
    );

    // Six days later, when the signing function's credentials are long gone: a fresh redirect.
    let (status, location) = follow(&fx, link, sent_at + TimeDelta::days(6)).await;
    assert_eq!(status, 302);
    let location = location.expect("a location");
    assert!(location.contains("X-Amz-Expires=3600"), "{location}");
    let file = reqwest::get(&location).await.expect("moto serves it");
    assert_eq!(file.status().as_u16(), 200);
    assert_eq!(
        file.bytes().await.expect("a body"),
        fx.download(&alice, &event.export_id.to_string()).await
    );

    // Not a second past what it said.
    assert_eq!(follow(&fx, link, stated).await.0, 410);

    // Any change is no link at all, and says nothing about what exists.
    let tampered_expiry = link.replace("expires=", "expires=9");
    let other_job = link.replace(&event.job_id(), "20200101T000000000Z");
    let bad_signature = format!("{}x", link);
    for forged in [
        tampered_expiry.as_str(),
        other_job.as_str(),
        bad_signature.as_str(),
    ] {
        assert_eq!(follow(&fx, forged, sent_at).await.0, 404, "{forged}");
    }
    let no_signature = &link[..link.find('?').expect("a query")];
    assert_eq!(follow(&fx, no_signature, sent_at).await.0, 404);

    // A deleted export's links stop working.
    let (status, _) = fx
        .call("DELETE", &format!("/exports/{}", event.export_id), None, &alice)
        .await;
    assert_eq!(status, 204);
    assert_eq!(follow(&fx, link, sent_at).await.0, 404);
}

/// The link keys rotated as the README says (the new key put first in their SSM parameter):
/// a warm API, which read the keys before, follows a link that a new notify container signed
/// with the new key, rather than answering it `404`; a key nobody holds stays `404`.
#[tokio::test]
async fn a_link_signed_with_a_key_rotated_in_is_followed_by_a_warm_api() {
    use exporter_core::domain::link::LinkSigner;
    use exporter_core::ports::LinkKeys;
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let event = fx.create_run(&alice, &one_time_body()).await;
    assert_eq!(
        handle(fx.run_deps(), event.clone()).await.expect("runs"),
        Outcome::Done
    );

    let ssm = aws_sdk_ssm::Client::new(&integration_tests::aws_at(&fx.moto).await);
    let name = format!("/exporter/test/link-keys-{}", uuid::Uuid::new_v4().simple());
    let put = |value: &'static str| {
        ssm.put_parameter()
            .name(&name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send()
    };
    put("old:old-link-signing-key-0123456789abcdef")
        .await
        .expect("moto stores it");
    let source = exporter_adapters::ssm::SsmLinkKeys::new(&ssm, &name);
    let at_cold_start = source.current().await.expect("the keys");
    let config = exports_api::ApiConfig {
        links: Some(std::sync::Arc::new(exports_api::Links::kept_in(
            at_cold_start,
            std::sync::Arc::new(source),
        ))),
        ..fx.config.clone()
    };
    let clock = At(Utc::now());
    let deps = exports_api::Deps {
        config: &config,
        clock: &clock,
        ..fx.deps()
    };
    let follow_signed = |keys: &'static str| {
        let signer = LinkSigner::parse(keys).expect("keys");
        let signature = signer.sign(&event.export_id, &event.job_id(), Utc::now() + TimeDelta::days(1));
        let path = format!(
            "/links/{}/{}?expires={}&key={}&signature={}",
            event.export_id,
            event.job_id(),
            signature.expires,
            signature.key,
            signature.signature
        );
        async move {
            let response = exports_api::handle(deps, request(&http_event("GET", &path, None, &[])))
                .await
                .unwrap_or_else(|never| match never {});
            status_and_json(response).0
        }
    };
    assert_eq!(
        follow_signed("old:old-link-signing-key-0123456789abcdef").await,
        302
    );
    // The rotation: the new key first (it signs), the old one still verifying.
    put("new:new-link-signing-key-0123456789abcdef,old:old-link-signing-key-0123456789abcdef")
        .await
        .expect("moto stores it");
    assert_eq!(
        follow_signed("new:new-link-signing-key-0123456789abcdef").await,
        302,
        "a link of the new key, in a container that read the keys before the rotation"
    );
    assert_eq!(
        follow_signed("old:old-link-signing-key-0123456789abcdef").await,
        302
    );
    assert_eq!(
        follow_signed("evil:evil-link-signing-key-0123456789abcdef").await,
        404
    );
}
