//! Test harness for the integration tests: the emulated AWS endpoints (moto, `cargo lambda
//! watch`), fresh resources per test, and API Gateway v2 events with JWT claims.
//!
//! A test that needs an endpoint gets `None` and says so loudly when it is not running; under
//! `CI=true` it fails instead, so a missing emulator never passes for a green run.

pub mod chat_server;
pub mod conformance;
pub mod doubles;
pub mod history;
pub mod identity_server;
pub mod reader_server;

use std::collections::HashMap;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use lambda_http::{Body, Request};
use serde_json::{json, Value};
use uuid::Uuid;

use exporter_adapters::access::{checker, AccessMode, ReaderAccess};
use exporter_adapters::chat::HttpChat;
use exporter_adapters::dynamodb::DynamoStore;
use exporter_adapters::lambda::LambdaLauncher;
use exporter_adapters::reader::HttpReader;
use exporter_adapters::s3::S3Files;
use exporter_adapters::scheduler::{EventBridgeSchedules, ScheduleSettings};
use exporter_adapters::ses::SesMailer;
use exporter_adapters::support::{Retry, Secret};
use exporter_core::domain::link::LinkSigner;
use exporter_core::domain::request::{Medium, Recipients, WebhookHosts};
use exporter_core::domain::Dialect;
use exporter_core::ports::SystemClock;
use exports_api::{ApiConfig, Deps};

/// The endpoint in `var`, or `None` after saying loudly that the test is not run.
///
/// # Panics
/// Under `CI=true` when the variable is unset: the emulator must be there.
pub fn endpoint(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let message = format!("{what} is not running ({var} is unset); start it with `make test`");
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
            eprintln!("NOT RUN: {message}");
            None
        }
    }
}

/// SDK configuration pointing every service at `endpoint`, with dummy credentials.
pub async fn aws_at(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await
}

/// The bot token the fixture's Telegram client uses.
pub const TELEGRAM_TOKEN: &str = "123456:local-bot-token";

/// The local reader's token and the instant of its first point (2025-01-01T00:00:00Z).
pub const READER_TOKEN: &str = "reader-token";
pub const READER_START: i64 = 1_735_689_600;
/// The keys that sign the fixture's download links.
pub const LINK_KEYS: &str = "test:test-link-signing-key-0123456789abcdef";

/// The value the local reader serves for its `k`th point of a numeric series.
pub fn expected_value(k: i64) -> f64 {
    20.0 + (k % 1000) as f64 / 8.0
}

/// The mean of each quarter of an hour starting at `starts` (Unix seconds), of the local
/// reader's points a minute apart: what a 15-minute `avg` decimation writes.
pub fn quarter_means(starts: &[i64]) -> Vec<f64> {
    starts
        .iter()
        .map(|t| {
            let k0 = (t - READER_START) / 60;
            (0..15).map(|j| expected_value(k0 + j)).sum::<f64>() / 15.0
        })
        .collect()
}

/// An instant (Unix seconds) as a file of an export in Rome writes it: `2025-10-26T02:30:00+01:00`.
pub fn rome_time(t: i64) -> String {
    use chrono::TimeZone;
    let utc = chrono::DateTime::<chrono::Utc>::from_timestamp(t, 0).expect("in range");
    chrono_tz::Europe::Rome
        .from_utc_datetime(&utc.naive_utc())
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// A value as a CSV writes it (shortest round trip); empty for none.
pub fn number_text(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The ARN run-export has in the local stack.
pub const RUN_EXPORT_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:run-export";
pub const SCHEDULER_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/exports-scheduler";

/// Every action of spec section 2.
pub const ALL_ACTIONS: &str =
    "exporter:exports:create exporter:exports:list exporter:exports:get exporter:exports:download exporter:exports:delete exporter:exports:update exporter:exports:run";

/// The bearer token of callers made by [`someone`]: the fixture's local reader lets it read
/// every channel.
pub const USER_TOKEN: &str = "user-token";

/// A caller: a fresh `sub` with every permission, presenting [`USER_TOKEN`].
pub fn someone() -> Vec<(String, String)> {
    presenting(USER_TOKEN)
}

/// A caller like [`someone`] who presents `token` (an `authorization` entry is sent as the
/// request's `Authorization` header, not as a claim).
pub fn presenting(token: &str) -> Vec<(String, String)> {
    vec![
        ("sub".into(), format!("user-{}", Uuid::new_v4())),
        ("email".into(), "someone@example.com".into()),
        ("scope".into(), ALL_ACTIONS.into()),
        ("authorization".into(), format!("Bearer {token}")),
    ]
}

/// An API Gateway HTTP API (v2) event as API Gateway sends it after the JWT authorizer.
pub fn http_event(
    method: &str,
    path_and_query: &str,
    body: Option<&str>,
    claims: &[(String, String)],
) -> Value {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let mut parameters: HashMap<String, String> = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        parameters.insert(k.to_owned(), v.to_owned());
    }
    let mut headers = json!({"content-type": "application/json", "host": "api.example.com"});
    if let Some((_, credential)) = claims.iter().find(|(k, _)| k == "authorization") {
        headers["authorization"] = json!(credential);
    }
    let claims: HashMap<&str, &str> = claims
        .iter()
        .filter(|(k, _)| k != "authorization")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "queryStringParameters": if parameters.is_empty() { Value::Null } else { json!(parameters) },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "tests"},
            "requestId": Uuid::new_v4().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": "27/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1_795_600_000_000_i64,
            "authorizer": {"jwt": {"claims": claims, "scopes": null}},
        },
        "body": body,
        "isBase64Encoded": false,
    })
}

/// The event as the handler receives it.
///
/// # Panics
/// When the event is not a valid API Gateway v2 event (a bug in the test).
pub fn request(event: &Value) -> Request {
    lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event")
}

/// A response's status and JSON body (`Null` when empty).
pub fn status_and_json(response: lambda_http::Response<Body>) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap_or(Value::String(text.clone())),
        Body::Binary(bytes) => serde_json::from_slice(bytes).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, body)
}

/// Fresh resources on moto for one test, and the API's real adapters on them.
pub struct Fixture {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub files: S3Files,
    pub reader: HttpReader,
    pub reader_state: std::sync::Arc<reader_server::ReaderConfig>,
    /// Channel access as the API checks it by default: the local reader, asked as the caller.
    pub access: Box<dyn exporter_core::ports::ChannelAccess>,
    /// The base URL of the fixture's local reader (which also serves a policy endpoint).
    pub reader_url: String,
    pub notifier: LambdaLauncher,
    pub run_config: run_export::RunConfig,
    pub moto: String,
    pub sender: String,
    pub mailer: SesMailer,
    pub chat_url: String,
    pub chat_state: std::sync::Arc<chat_server::ChatState>,
    pub chat: HttpChat,
    pub notify_config: notify::NotifyConfig,
    pub scheduler: aws_sdk_scheduler::Client,
    pub table: String,
    pub group: String,
    pub store: DynamoStore,
    pub schedules: EventBridgeSchedules,
    pub launcher: LambdaLauncher,
    pub clock: SystemClock,
    pub config: ApiConfig,
}

impl Fixture {
    /// A new table and schedule group on moto; the launcher invokes run-export on `cargo lambda
    /// watch`. `None` (said loudly) when moto or watch is not running.
    ///
    /// # Panics
    /// When the emulator refuses to create the resources.
    pub async fn new() -> Option<Self> {
        let moto = endpoint("MOTO_ENDPOINT", "moto")?;
        let watch = endpoint("WATCH_ENDPOINT", "cargo lambda watch")?;
        let aws = aws_at(&moto).await;
        let dynamo = aws_sdk_dynamodb::Client::new(&aws);
        let scheduler = aws_sdk_scheduler::Client::new(&aws);
        let suffix = Uuid::new_v4().simple().to_string();
        let table = format!("exports-{suffix}");
        let group = format!("group-{}", &suffix[..16]);
        DynamoStore::create_table(&dynamo, &table)
            .await
            .expect("moto creates the table");
        EventBridgeSchedules::create_group(&scheduler, &group)
            .await
            .expect("moto creates the group");
        let s3 = S3Files::client(&aws, true);
        let bucket = format!("exports-{}", &suffix[..20]);
        S3Files::create_bucket(&s3, &bucket)
            .await
            .expect("moto creates the bucket");
        let (reader_url, reader_state) =
            reader_server::start(reader_server::ReaderConfig::new(READER_TOKEN, READER_START, 60)).await;
        reader_state.grant(USER_TOKEN, &["*"]);
        let quick = Retry {
            attempts: 3,
            base: std::time::Duration::from_millis(1),
            cap: std::time::Duration::from_millis(5),
        };
        let reader = HttpReader::new(&reader_url, Secret::new(READER_TOKEN))
            .expect("a reader client")
            .with_retry(quick);
        let lambda = aws_sdk_lambda::Client::new(&aws_at(&watch).await);
        let ses = aws_sdk_sesv2::Client::new(&aws);
        let sender = format!("exports-{}@example.com", &suffix[..12]);
        ses.create_email_identity()
            .email_identity(&sender)
            .send()
            .await
            .expect("moto creates the identity");
        let (chat_url, chat_state) = chat_server::start().await;
        let local_hosts = WebhookHosts::default()
            .with(Medium::Slack, vec!["127.0.0.1".into()])
            .with(Medium::Discord, vec!["127.0.0.1".into()]);
        let chat = HttpChat::new(&chat_url, Some(Secret::new(TELEGRAM_TOKEN)), local_hosts.clone())
            .expect("a chat client");
        let mut config = ApiConfig::default();
        config.policy.webhook_hosts = local_hosts;
        // The operator's allow-lists of this fixture: one domain, and the chats the tests use.
        config.recipients = Recipients {
            emails: vec!["example.com".into()],
            telegram_chats: vec!["-1001234567890".into(), "42".into(), "7".into()],
        };
        let signer = LinkSigner::parse(LINK_KEYS).expect("link keys");
        config.links = Some(std::sync::Arc::new(exports_api::Links::fixed(signer.clone())));
        let notify_config = notify::NotifyConfig {
            links: Some(notify::Links {
                base_url: format!("{watch}/lambda-url/exports-api"),
                signer,
            }),
            retry: Retry {
                attempts: 3,
                base: std::time::Duration::from_millis(1),
                cap: std::time::Duration::from_secs(3),
            },
            recipients: config.recipients.clone(),
            ..notify::NotifyConfig::default()
        };
        Some(Self {
            moto: moto.clone(),
            mailer: SesMailer::new(ses, &sender),
            sender,
            chat_url,
            chat_state,
            chat,
            notify_config,
            // S3's smallest part, so that tests meet files of several parts early.
            files: S3Files::new(s3.clone(), &bucket).with_part_size(5 * 1024 * 1024),
            s3,
            bucket,
            access: Box::new(ReaderAccess::new(&reader_url, Dialect::default()).expect("an access client")),
            reader_url: reader_url.clone(),
            reader,
            reader_state,
            notifier: LambdaLauncher::new(lambda.clone(), "notify"),
            // Items one after the other by default: most tests watch one invocation; the
            // parallel items are tested on their own (tests/tests/integration/items.rs).
            run_config: run_export::RunConfig {
                fan_out: 1,
                ..run_export::RunConfig::default()
            },
            store: DynamoStore::new(dynamo.clone(), &table),
            schedules: EventBridgeSchedules::new(scheduler.clone(), Self::settings(&group)),
            launcher: LambdaLauncher::new(lambda, "run-export"),
            dynamo,
            scheduler,
            table,
            group,
            clock: SystemClock,
            config,
        })
    }

    /// The schedule settings of the local stack, for `group`.
    pub fn settings(group: &str) -> ScheduleSettings {
        ScheduleSettings {
            group: group.to_owned(),
            target_arn: RUN_EXPORT_ARN.into(),
            role_arn: SCHEDULER_ROLE_ARN.into(),
            dead_letter_arn: Some("arn:aws:sqs:us-east-1:123456789012:exports-dlq".into()),
            max_retries: 10,
            max_event_age_seconds: 86_400,
            settle_seconds: 60,
        }
    }

    pub fn deps(&self) -> Deps<'_> {
        Deps {
            exports: &self.store,
            lifecycle: &self.store,
            history: &self.store,
            ends: &self.store,
            reader: &self.reader,
            access: self.access.as_ref(),
            schedules: &self.schedules,
            launcher: &self.launcher,
            files: &self.files,
            clock: &self.clock,
            config: &self.config,
        }
    }

    /// Points the fixture's reader at a local reader that answers `status` to every request,
    /// retried `attempts` times at most.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn break_reader(&mut self, status: u16, attempts: u32) {
        let mut broken = reader_server::ReaderConfig::new(READER_TOKEN, READER_START, 60);
        broken.always_fail = Some(status);
        let (url, _) = reader_server::start(broken).await;
        let quick = Retry {
            attempts,
            base: std::time::Duration::from_millis(1),
            cap: std::time::Duration::from_millis(2),
        };
        self.reader = HttpReader::new(url, Secret::new(READER_TOKEN))
            .expect("a reader client")
            .with_retry(quick);
    }

    /// run-export's dependencies on this fixture's resources.
    pub fn run_deps(&self) -> run_export::Deps<'_> {
        run_export::Deps {
            exports: &self.store,
            runs: &self.store,
            ledger: &self.store,
            ends: &self.store,
            items: &self.store,
            spread: &self.store,
            history: &self.store,
            budgets: &self.store,
            schedules: &self.schedules,
            launcher: &self.launcher,
            reader: &self.reader,
            files: &self.files,
            pieces: &self.files,
            uploads: &self.files,
            notifier: &self.notifier,
            access: None,
            clock: &self.clock,
            config: &self.run_config,
            stop_at: None,
            deadline: None,
        }
    }

    /// Records `job` claimed (for 15 minutes) and started at `at`, as an attempt does.
    ///
    /// # Panics
    /// When the store fails or another attempt holds the job.
    pub async fn start_job_at(
        &self,
        job: &exporter_core::domain::job::JobKey,
        at: chrono::DateTime<chrono::Utc>,
    ) {
        use exporter_core::ports::JobLedger;
        let claimed = self
            .store
            .open_job(job, at, at + chrono::TimeDelta::minutes(15))
            .await
            .expect("claims");
        assert!(claimed, "the job is free");
        self.store.start_job(job, at).await.expect("starts");
    }

    /// Records the end of `job` (started) at `at`: `status`, with `error` as its reason.
    ///
    /// # Panics
    /// When the store fails or the job had ended.
    pub async fn end_job_at(
        &self,
        job: &exporter_core::domain::job::JobKey,
        at: chrono::DateTime<chrono::Utc>,
        status: exporter_core::domain::job::JobStatus,
        error: Option<&str>,
    ) {
        use exporter_core::domain::job::{JobDetail, JobEnd};
        use exporter_core::ports::JobEnds;
        let end = JobEnd {
            status,
            detail: JobDetail {
                error: error.map(str::to_owned),
                ..JobDetail::default()
            },
            finished_at: at,
            expires_at: None,
        };
        let ended = self.store.finish_job(job, &end).await.expect("records");
        assert!(ended, "the job was under way");
    }

    /// Creates an export through the API as `who`; returns the event of its first run (a
    /// one-time export's).
    ///
    /// # Panics
    /// When the API does not answer `201`.
    pub async fn create_run(
        &self,
        who: &[(String, String)],
        body: &Value,
    ) -> exporter_core::domain::RunEvent {
        let (status, export) = self.call("POST", "/exports", Some(body), who).await;
        assert_eq!(status, 201, "{export}");
        exporter_core::domain::RunEvent {
            export_id: export["id"].as_str().and_then(|i| i.parse().ok()).expect("an id"),
            scheduled_at: export["createdAt"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .expect("createdAt"),
            occurrence: None,
            leg: None,
            item: None,
            extra: None,
        }
    }

    /// Speaks `dialect` from here on: a new local reader speaking it (generated data, or
    /// `messages` when given), the fixture's reader client, channel check and request rules
    /// set to it; returns the reader's state.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn speak(
        &mut self,
        dialect: Dialect,
        messages: Option<Vec<Value>>,
    ) -> std::sync::Arc<reader_server::ReaderConfig> {
        let mut config = reader_server::ReaderConfig::new(READER_TOKEN, READER_START, 60).speaking(dialect);
        if let Some(messages) = messages {
            config = config.with_messages(messages);
        }
        let (url, state) = reader_server::start(config).await;
        state.grant(USER_TOKEN, &["*"]);
        self.reader = HttpReader::new(&url, Secret::new(READER_TOKEN))
            .expect("a reader client")
            .with_dialect(dialect);
        // As a deployment must: a reader that narrows by device cannot answer for a channel,
        // so its channels are checked with the platform's policy endpoint.
        let mode = if dialect.narrows_by_device() {
            state.allow("*", &["*"]);
            AccessMode::Policy {
                url_template: format!(
                    "{url}/access?subject={{subject}}&domain={{domain}}&channel={{channel}}&action={{action}}"
                ),
            }
        } else {
            AccessMode::Reader
        };
        self.access = checker(mode, &url, Some(Secret::new(READER_TOKEN)), dialect).expect("a checker");
        self.reader_url = url;
        self.config.policy.dialect = dialect;
        state
    }

    /// Points the fixture's reader at a new local reader serving exactly `messages`.
    pub async fn serve_messages(&mut self, messages: Vec<Value>) {
        self.serve_messages_slowly(messages, std::time::Duration::ZERO, 1000)
            .await;
    }

    /// Like [`Fixture::serve_messages`], each answer taking `latency`, read in pages of
    /// `page_limit`.
    pub async fn serve_messages_slowly(
        &mut self,
        messages: Vec<Value>,
        latency: std::time::Duration,
        page_limit: u32,
    ) {
        let mut config =
            reader_server::ReaderConfig::new(READER_TOKEN, READER_START, 60).with_messages(messages);
        config.latency = latency;
        let (url, _) = reader_server::start(config).await;
        self.reader = HttpReader::new(url, Secret::new(READER_TOKEN))
            .expect("a reader client")
            .with_page_limit(page_limit);
    }

    /// Creates the export as `who`, runs its job here to its end and downloads its file as text.
    ///
    /// # Panics
    /// When the job does not end done or its file is not UTF-8.
    pub async fn exported_text(&self, who: &[(String, String)], body: &Value) -> String {
        let event = self.create_run(who, body).await;
        let outcome = run_export::handle(self.run_deps(), event.clone())
            .await
            .expect("runs");
        assert_eq!(outcome, run_export::Outcome::Done);
        String::from_utf8(self.download(who, &event.export_id.to_string()).await).expect("UTF-8")
    }

    /// Points the fixture's reader at a new local reader that takes `latency` an answer and
    /// serves a point every `step_seconds`, read in pages of `page_limit`; returns its state.
    pub async fn slow_reader(
        &mut self,
        latency: std::time::Duration,
        step_seconds: i64,
        page_limit: u32,
    ) -> std::sync::Arc<reader_server::ReaderConfig> {
        let mut slow = reader_server::ReaderConfig::new(READER_TOKEN, READER_START, step_seconds);
        slow.latency = latency;
        let (url, state) = reader_server::start(slow).await;
        self.reader = HttpReader::new(url, Secret::new(READER_TOKEN))
            .expect("a reader client")
            .with_page_limit(page_limit)
            .with_retry(Retry::default());
        state
    }

    /// The reconciler's dependencies on this fixture's resources.
    pub fn reconcile_deps<'a>(
        &'a self,
        launcher: &'a dyn exporter_core::ports::RunLauncher,
        notifier: &'a dyn exporter_core::ports::JobNotifier,
        config: &'a reconcile::ReconcileConfig,
    ) -> reconcile::Deps<'a> {
        self.reconcile_deps_on(&self.store, &self.schedules, launcher, notifier, config)
    }

    /// The reconciler's dependencies on `store` (a table of its own) and `schedules`, with this
    /// fixture's files and clock.
    pub fn reconcile_deps_on<'a>(
        &'a self,
        store: &'a DynamoStore,
        schedules: &'a dyn exporter_core::ports::RunSchedules,
        launcher: &'a dyn exporter_core::ports::RunLauncher,
        notifier: &'a dyn exporter_core::ports::JobNotifier,
        config: &'a reconcile::ReconcileConfig,
    ) -> reconcile::Deps<'a> {
        reconcile::Deps {
            files: &self.files,
            uploads: &self.files,
            sweep: store,
            exports: store,
            history: store,
            ends: store,
            spread: store,
            lifecycle: store,
            runs: store,
            schedules,
            launcher,
            notifier,
            clock: &self.clock,
            config,
        }
    }

    /// notify's dependencies on this fixture's resources.
    pub fn notify_deps(&self) -> notify::Deps<'_> {
        notify::Deps {
            exports: &self.store,
            history: &self.store,
            budgets: &self.store,
            deliveries: &self.store,
            files: &self.files,
            mailer: &self.mailer,
            chat: &self.chat,
            clock: &self.clock,
            config: &self.notify_config,
        }
    }

    /// The raw MIME of the email moto recorded with this message id.
    ///
    /// # Panics
    /// When moto does not answer.
    pub async fn sent_email(&self, message_id: &str) -> Option<String> {
        let url = format!("{}/moto-api/data.json", self.moto);
        let data: Value = reqwest::get(url)
            .await
            .expect("moto answers")
            .json()
            .await
            .expect("JSON");
        data["ses"]["RawMessage"]
            .as_array()?
            .iter()
            .find(|m| m["id"] == message_id)
            .and_then(|m| m["raw_data"].as_str().map(str::to_owned))
    }

    /// The keys of every object in the bucket.
    ///
    /// # Panics
    /// When moto does not answer.
    pub async fn objects(&self) -> Vec<String> {
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.expect("moto lists");
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        }
        keys
    }

    /// How many multipart uploads are open in the bucket (a finished or failed job leaves none).
    ///
    /// # Panics
    /// When moto does not answer.
    pub async fn open_uploads(&self) -> usize {
        self.open_upload_keys().await.len()
    }

    /// The keys of the multipart uploads still open.
    pub async fn open_upload_keys(&self) -> Vec<String> {
        self.s3
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .send()
            .await
            .expect("moto lists")
            .uploads()
            .iter()
            .filter_map(|u| u.key().map(str::to_owned))
            .collect()
    }

    /// Sends one request through the handler.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        who: &[(String, String)],
    ) -> (u16, Value) {
        let text = body.map(Value::to_string);
        self.call_raw(method, path, text.as_deref(), who).await
    }

    /// Sends one request with a raw body through the handler.
    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        who: &[(String, String)],
    ) -> (u16, Value) {
        let event = http_event(method, path, body, who);
        let response = match exports_api::handle(self.deps(), request(&event)).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        status_and_json(response)
    }

    /// Sends one request through the handler with other dependencies (a port replaced).
    pub async fn call_with(
        deps: Deps<'_>,
        method: &str,
        path: &str,
        body: Option<&Value>,
        who: &[(String, String)],
    ) -> (u16, Value) {
        let text = body.map(Value::to_string);
        let event = http_event(method, path, text.as_deref(), who);
        let response = match exports_api::handle(deps, request(&event)).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        status_and_json(response)
    }

    /// Follows the download route's redirect (checking the link's validity) and fetches the file.
    ///
    /// # Panics
    /// When the route does not redirect or moto does not serve the file.
    pub async fn download(&self, who: &[(String, String)], id: &str) -> Vec<u8> {
        let event = http_event("GET", &format!("/exports/{id}/download"), None, who);
        let response = match exports_api::handle(self.deps(), request(&event)).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        assert_eq!(response.status().as_u16(), 302);
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .expect("a location");
        assert!(location.contains("X-Amz-Expires=3600"), "{location}");
        let file = reqwest::get(location)
            .await
            .expect("moto serves the presigned URL");
        assert_eq!(file.status().as_u16(), 200);
        file.bytes().await.expect("the file").to_vec()
    }

    /// The event the export's schedule would fire, as moto stores it; `None` without a schedule.
    ///
    /// # Panics
    /// When a stored schedule's input is not a run event.
    pub async fn armed_event(
        &self,
        id: &exporter_core::domain::ExportId,
    ) -> Option<exporter_core::domain::RunEvent> {
        let schedule = self
            .scheduler
            .get_schedule()
            .group_name(&self.group)
            .name(exporter_adapters::scheduler::schedule_name(id))
            .send()
            .await
            .ok()?;
        let input = schedule.target()?.input()?;
        Some(serde_json::from_str(input).expect("a run event"))
    }

    /// Runs notify for a job, in this process, as run-export's hand-off would.
    ///
    /// # Panics
    /// When notify fails.
    pub async fn notify_job(
        &self,
        export_id: exporter_core::domain::ExportId,
        job_id: String,
    ) -> notify::Summary {
        notify::handle(self.notify_deps(), notify::NotifyEvent { export_id, job_id })
            .await
            .expect("notifies")
    }

    /// The first message recorded on an export's latest job, as `GET /exports/{id}/status`
    /// shows it to `who`.
    pub async fn first_notification(
        &self,
        who: &[(String, String)],
        export_id: exporter_core::domain::ExportId,
    ) -> Value {
        let (_, state) = self
            .call("GET", &format!("/exports/{export_id}/status"), None, who)
            .await;
        state["jobs"][0]["notifications"][0].clone()
    }

    /// An owner's counter of queued exports, as stored; `None` before the owner has one.
    ///
    /// # Panics
    /// When moto does not answer.
    pub async fn queued(&self, owner: &str) -> Option<String> {
        let key = HashMap::from([
            (
                "pk".to_owned(),
                aws_sdk_dynamodb::types::AttributeValue::S(format!("OWNER#{owner}")),
            ),
            (
                "sk".to_owned(),
                aws_sdk_dynamodb::types::AttributeValue::S("QUOTA".into()),
            ),
        ]);
        let output = self
            .dynamo
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .expect("moto reads");
        output
            .item()
            .and_then(|i| i.get("queued"))
            .and_then(|v| v.as_n().ok())
            .cloned()
    }

    /// Every item of the table (a scan: tests only).
    ///
    /// # Panics
    /// When moto does not answer.
    pub async fn items(&self) -> Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let output = self
            .dynamo
            .scan()
            .table_name(&self.table)
            .send()
            .await
            .expect("moto scans");
        output.items().to_vec()
    }
}

/// The seed page's example body, exactly as the seed prints it.
pub fn seed_body() -> &'static str {
    include_str!("../data/seed-body.json")
}

/// A valid request body to vary: one-time, CSV, one item.
pub fn one_time_body() -> Value {
    json!({
        "format": {"extension": "csv", "columns": [{"id": "time", "label": "Time"}, {"id": "value", "label": "Value"}], "timezone": "Europe/Rome"},
        "type": "oneTime",
        "items": [{"params": {
            "target": {"value": "urn:cpt:smartdevice:nid:D0CF5EFFFE26FDAB1:temperature", "label": "temperature"},
            "channelId": "0115c85d-ef3e-4de9-9732-d0c5c4f2c482",
            "subtopic": "events.data",
            "from": 1_767_225_600, "to": 1_767_312_000
        }}],
        "notification": {"messages": []}
    })
}

/// A valid recurring body with the given periodicity.
pub fn recurring_body(periodicity: &str) -> Value {
    let mut body = one_time_body();
    body["type"] = json!("recurring");
    body["periodicity"] = json!(periodicity);
    body["items"][0]["params"]["from"] = json!(0);
    body["items"][0]["params"]["to"] = json!(0);
    body
}

/// The resources of the template as CloudFormation receives it (`infra/template.yaml` translated
/// by `aws-sam-translator`, as `sam deploy` does), or `None` (said loudly) without the
/// translator in the project's `.venv`.
///
/// # Panics
/// Under `CI=true` when the translator is missing, and when the translation fails.
pub fn translated_template() -> Option<std::collections::BTreeMap<String, Value>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    if !python.exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the translator is missing (.venv): run scripts/stack.sh install"
        );
        eprintln!("NOT RUN: no .venv with aws-sam-translator; run scripts/stack.sh install");
        return None;
    }
    let out = std::process::Command::new(python)
        .arg(root.join("scripts/infra_check.py"))
        .arg("--translate-only")
        .arg(std::env::temp_dir().join(format!(
            "translated-{}-{}.json",
            std::process::id(),
            CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        )))
        .output()
        .expect("the translator runs");
    assert!(
        out.status.success(),
        "the translation failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let text = std::fs::read_to_string(&path).expect("the translated template");
    let _ = std::fs::remove_file(&path);
    let template: Value = serde_json::from_str(&text).expect("JSON");
    let resources = template["Resources"].as_object().expect("resources").clone();
    Some(resources.into_iter().collect())
}

/// Translations made by this process, so tests running at once write files of their own.
static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The largest the files under `dir` together were while `run` ran, sampled every few
/// milliseconds.
pub async fn peak_disk<F: std::future::Future>(dir: &std::path::Path, run: F) -> (F::Output, u64) {
    let size = || {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum::<u64>()
            })
            .unwrap_or(0)
    };
    let peak = std::sync::atomic::AtomicU64::new(0);
    let done = std::sync::atomic::AtomicBool::new(false);
    let watch = async {
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            peak.fetch_max(size(), std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    };
    let work = async {
        let out = run.await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        out
    };
    let (out, ()) = tokio::join!(work, watch);
    (out, peak.load(std::sync::atomic::Ordering::SeqCst))
}

/// A log file of the local stack (`STACK_DIR`, which `scripts/stack.sh env` sets), whole.
pub fn stack_log(name: &str) -> Option<String> {
    let dir = std::env::var("STACK_DIR").ok()?;
    std::fs::read_to_string(std::path::Path::new(&dir).join(name)).ok()
}
