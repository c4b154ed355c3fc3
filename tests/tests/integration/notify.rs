//! notify against moto's SES and the local chat endpoints: each platform's method, path, headers
//! and JSON shape; policies; retries (500 then 200, 429 with Retry-After); a permanent failure
//! recorded while the others still go out; a second invocation sends nothing twice; the
//! attachment limit; a host off the allow-list refused at create time.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use exporter_core::domain::job::JobKey;
use exporter_core::domain::RunEvent;
use exporter_core::ports::{DeliveryLog, JobHistory};
use integration_tests::chat_server::Scripted;
use integration_tests::{someone, Fixture, READER_START, TELEGRAM_TOKEN};
use notify::{handle, NotifyEvent, Summary};

const CHANNEL: &str = "0115c85d-ef3e-4de9-9732-d0c5c4f2c482";

fn body(messages: Value) -> Value {
    json!({
        "format": {"extension": "csv", "columns": [{"id": "time", "label": "t"}, {"id": "value", "label": "v"}]},
        "type": "oneTime",
        "items": [{"params": {"target": {"value": "urn:dev:temperature"}, "channelId": CHANNEL,
            "subtopic": "events.data", "from": READER_START, "to": READER_START + 600}}],
        "notification": {"messages": messages}
    })
}

fn message(policy: &str, medium: &str, target: Option<String>) -> Value {
    let mut m = json!({"policy": policy, "medium": medium, "title": "Export {{status}}",
        "text": "{{rows}} rows for {{exportId}}"});
    if let Some(target) = target {
        m["target"] = json!(target);
    }
    m
}

/// Creates the export, runs its job and returns the export id and the notify event.
async fn ran(fx: &Fixture, who: &[(String, String)], body: &Value) -> (String, NotifyEvent) {
    let (status, export) = fx.call("POST", "/exports", Some(body), who).await;
    assert_eq!(status, 201, "{export}");
    let id = export["id"].as_str().expect("an id").to_owned();
    let at: DateTime<Utc> = export["createdAt"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("createdAt");
    let event = RunEvent {
        export_id: id.parse().expect("an id"),
        scheduled_at: at,
        occurrence: None,
        leg: None,
        item: None,
        extra: None,
    };
    run_export::handle(fx.run_deps(), event.clone())
        .await
        .expect("the job runs");
    (
        id,
        NotifyEvent {
            export_id: event.export_id,
            job_id: event.job_id(),
        },
    )
}

async fn notifications(fx: &Fixture, who: &[(String, String)], id: &str) -> Vec<Value> {
    let (_, state) = fx.call("GET", &format!("/exports/{id}/status"), None, who).await;
    state["jobs"][0]["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_successful_job_sends_its_success_messages_in_each_platforms_format() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let slack = format!("{}/slack/T000/B000/XXXX", fx.chat_url);
    let discord = format!("{}/discord/api/webhooks/1/abc", fx.chat_url);
    let messages = json!([
        message("onSuccess", "email", Some("ops@example.com".into())),
        message("onSuccess", "slack", Some(slack)),
        message("onSuccess", "discord", Some(discord)),
        message("onSuccess", "telegram", Some("-1001234567890".into())),
        message(
            "onFailure",
            "slack",
            Some(format!("{}/slack/failures", fx.chat_url))
        ),
    ]);
    let (id, event) = ran(&fx, &alice, &body(messages)).await;
    let summary = handle(fx.notify_deps(), event).await.expect("notifies");
    assert_eq!(
        summary,
        Summary {
            sent: 4,
            failed: 0,
            skipped: 1
        }
    );

    let captured = fx.chat_state.captured();
    assert_eq!(captured.len(), 3, "{captured:?}");
    let find = |prefix: &str| {
        captured
            .iter()
            .find(|c| c.path.starts_with(prefix))
            .expect("received")
    };
    let slack = find("/slack/T000");
    assert_eq!(
        (slack.method.as_str(), slack.content_type.as_str()),
        ("POST", "application/json")
    );
    let text = slack.body["text"].as_str().expect("Slack's text");
    assert!(text.starts_with("*Export done*\n10 rows for "), "{text}");
    assert!(
        text.contains("Download: http://127.0.0.1"),
        "the link is appended: {text}"
    );
    let discord = find("/discord/");
    assert_eq!(discord.query, "wait=true");
    assert!(discord.body["content"]
        .as_str()
        .is_some_and(|c| c.starts_with("**Export done**\n")));
    assert_eq!(discord.body["allowed_mentions"], json!({"parse": []}));
    let telegram = find("/bot");
    assert_eq!(telegram.path, format!("/bot{TELEGRAM_TOKEN}/sendMessage"));
    assert_eq!(telegram.body["chat_id"], "-1001234567890");
    assert!(telegram.body["text"]
        .as_str()
        .is_some_and(|t| t.starts_with("Export done\n\n10 rows")));

    let recorded = notifications(&fx, &alice, &id).await;
    assert_eq!(recorded.len(), 4);
    assert!(
        recorded
            .iter()
            .all(|d| d["status"] == "sent" && d["attempts"] == 1),
        "{recorded:?}"
    );
    let email_id = recorded[0]["providerMessageId"]
        .as_str()
        .expect("SES's message id");
    let raw = fx.sent_email(email_id).await.expect("moto has the email");
    assert!(
        raw.contains("To: <ops@example.com>") || raw.contains("To: ops@example.com"),
        "{raw}"
    );
    assert!(raw.contains("Subject: Export done"));
    assert!(
        raw.contains("text/plain") && raw.contains("text/html"),
        "two parts"
    );
    assert!(
        raw.contains("Content-Disposition: attachment"),
        "a small file is attached"
    );
    assert_eq!(
        recorded[2]["providerMessageId"].as_str().map(|s| s.len()),
        Some(7),
        "Discord's id"
    );
}

#[tokio::test]
async fn a_failed_job_sends_only_its_failure_messages_with_the_error() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.break_reader(503, 1).await;
    let alice = someone();
    let mut failure = message(
        "onFailure",
        "slack",
        Some(format!("{}/slack/failures", fx.chat_url)),
    );
    failure["text"] = json!("failed: {{error}}");
    let messages = json!([
        message("onSuccess", "slack", Some(format!("{}/slack/ok", fx.chat_url))),
        failure
    ]);
    let (_, event) = ran(&fx, &alice, &body(messages)).await;
    let summary = handle(fx.notify_deps(), event).await.expect("notifies");
    assert_eq!(
        summary,
        Summary {
            sent: 1,
            failed: 0,
            skipped: 1
        }
    );
    let captured = fx.chat_state.captured();
    assert_eq!(captured.len(), 1);
    assert_eq!(captured[0].path, "/slack/failures");
    let text = captured[0].body["text"].as_str().expect("text");
    assert!(
        text.contains("failed: item 0: reading `urn:dev:temperature` failed"),
        "{text}"
    );
    assert!(!text.contains("Download:"), "no link for a failure");
}

#[tokio::test]
async fn a_500_then_200_is_sent_after_a_retry_and_429_waits_for_retry_after() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    fx.chat_state.script(
        "/slack/flaky",
        &[Scripted {
            status: 500,
            retry_after: None,
        }],
    );
    fx.chat_state.script(
        "/discord/busy",
        &[Scripted {
            status: 429,
            retry_after: Some(1),
        }],
    );
    let messages = json!([
        message("onSuccess", "slack", Some(format!("{}/slack/flaky", fx.chat_url))),
        message(
            "onSuccess",
            "discord",
            Some(format!("{}/discord/busy", fx.chat_url))
        ),
    ]);
    let (id, event) = ran(&fx, &alice, &body(messages)).await;
    let started = Instant::now();
    let summary = handle(fx.notify_deps(), event).await.expect("notifies");
    assert_eq!(summary.sent, 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    let captured = fx.chat_state.captured();
    assert_eq!(captured.iter().filter(|c| c.path == "/slack/flaky").count(), 2);
    assert_eq!(captured.iter().filter(|c| c.path == "/discord/busy").count(), 2);
    let recorded = notifications(&fx, &alice, &id).await;
    assert!(
        recorded
            .iter()
            .all(|d| d["status"] == "sent" && d["attempts"] == 2),
        "{recorded:?}"
    );
}

#[tokio::test]
async fn a_permanent_failure_is_recorded_and_the_other_messages_still_go_out() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    fx.chat_state.script(
        "/slack/gone",
        &[Scripted {
            status: 404,
            retry_after: None,
        }],
    );
    let messages = json!([
        message("onSuccess", "slack", Some(format!("{}/slack/gone", fx.chat_url))),
        message("onSuccess", "telegram", Some("42".into())),
        message("onSuccess", "email", None),
    ]);
    let (id, event) = ran(&fx, &alice, &body(messages)).await;
    let summary = handle(fx.notify_deps(), event).await.expect("notifies");
    assert_eq!(
        summary,
        Summary {
            sent: 2,
            failed: 1,
            skipped: 0
        }
    );
    let recorded = notifications(&fx, &alice, &id).await;
    assert_eq!(recorded[0]["status"], "failed");
    assert_eq!(recorded[0]["attempts"], 1, "a 404 is not retried");
    assert!(
        recorded[0]["reason"].as_str().is_some_and(|r| r.contains("404")),
        "{recorded:?}"
    );
    assert!(
        !recorded[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("/slack/gone"),
        "no URL in reasons"
    );
    assert_eq!(recorded[1]["status"], "sent");
    assert_eq!(
        recorded[2]["status"], "sent",
        "email to the creator's email claim"
    );
    let raw = fx
        .sent_email(recorded[2]["providerMessageId"].as_str().unwrap_or_default())
        .await
        .expect("sent");
    assert!(raw.contains("someone@example.com"));
}

#[tokio::test]
async fn invoking_notify_twice_for_one_job_sends_each_message_once() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let messages = json!([
        message("onSuccess", "slack", Some(format!("{}/slack/once", fx.chat_url))),
        message("onSuccess", "telegram", Some("7".into())),
    ]);
    let (id, event) = ran(&fx, &alice, &body(messages)).await;
    assert_eq!(
        handle(fx.notify_deps(), event.clone())
            .await
            .expect("notifies")
            .sent,
        2
    );
    let second = handle(fx.notify_deps(), event).await.expect("notifies");
    assert_eq!(
        second,
        Summary {
            sent: 0,
            failed: 0,
            skipped: 2
        }
    );
    assert_eq!(fx.chat_state.captured().len(), 2);
    assert_eq!(notifications(&fx, &alice, &id).await.len(), 2);
}

#[tokio::test]
async fn a_file_over_the_attachment_limit_becomes_a_link() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.notify_config.attachment_max_bytes = 10;
    let alice = someone();
    let messages = json!([message("onSuccess", "email", Some("big@example.com".into()))]);
    let (id, event) = ran(&fx, &alice, &body(messages)).await;
    assert_eq!(handle(fx.notify_deps(), event).await.expect("notifies").sent, 1);
    let recorded = notifications(&fx, &alice, &id).await;
    let raw = fx
        .sent_email(recorded[0]["providerMessageId"].as_str().unwrap_or_default())
        .await
        .expect("sent");
    assert!(
        !raw.contains("Content-Disposition: attachment"),
        "no attachment over the limit"
    );
    assert!(raw.contains("Download: http://127.0.0.1"), "a link instead");
    assert!(raw.contains("valid until"), "the link's expiry is stated");
}

#[tokio::test]
async fn a_target_off_the_allow_list_is_refused_at_create_time_and_never_called() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let messages = json!([
        message(
            "onSuccess",
            "slack",
            Some("https://hooks.evil.example/services/T/B/X".into())
        ),
        message(
            "onSuccess",
            "discord",
            Some("http://10.0.0.1/api/webhooks/1/x".into())
        ),
        message("onSuccess", "email", Some("not an email".into())),
    ]);
    let (status, answer) = fx.call("POST", "/exports", Some(&body(messages)), &alice).await;
    assert_eq!(status, 400, "{answer}");
    let paths: Vec<&str> = answer["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["path"].as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "/notification/messages/0/target",
            "/notification/messages/1/target",
            "/notification/messages/2/target"
        ]
    );
    assert!(fx.chat_state.captured().is_empty());
}

#[tokio::test]
async fn a_redirect_is_refused_not_followed() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    fx.chat_state.script(
        "/slack/moved",
        &[Scripted {
            status: 302,
            retry_after: None,
        }],
    );
    let messages = json!([message(
        "onSuccess",
        "slack",
        Some(format!("{}/slack/moved", fx.chat_url))
    )]);
    let (id, event) = ran(&fx, &alice, &body(messages)).await;
    assert_eq!(handle(fx.notify_deps(), event).await.expect("notifies").failed, 1);
    assert_eq!(fx.chat_state.captured().len(), 1, "nothing followed the redirect");
    let recorded = notifications(&fx, &alice, &id).await;
    assert!(
        recorded[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("redirect")),
        "{recorded:?}"
    );
}

/// Claims message 0 of the export's job as a notify run that started at `at` would, holding it
/// until `claimed_until`, and never records its end (the run died).
async fn claimed_by_a_run(
    fx: &Fixture,
    event: &NotifyEvent,
    at: DateTime<Utc>,
    claimed_until: DateTime<Utc>,
) {
    let jobs = fx.store.jobs(&event.export_id).await.expect("jobs");
    assert!(fx
        .store
        .claim_delivery(
            &JobKey {
                export_id: event.export_id,
                scheduled_at: jobs[0].scheduled_at,
            },
            0,
            at,
            claimed_until,
        )
        .await
        .expect("claims"));
}

#[tokio::test]
async fn a_message_claimed_by_a_run_that_died_is_sent_once_the_claim_lapses() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let slack = |name: &str| {
        json!([message(
            "onSuccess",
            "slack",
            Some(format!("{}/slack/{name}", fx.chat_url))
        )])
    };
    let now = Utc::now();

    let (_, sending) = ran(&fx, &alice, &body(slack("held"))).await;
    claimed_by_a_run(&fx, &sending, now, now + chrono::TimeDelta::minutes(5)).await;
    let held = handle(fx.notify_deps(), sending).await.expect("notifies");
    assert_eq!(
        (held.sent, held.skipped),
        (0, 1),
        "a live claim is left to its run"
    );
    assert!(fx.chat_state.captured().is_empty());

    let (id, died) = ran(&fx, &alice, &body(slack("lapsed"))).await;
    claimed_by_a_run(
        &fx,
        &died,
        now - chrono::TimeDelta::minutes(6),
        now - chrono::TimeDelta::minutes(1),
    )
    .await;
    let retried = handle(fx.notify_deps(), died.clone()).await.expect("notifies");
    assert_eq!(
        (retried.sent, retried.skipped),
        (1, 0),
        "a lapsed claim is taken over"
    );
    assert_eq!(fx.chat_state.captured().len(), 1);
    let recorded = notifications(&fx, &alice, &id).await;
    assert_eq!(recorded[0]["status"], "sent", "{recorded:?}");
    let again = handle(fx.notify_deps(), died).await.expect("notifies");
    assert_eq!(
        (again.sent, again.skipped),
        (0, 1),
        "a sent message is never sent again"
    );
    assert_eq!(fx.chat_state.captured().len(), 1);
}

/// The images inline in a raw MIME message: each `image/png` part's content id and bytes.
fn inline_pngs(raw: &str) -> Vec<(String, Vec<u8>)> {
    use base64::Engine;
    let mut found = Vec::new();
    for part in raw.split("\r\n--").skip(1) {
        let Some((head, body)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let head_lower = head.to_ascii_lowercase();
        if !head_lower.contains("content-type: image/png")
            || !head_lower.contains("content-disposition: inline")
        {
            continue;
        }
        let id = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-id:"))
            .map(|l| l[11..].trim().trim_matches(['<', '>']).to_owned())
            .unwrap_or_default();
        let text: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .expect("base64");
        found.push((id, bytes));
    }
    found
}

#[tokio::test]
async fn the_email_of_a_finished_job_shows_a_chart_of_each_decimated_item_inline() {
    // (A wide item's chart draws a line per target, with a legend.)
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let alice = someone();
    let item = |name: &str, decimation: Option<Value>| {
        let label = name.to_uppercase();
        let label = if name.contains(',') { label.as_str() } else { name };
        let mut params = json!({"target": {"value": name, "label": label}, "channelId": CHANNEL,
            "subtopic": "events.data", "from": READER_START, "to": READER_START + 86_400});
        if let Some(d) = decimation {
            params["decimation"] = d;
        }
        json!({"params": params})
    };
    let body = json!({
        "format": {"extension": "csv", "timezone": "Europe/Rome",
            "columns": [{"id": "time", "label": "t"}, {"id": "value", "label": "v"}]},
        "type": "oneTime",
        "items": [item("hourly", Some(json!({"ds": "1h", "dsf": "avg"}))), item("raw", None),
                  item("quarterly", Some(json!({"ds": "15m", "dsf": "max"}))),
                  item("left,right", Some(json!({"ds": "3h", "dsf": "min"})))],
        "notification": {"messages": [message("onSuccess", "email", Some("charts@example.com".into())),
                                      message("onSuccess", "slack", Some(format!("{}/slack/T000/B000/XXXX", fx.chat_url)))]}
    });
    let (id, event) = ran(&fx, &alice, &body).await;
    assert_eq!(handle(fx.notify_deps(), event).await.expect("notifies").sent, 2);
    let recorded = notifications(&fx, &alice, &id).await;
    let email = recorded
        .iter()
        .find(|n| n["medium"] == "email")
        .and_then(|n| n["providerMessageId"].as_str())
        .expect("the email was sent");
    let raw = fx.sent_email(email).await.expect("moto has the email");
    let images = inline_pngs(&raw);
    assert_eq!(
        images.len(),
        3,
        "one chart per decimated item (the wide one too), none for the raw one"
    );
    for (id, bytes) in &images {
        assert!(raw.contains(&format!("cid:{id}")), "the HTML shows {id}");
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes.as_slice()));
        let reader = decoder.read_info().expect("a PNG image");
        assert_eq!((reader.info().width, reader.info().height), (640, 320));
    }
    // The text part says what the charts show.
    assert!(
        raw.contains("hourly: 24 values from"),
        "a text fallback per chart"
    );
    assert!(
        raw.contains("quarterly: 96 values from"),
        "a text fallback per chart"
    );
    assert!(
        raw.contains("LEFT, RIGHT: from 2025-01-01 "),
        "a wide item's chart is named after its targets: {raw}"
    );
    // The chat message keeps its link, and no image.
    let captured = fx.chat_state.captured();
    let slack = captured
        .iter()
        .find(|r| r.path.starts_with("/slack/"))
        .expect("posted to Slack");
    let text = slack.body["text"].as_str().unwrap_or_default();
    assert!(text.contains("http://127.0.0.1"), "the link: {text}");
    assert!(!slack.body.to_string().contains("image/png"));
}

/// A notify run claims a message and dies mid-send (its invocation timed out); the runtime's
/// retry sends the others while the dead run's claim still holds that one. Once the claim has
/// lapsed and the grace passed, the sweep hands the job to notify again and the message goes out,
/// once; the job is then left alone.
#[tokio::test]
async fn a_message_whose_sender_died_mid_send_is_sent_by_a_later_sweep() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let messages = json!([
        message("onSuccess", "slack", Some(format!("{}/slack/died", fx.chat_url))),
        message("onSuccess", "slack", Some(format!("{}/slack/alive", fx.chat_url))),
    ]);
    let (id, event) = ran(&fx, &alice, &body(messages)).await;
    let key = JobKey::of_job_id(event.export_id, &event.job_id).expect("a job id");
    let now = Utc::now();
    assert!(fx
        .store
        .claim_delivery(&key, 0, now, now + fx.notify_config.claim)
        .await
        .expect("claims"));
    let retry = handle(fx.notify_deps(), event.clone()).await.expect("notifies");
    assert_eq!((retry.sent, retry.skipped), (1, 1), "{retry:?}");

    let later = integration_tests::doubles::At(now + chrono::TimeDelta::hours(1));
    let notify_later = integration_tests::doubles::NotifiesInProcess(notify::Deps {
        clock: &later,
        ..fx.notify_deps()
    });
    let launches = integration_tests::doubles::Launches::default();
    let config = reconcile::ReconcileConfig::default();
    let sweep = reconcile::Deps {
        clock: &later,
        ..fx.reconcile_deps(&launches, &notify_later, &config)
    };
    let repairs = reconcile::handle(sweep).await.expect("sweeps");
    assert_eq!(repairs.jobs_handed_off, 1, "{repairs:?}");
    let posts: Vec<String> = fx.chat_state.captured().into_iter().map(|c| c.path).collect();
    assert_eq!(
        posts.iter().filter(|p| p.ends_with("/died")).count(),
        1,
        "{posts:?}"
    );
    assert_eq!(
        posts.iter().filter(|p| p.ends_with("/alive")).count(),
        1,
        "{posts:?}"
    );
    let sent = notifications(&fx, &alice, &id).await;
    assert!(
        sent.iter().all(|n| n["status"] == "sent") && sent.len() == 2,
        "{sent:?}"
    );
    let again = reconcile::handle(sweep).await.expect("sweeps");
    assert_eq!(again.jobs_handed_off, 0, "the job is left alone now: {again:?}");
}
