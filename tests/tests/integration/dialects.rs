//! The reader dialects end to end (run-export on moto, the local reader speaking each dialect
//! from one switch): the same data gives the same file whatever dialect served it; nanosecond
//! times keep their exact instant; a reader in another time unit fails the job naming the unit
//! instead of writing an empty file; a refused credential fails at once; a narrowing reader
//! cannot be used to check access by the caller's token; equal times are read once each.

use async_trait::async_trait;
use chrono::DateTime;
use serde_json::{json, Value};

use exporter_adapters::access::{checker, AccessMode, ReaderAccess};
use exporter_adapters::reader::HttpReader;
use exporter_adapters::support::Secret;
use exporter_core::domain::series::Point;
use exporter_core::domain::{Dialect, Window};
use exporter_core::ports::{Cause, ReadError, SeriesQuery, SeriesReader, SliceSink};
use integration_tests::reader_server::{start, ReaderConfig, LOCAL_DOMAIN};
use integration_tests::{someone, Fixture, READER_TOKEN};
use run_export::{handle, Outcome};

const CHANNEL: &str = "0115c85d-ef3e-4de9-9732-d0c5c4f2c482";
/// 2026-03-29 in Rome: the spring DST day, 23 hours.
const DAY_FROM: i64 = 1_774_738_800;
const DAY_TO: i64 = 1_774_821_600;

const DIALECTS: [Dialect; 3] = [Dialect::Mainflux, Dialect::Magistrala, Dialect::Connhex];

fn subtopic(dialect: Dialect) -> String {
    format!("events{}data", dialect.subtopic_separator())
}

/// The day's messages of two targets, as recorded (Unix seconds with milliseconds): a
/// temperature every 7 minutes 30.125 seconds and a humidity every 10 minutes, some strings and
/// booleans among them.
fn day(dialect: Dialect) -> Vec<Value> {
    let subtopic = subtopic(dialect);
    let mut messages = Vec::new();
    let mut t_ms = DAY_FROM * 1000 + 125;
    let mut k = 0;
    while t_ms < DAY_TO * 1000 {
        let mut m = json!({"channel": CHANNEL, "subtopic": subtopic, "publisher": "dev-1", "protocol": "mqtt",
            "name": "temp", "unit": "Cel", "time": t_ms as f64 / 1000.0, "value": 18.0 + (k % 37) as f64 * 0.125,
            "updateTime": t_ms as f64 / 1000.0});
        if k % 11 == 0 {
            m["stringValue"] = json!(format!("note {k}"));
        }
        messages.push(m);
        t_ms += 450_125;
        k += 1;
    }
    for t in (DAY_FROM..DAY_TO).step_by(600) {
        messages.push(json!({"channel": CHANNEL, "subtopic": subtopic, "publisher": "dev-2", "protocol": "http",
            "name": "hum", "unit": "%RH", "time": t, "value": 40 + (t / 600) % 20, "boolValue": t % 1200 == 0}));
    }
    messages
}

/// The exports compared: raw with every column, 15-minute averages, and a wide item of hourly
/// maxima, on Rome's spring DST day.
fn bodies(dialect: Dialect) -> Vec<Value> {
    let columns = |ids: &[&str]| {
        ids.iter()
            .map(|c| json!({"id": c, "label": c}))
            .collect::<Vec<_>>()
    };
    let mut params =
        json!({"channelId": CHANNEL, "subtopic": subtopic(dialect), "from": DAY_FROM, "to": DAY_TO});
    if dialect.has_domains() {
        params["domainId"] = json!(LOCAL_DOMAIN);
    }
    let with = |extra: Value| {
        let mut p = params.clone();
        if let (Value::Object(p), Value::Object(extra)) = (&mut p, extra) {
            p.extend(extra);
        }
        p
    };
    let body = |columns: Vec<Value>, item: Value| {
        json!({"format": {"extension": "csv", "timezone": "Europe/Rome", "columns": columns},
            "type": "oneTime", "items": [{"params": item}], "notification": {"messages": []}})
    };
    vec![
        body(
            columns(&[
                "time",
                "value",
                "name",
                "unit",
                "publisher",
                "protocol",
                "stringValue",
                "boolValue",
                "updateTime",
            ]),
            with(json!({"target": {"value": "temp"}})),
        ),
        body(
            columns(&["time", "value", "count"]),
            with(json!({"target": {"value": "temp"}, "decimation": {"ds": "15m", "dsf": "avg"}})),
        ),
        body(
            columns(&["time", "value", "count"]),
            with(
                json!({"target": {"value": "temp,hum", "label": "T,H"}, "decimation": {"ds": "1h", "dsf": "max"}}),
            ),
        ),
    ]
}

#[tokio::test]
async fn the_same_exports_through_every_dialect_give_byte_identical_files() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let who = someone();
    let mut files: Vec<(Dialect, Vec<String>)> = Vec::new();
    for dialect in DIALECTS {
        fx.speak(dialect, Some(day(dialect))).await;
        let mut texts = Vec::new();
        for body in bodies(dialect) {
            texts.push(fx.exported_text(&who, &body).await);
        }
        files.push((dialect, texts));
    }
    let (_, first) = &files[0];
    // The files hold what was recorded: 184 temperatures, 92 quarter hours, 23 hours.
    assert_eq!(first[0].lines().count(), 1 + 184, "{}", &first[0][..300]);
    assert!(
        first[0].contains("2026-03-29T03:00:"),
        "the DST day's summer time is there"
    );
    assert_eq!(first[1].lines().count(), 1 + 92);
    assert_eq!(first[2].lines().count(), 1 + 23);
    for (dialect, texts) in &files[1..] {
        for (k, text) in texts.iter().enumerate() {
            assert_eq!(text, &first[k], "export {k} through {dialect}");
        }
    }
}

/// Collects the instants read.
#[derive(Default)]
struct Times(Vec<i64>, Vec<String>);

#[async_trait]
impl SliceSink for Times {
    async fn accept(&mut self, points: &[Point<'_>]) -> Result<(), Cause> {
        self.0.extend(points.iter().map(|p| p.time_ns));
        self.1.extend(
            points
                .iter()
                .map(|p| format!("{}#{}", p.publisher, p.value.unwrap_or(-1.0))),
        );
        Ok(())
    }
}

fn query(domain: Option<&str>, subtopic: &str, from: i64, to: i64) -> SeriesQuery {
    SeriesQuery {
        domain: domain.map(str::to_owned),
        channel: CHANNEL.into(),
        subtopic: subtopic.into(),
        name: "temp".into(),
        table: None,
        window: Window {
            from: DateTime::from_timestamp(from, 0),
            to: DateTime::from_timestamp(to, 0).unwrap_or_default(),
        },
    }
}

#[tokio::test]
async fn a_nanosecond_time_past_what_a_double_holds_keeps_its_exact_instant() {
    // 2026-01-01T00:00:00.123456789Z: the nearest double is 1767225600123456768.
    let exact: i64 = 1_767_225_600_123_456_789;
    assert_ne!(exact as f64 as i64, exact);
    let messages = vec![
        json!({"channel": CHANNEL, "subtopic": "events/data", "name": "temp", "time": exact, "value": 1.5,
        "update_time": exact + 1}),
    ];
    let (url, _) = start(
        ReaderConfig::new(READER_TOKEN, 0, 60)
            .speaking(Dialect::Magistrala)
            .with_messages(messages),
    )
    .await;
    let reader = HttpReader::new(&url, Secret::new(READER_TOKEN))
        .expect("client")
        .with_dialect(Dialect::Magistrala);
    let mut times = Times::default();
    let read = reader
        .read(
            &query(Some(LOCAL_DOMAIN), "events/data", 1_767_225_600, 1_767_225_601),
            &mut times,
        )
        .await
        .expect("read");
    assert_eq!(read, 1);
    assert_eq!(times.0, vec![exact]);
    // The window's bounds go out as exact integers too: rounded through a double, `from` one
    // nanosecond after the point would take it in, and `to` one after it would leave it out.
    let window = |from: i64, to: i64| SeriesQuery {
        window: Window {
            from: Some(DateTime::from_timestamp_nanos(from)),
            to: DateTime::from_timestamp_nanos(to),
        },
        ..query(Some(LOCAL_DOMAIN), "events/data", 0, 0)
    };
    let mut times = Times::default();
    assert_eq!(
        reader
            .read(&window(exact + 1, exact + 1000), &mut times)
            .await
            .expect("read"),
        0
    );
    assert_eq!(
        reader
            .read(&window(exact - 1000, exact + 1), &mut times)
            .await
            .expect("read"),
        1
    );
}

#[tokio::test]
async fn a_seconds_service_pointed_at_a_nanosecond_reader_fails_naming_the_unit_instead_of_an_empty_file() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let who = someone();
    // A Magistrala reader whose messages were stored with `.` subtopics, reached as a platform
    // engineer would: the reader's URL pointing at their domain, the service in its default
    // (seconds) dialect.
    fx.speak(Dialect::Magistrala, Some(day(Dialect::Mainflux))).await;
    fx.reader = HttpReader::new(
        format!("{}/{LOCAL_DOMAIN}", fx.reader_url),
        Secret::new(READER_TOKEN),
    )
    .expect("client")
    .with_dialect(Dialect::Mainflux);
    fx.access = Box::new(
        ReaderAccess::new(format!("{}/{LOCAL_DOMAIN}", fx.reader_url), Dialect::Mainflux).expect("a client"),
    );
    fx.config.policy.dialect = Dialect::Mainflux;
    let event = fx.create_run(&who, &bodies(Dialect::Mainflux)[0]).await;
    let outcome = handle(fx.run_deps(), event.clone()).await.expect("runs");
    assert_eq!(outcome, Outcome::Failed, "never a silently empty file");
    let (_, status) = fx
        .call("GET", &format!("/exports/{}/status", event.export_id), None, &who)
        .await;
    let error = status["jobs"][0]["error"].as_str().expect("an error").to_owned();
    assert!(error.contains("another time unit"), "{error}");
    assert!(error.contains("READER_DIALECT=mainflux reads seconds"), "{error}");
    assert!(fx.objects().await.is_empty(), "no file is left");
}

#[tokio::test]
async fn a_refused_credential_fails_the_job_at_once_naming_the_credential() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let who = someone();
    let state = fx
        .speak(Dialect::Magistrala, Some(day(Dialect::Magistrala)))
        .await;
    fx.reader = HttpReader::new(&fx.reader_url, Secret::new("expired-token"))
        .expect("client")
        .with_dialect(Dialect::Magistrala);
    let event = fx.create_run(&who, &bodies(Dialect::Magistrala)[1]).await;
    let before = state.requests.load(std::sync::atomic::Ordering::SeqCst);
    let outcome = handle(fx.run_deps(), event.clone()).await.expect("runs");
    assert_eq!(outcome, Outcome::Failed);
    assert_eq!(
        state.requests.load(std::sync::atomic::Ordering::SeqCst) - before,
        1,
        "no retry can help a refused credential"
    );
    let (_, status) = fx
        .call("GET", &format!("/exports/{}/status", event.export_id), None, &who)
        .await;
    let error = status["jobs"][0]["error"].as_str().expect("an error");
    assert!(error.contains("refused the service's credential"), "{error}");
    assert!(error.contains("401"), "{error}");
}

#[tokio::test]
async fn a_domain_is_required_where_the_dialect_has_them_and_refused_where_it_does_not() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let who = someone();
    fx.speak(Dialect::Magistrala, None).await;
    let mut body = bodies(Dialect::Magistrala).remove(1);
    body["items"][0]["params"]
        .as_object_mut()
        .map(|p| p.remove("domainId"));
    let (status, problems) = fx.call("POST", "/exports", Some(&body), &who).await;
    assert_eq!(status, 400);
    assert_eq!(problems["details"][0]["path"], "/items/0/params/domainId");
    assert!(problems["details"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("is required")));
    // Stored and shown with the domain.
    let (status, export) = fx
        .call("POST", "/exports", Some(&bodies(Dialect::Magistrala)[1]), &who)
        .await;
    assert_eq!(status, 201, "{export}");
    assert_eq!(export["items"][0]["params"]["domainId"], LOCAL_DOMAIN);
    let (_, again) = fx
        .call(
            "GET",
            &format!("/exports/{}", export["id"].as_str().unwrap_or_default()),
            None,
            &who,
        )
        .await;
    assert_eq!(again["items"][0]["params"]["domainId"], LOCAL_DOMAIN, "{again}");
    // Another domain's channel is not found, and said so.
    let mut elsewhere = bodies(Dialect::Magistrala).remove(1);
    elsewhere["items"][0]["params"]["domainId"] = json!("11111111-2222-4333-8444-555555555555");
    let (status, denied) = fx.call("POST", "/exports", Some(&elsewhere), &who).await;
    assert_eq!(status, 403, "{denied}");
    fx.speak(Dialect::Mainflux, None).await;
    let (status, problems) = fx
        .call("POST", "/exports", Some(&bodies(Dialect::Magistrala)[1]), &who)
        .await;
    assert_eq!(status, 400);
    let text = problems.to_string();
    assert!(
        text.contains("/items/0/params/domainId") && text.contains("has no domains"),
        "{text}"
    );
    // A `/` subtopic where the reader separates with `.`, with the form it wants.
    let mut slashed = bodies(Dialect::Mainflux).remove(1);
    slashed["items"][0]["params"]["subtopic"] = json!("events/data");
    let (status, problems) = fx.call("POST", "/exports", Some(&slashed), &who).await;
    assert_eq!(status, 400);
    assert_eq!(problems["details"][0]["path"], "/items/0/params/subtopic");
    assert!(problems.to_string().contains("write `events.data`"), "{problems}");
}

#[tokio::test]
async fn reader_access_refuses_a_dialect_that_narrows_pages_by_device() {
    let refused = checker(
        AccessMode::Reader,
        "http://127.0.0.1:1",
        None,
        Dialect::Magistrala,
    )
    .err()
    .expect("refused at cold start");
    let text = refused.to_string();
    assert!(text.contains("CHANNEL_ACCESS=policy"), "{text}");
    assert!(checker(AccessMode::Reader, "http://127.0.0.1:1", None, Dialect::Mainflux).is_ok());
    let without_domain = AccessMode::Policy {
        url_template: "http://127.0.0.1:1/access?subject={subject}&channel={channel}".into(),
    };
    let refused = checker(without_domain, "", Some(Secret::new("t")), Dialect::Magistrala)
        .err()
        .expect("a policy that cannot tell domains apart is refused");
    assert!(refused.to_string().contains("{domain}"), "{refused}");
    // Why: the platform answers a caller who may read one device of the channel with `200`
    // and a narrowed page, while the service's credential sees every device.
    let mut messages = day(Dialect::Magistrala);
    messages.retain(|m| m["name"] == "temp");
    for m in messages.iter_mut().skip(1).step_by(2) {
        m["publisher"] = json!("dev-3");
    }
    let config = ReaderConfig::new(READER_TOKEN, 0, 60)
        .speaking(Dialect::Magistrala)
        .with_messages(messages);
    let (url, state) = start(config).await;
    state.grant("narrow-user", &["*"]);
    state.grant_devices("narrow-user", &["dev-3"]);
    let window = query(Some(LOCAL_DOMAIN), "events/data", DAY_FROM, DAY_TO);
    let read_as = |token: &str| {
        HttpReader::new(&url, Secret::new(token))
            .expect("client")
            .with_dialect(Dialect::Magistrala)
    };
    let (mut all, mut narrowed) = (Times::default(), Times::default());
    let everything = read_as(READER_TOKEN).read(&window, &mut all).await.expect("read");
    let some = read_as("narrow-user")
        .read(&window, &mut narrowed)
        .await
        .expect("read");
    assert_eq!(everything, 184);
    assert_eq!(some, 92, "the user's own page is narrowed, with 200");
}

#[tokio::test]
async fn messages_of_equal_whole_second_times_come_back_once_each_across_pages() {
    // 3,000 messages in runs of 10 a second over 300 seconds, and one second holding 3,000
    // more from 6 devices (more than two pages within one instant): the reader serves equal
    // times in another order on every request.
    let mut messages = Vec::new();
    let base = 1_767_225_600;
    for k in 0..3000 {
        messages.push(
            json!({"channel": CHANNEL, "subtopic": "events.data", "name": "temp",
            "publisher": format!("dev-{}", k % 10), "time": base + k / 10, "value": k}),
        );
    }
    for k in 0..3000 {
        messages.push(
            json!({"channel": CHANNEL, "subtopic": "events.data", "name": "temp",
            "publisher": format!("burst-{}", k % 6), "time": base + 400, "value": 10_000 + k}),
        );
    }
    let mut config = ReaderConfig::new(READER_TOKEN, 0, 60).with_messages(messages);
    config.shuffle_ties = true;
    let (url, state) = start(config).await;
    let reader = HttpReader::new(&url, Secret::new(READER_TOKEN))
        .expect("client")
        .with_page_limit(1000);
    let mut got = Times::default();
    let read = reader
        .read(&query(None, "events.data", base, base + 600), &mut got)
        .await
        .expect("read");
    assert_eq!(read, 6000);
    let mut seen = got.1.clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6000, "every message once");
    assert!(got.0.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    assert!(
        state.by_publisher.load(std::sync::atomic::Ordering::SeqCst) >= 6,
        "the dense second was read device by device"
    );
    // Read again (the ties served in other orders): the same points, in the same order.
    let mut again = Times::default();
    reader
        .read(&query(None, "events.data", base, base + 600), &mut again)
        .await
        .expect("read");
    assert_eq!(again.1, got.1);
    // One device with more than a page at one instant cannot be paged exactly: said, not guessed.
    let crowded: Vec<Value> = (0..1200)
        .map(|k| {
            json!({"channel": CHANNEL, "subtopic": "events.data", "name": "temp", "publisher": "burst",
            "time": base, "value": k})
        })
        .collect();
    let mut config = ReaderConfig::new(READER_TOKEN, 0, 60).with_messages(crowded);
    config.shuffle_ties = true;
    let (url, _) = start(config).await;
    let error = HttpReader::new(&url, Secret::new(READER_TOKEN))
        .expect("client")
        .with_page_limit(1000)
        .read(&query(None, "events.data", base, base + 1), &mut Times::default())
        .await
        .expect_err("refused");
    assert!(
        error
            .to_string()
            .contains("more than 1000 messages of publisher burst share the time 2026-01-01T00:00:00.000Z"),
        "{error}"
    );
}

#[tokio::test]
async fn connhex_items_choose_their_message_table_and_read_pages_of_1500() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let who = someone();
    let params: Vec<Value> = (0..2000)
        .map(|k| {
            json!({"channel": CHANNEL, "subtopic": "events.params", "name": "mode", "publisher": "dev-1",
            "time": DAY_FROM + k * 30, "value": k % 4})
        })
        .collect();
    let config = ReaderConfig::new(READER_TOKEN, 0, 60).with_table("params", params);
    let (url, state) = start(config).await;
    state.grant(integration_tests::USER_TOKEN, &["*"]);
    fx.reader = HttpReader::new(&url, Secret::new(READER_TOKEN)).expect("client");
    let body = json!({"format": {"extension": "csv", "columns": [{"id": "time", "label": "t"}, {"id": "value", "label": "mode"}]},
        "type": "oneTime", "notification": {"messages": []},
        "items": [{"params": {"target": {"value": "mode"}, "channelId": CHANNEL, "subtopic": "events.params",
            "format": "params", "from": DAY_FROM, "to": DAY_FROM + 60_000}}]});
    let text = fx.exported_text(&who, &body).await;
    assert_eq!(text.lines().count(), 1 + 2000);
    let requests = state.requests.load(std::sync::atomic::Ordering::SeqCst);
    assert!(requests <= 3, "pages of 1500: {requests} requests");
    let mut wrong = body.clone();
    wrong["items"][0]["params"]["format"] = json!("logs");
    let (status, problems) = fx.call("POST", "/exports", Some(&wrong), &who).await;
    assert_eq!(status, 400);
    assert!(
        problems.to_string().contains("messages, params, infos, metrics"),
        "{problems}"
    );
}

#[tokio::test]
async fn a_reader_answer_outside_the_window_asked_fails_the_read() {
    // A reader that ignores `from`/`to` answers a message of 2001 for a day of 2026.
    let messages = vec![
        json!({"channel": CHANNEL, "subtopic": "events.data", "name": "temp", "time": 1_000_000_000, "value": 1}),
    ];
    let mut config = ReaderConfig::new(READER_TOKEN, 0, 60).with_messages(messages);
    config.ignore_window = true;
    let (url, _) = start(config).await;
    let reader = HttpReader::new(&url, Secret::new(READER_TOKEN)).expect("client");
    let error = reader
        .read(
            &query(None, "events.data", 1_767_225_600, 1_767_312_000),
            &mut Times::default(),
        )
        .await
        .expect_err("fails");
    assert!(matches!(error, ReadError::Permanent(_)), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("2001-09-09T01:46:40"), "{text}");
    assert!(text.contains("ignored the window"), "{text}");
    // A device with a bad clock (a message of 2250) says nothing of the unit: an empty window
    // stays empty.
    let skewed = vec![
        json!({"channel": CHANNEL, "subtopic": "events.data", "name": "temp", "time": 8_835_984_000_i64, "value": 1}),
    ];
    let (skewed_url, _) = start(ReaderConfig::new(READER_TOKEN, 0, 60).with_messages(skewed)).await;
    let empty = HttpReader::new(&skewed_url, Secret::new(READER_TOKEN))
        .expect("client")
        .read(
            &query(None, "events.data", 1_767_225_600, 1_767_312_000),
            &mut Times::default(),
        )
        .await
        .expect("an empty window");
    assert_eq!(empty, 0);
    // And an item without the domain its dialect needs is said so.
    let error = HttpReader::new(&url, Secret::new(READER_TOKEN))
        .expect("client")
        .with_dialect(Dialect::Magistrala)
        .read(&query(None, "events/data", 0, 1), &mut Times::default())
        .await
        .expect_err("no domain");
    assert!(error.to_string().contains("params.domainId"), "{error}");
}

#[tokio::test]
async fn an_empty_window_is_an_empty_file_that_says_0_points_read() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let who = someone();
    fx.speak(Dialect::Magistrala, Some(day(Dialect::Magistrala)))
        .await;
    let mut body = bodies(Dialect::Magistrala).remove(0);
    // The day before: nothing recorded.
    body["items"][0]["params"]["from"] = json!(DAY_FROM - 86_400);
    body["items"][0]["params"]["to"] = json!(DAY_FROM - 3600);
    let text = fx.exported_text(&who, &body).await;
    assert_eq!(text.lines().count(), 1, "the header only: {text}");
    let export = fx.call("GET", "/exports", None, &who).await.1["results"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (_, status) = fx
        .call("GET", &format!("/exports/{export}/status"), None, &who)
        .await;
    assert_eq!(status["jobs"][0]["status"], "done");
    let warnings = status["jobs"][0]["warnings"].to_string();
    assert!(warnings.contains("item 0: 0 points read"), "{warnings}");
}

/// A backend that hands its points on and never says where reading may stop.
struct NoBoundaries<'a>(&'a dyn SeriesReader);

struct Forward<'s>(&'s mut (dyn SliceSink + Send));

#[async_trait]
impl SliceSink for Forward<'_> {
    async fn accept(&mut self, points: &[Point<'_>]) -> Result<(), exporter_core::ports::Cause> {
        self.0.accept(points).await
    }
}

#[async_trait]
impl SeriesReader for NoBoundaries<'_> {
    async fn read(&self, query: &SeriesQuery, sink: &mut (dyn SliceSink + Send)) -> Result<u64, ReadError> {
        self.0.read(query, &mut Forward(sink)).await
    }
}

#[tokio::test]
async fn every_reader_backend_keeps_the_seams_contract_and_one_without_boundaries_fails_it() {
    for dialect in DIALECTS {
        let messages = day(dialect);
        let mut expected: Vec<i64> = messages
            .iter()
            .filter(|m| m["name"] == "temp")
            .map(|m| (m["time"].as_f64().expect("a time") * 1000.0).round() as i64 * 1_000_000)
            .collect();
        expected.sort_unstable();
        let (url, _) = start(
            ReaderConfig::new(READER_TOKEN, 0, 60)
                .speaking(dialect)
                .with_messages(messages),
        )
        .await;
        // Small pages: the day comes in many slices.
        let reader = HttpReader::new(&url, Secret::new(READER_TOKEN))
            .expect("client")
            .with_dialect(dialect)
            .with_page_limit(20);
        let domain = dialect.has_domains().then_some(LOCAL_DOMAIN);
        let day = query(domain, &subtopic(dialect), DAY_FROM, DAY_TO);
        integration_tests::conformance::conforms(&reader, &day, &expected)
            .await
            .unwrap_or_else(|broken| panic!("{dialect}: {broken}"));
        let broken = integration_tests::conformance::conforms(&NoBoundaries(&reader), &day, &expected).await;
        assert!(
            broken.as_ref().is_err_and(|e| e.contains("no boundary")),
            "{dialect}: a backend without boundaries passed: {broken:?}"
        );
    }
}
