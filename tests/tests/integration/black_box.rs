//! Black box: the functions as `cargo lambda watch` serves them, over HTTP, against moto. The
//! caller's claims travel in the local identity header (no authorizer runs locally).

use serde_json::{json, Value};

use integration_tests::{endpoint, one_time_body, seed_body, ALL_ACTIONS};

struct Api {
    http: reqwest::Client,
    base: String,
    identity: String,
    /// The user's own platform token, which the stack's local reader lets read every channel.
    token: String,
}

impl Api {
    fn new() -> Option<Self> {
        let watch = endpoint("WATCH_ENDPOINT", "cargo lambda watch")?;
        let sub = format!("black-box-{}", uuid::Uuid::new_v4());
        Some(Self {
            http: reqwest::Client::new(),
            base: format!("{watch}/lambda-url/exports-api"),
            identity: json!({"sub": sub, "email": "bb@example.com", "scope": ALL_ACTIONS}).to_string(),
            token: std::env::var("LOCAL_USER_TOKEN").unwrap_or_else(|_| "local-user-token".into()),
        })
    }

    /// The export's status once it is `done` or `failed`, or as it is after `seconds`.
    async fn ended(&self, id: &str, seconds: u64) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        loop {
            let state = self
                .send(reqwest::Method::GET, &format!("/exports/{id}/status"), None)
                .await
                .1;
            if state["status"] == "done"
                || state["status"] == "failed"
                || std::time::Instant::now() > deadline
            {
                return state;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<&str>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-local-identity", &self.identity)
            .header("authorization", format!("Bearer {}", self.token))
            .timeout(std::time::Duration::from_secs(120));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.expect("cargo lambda watch answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn the_seed_example_is_created_read_deleted_and_then_gone() {
    let Some(api) = Api::new() else { return };
    let (status, created) = api
        .send(reqwest::Method::POST, "/exports", Some(seed_body()))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("an id");
    assert_eq!(created["type"], "recurring");
    assert_eq!(created["periodicity"], "P1Y6M4DT12H30M5S");
    assert_eq!(created["items"][0]["filename"], "string");

    let (status, got) = api
        .send(reqwest::Method::GET, &format!("/exports/{id}"), None)
        .await;
    assert_eq!((status, &got), (200, &created));
    let (status, _) = api
        .send(reqwest::Method::DELETE, &format!("/exports/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, gone) = api
        .send(reqwest::Method::GET, &format!("/exports/{id}"), None)
        .await;
    assert_eq!(status, 404, "{gone}");
}

#[tokio::test]
async fn a_one_time_export_runs_and_its_file_downloads_through_the_api() {
    let Some(api) = Api::new() else { return };
    let (status, created) = api
        .send(
            reqwest::Method::POST,
            "/exports",
            Some(&one_time_body().to_string()),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("an id");
    // The run is launched asynchronously, as in AWS: wait for its end.
    let state = api.ended(id, 60).await;
    assert_eq!(state["status"], "done", "{state}");
    let jobs = state["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["scheduledAt"], created["createdAt"]);
    assert_eq!(jobs[0]["status"], "done");
    assert_eq!(jobs[0]["files"][0]["rows"], 288, "a day of 5-minute points");

    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
        .get(format!("{}/exports/{id}/download", api.base))
        .header("x-local-identity", &api.identity)
        .header("authorization", format!("Bearer {}", api.token))
        .send()
        .await
        .expect("watch answers");
    assert_eq!(redirect.status().as_u16(), 302);
    let location = redirect
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .expect("a location");
    let text = reqwest::get(location)
        .await
        .expect("the file")
        .text()
        .await
        .expect("text");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("Time,Value"));
    assert_eq!(lines.next(), Some("2026-01-01T01:00:00+01:00,35"));
    assert_eq!(text.lines().count(), 289);

    // The run wrote its metrics with its log lines, in CloudWatch's embedded metric format:
    // one document for the invocation, the export a property, never a dimension.
    let log = integration_tests::stack_log("watch.log").expect("the stack's log (STACK_DIR)");
    let documents: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|doc| doc.get("_aws").is_some() && doc["exportId"] == id)
        .collect();
    let run = documents
        .iter()
        .find(|doc| doc["Function"] == "run-export" && doc["outcome"] == "done")
        .unwrap_or_else(|| panic!("no metrics of the run: {documents:?}"));
    let directive = &run["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "SenmlExporter", "{run}");
    assert!(run["requestId"].as_str().is_some_and(|r| !r.is_empty()), "{run}");
    let total = |name: &str| {
        documents
            .iter()
            .filter(|doc| doc["Function"] == "run-export")
            .filter_map(|doc| doc[name].as_f64())
            .sum::<f64>()
    };
    assert_eq!(total("RowsWritten"), 288.0, "{documents:?}");
    assert!(total("PointsRead") >= 288.0, "{documents:?}");
    for doc in &documents {
        for dimensions in doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert!(
                !dimensions.to_string().contains("exportId"),
                "the export is no dimension: {doc}"
            );
        }
    }
}

#[tokio::test]
async fn bad_input_is_a_4xx_with_the_field_named() {
    let Some(api) = Api::new() else { return };
    let mut body = one_time_body();
    body["perodicity"] = json!("P1D");
    let (status, answer) = api
        .send(reqwest::Method::POST, "/exports", Some(&body.to_string()))
        .await;
    assert_eq!(status, 400);
    assert_eq!(answer["details"][0]["path"], "/perodicity");
}

#[tokio::test]
async fn a_tenant_cannot_export_a_channel_the_platform_does_not_let_them_read() {
    let Some(mut api) = Api::new() else { return };
    // The stack's local reader lets this token read one channel only, not the seed's.
    api.token = std::env::var("LOCAL_TENANT_TOKEN").unwrap_or_else(|_| "local-tenant-token".into());
    let (status, refused) = api
        .send(reqwest::Method::POST, "/exports", Some(seed_body()))
        .await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(
        refused["details"][0]["path"], "/items/0/params/channelId",
        "{refused}"
    );
    let (status, listed) = api.send(reqwest::Method::GET, "/exports", None).await;
    assert_eq!((status, &listed["total"]), (200, &json!(0)), "nothing stored");
}

/// The stack behaves as Lambda does: the API's launch of a run returns at once, the run's items
/// run at once in instances of their own, and a run past its budget continues in a fresh
/// invocation, all through `cargo lambda watch` (the stack sets `RUN_BUDGET_SECONDS`).
#[tokio::test]
async fn a_job_of_several_items_runs_them_in_parallel_and_continues_through_the_stack() {
    let Some(api) = Api::new() else { return };
    let Some(moto) = endpoint("MOTO_ENDPOINT", "moto") else {
        return;
    };
    let mut body = one_time_body();
    let item = body["items"][0].clone();
    body["items"] = json!([item.clone(), item.clone(), item]);
    for (k, name) in ["temperature", "humidity", "pressure"].iter().enumerate() {
        let params = &mut body["items"][k]["params"];
        params["target"] = json!({"value": format!("urn:dev:{name}"), "label": name});
        // Two years of 5-minute points: more than a debug build writes within the stack's budget.
        params["from"] = json!(1_735_689_600);
        params["to"] = json!(1_798_761_600);
    }
    let started = std::time::Instant::now();
    let (status, created) = api
        .send(reqwest::Method::POST, "/exports", Some(&body.to_string()))
        .await;
    assert_eq!(status, 201, "{created}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the API waited {:?} on the run it launched",
        started.elapsed()
    );
    let id = created["id"].as_str().expect("an id");
    let state = api.ended(id, 300).await;
    assert_eq!(state["status"], "done", "{state}");
    let job = &state["jobs"][0];
    let files = job["files"].as_array().expect("files");
    assert_eq!(files.len(), 3, "{job}");
    assert!(files.iter().all(|f| f["rows"] == 210_240), "{job}");
    assert!(
        job["archive"]["key"]
            .as_str()
            .is_some_and(|k| k.ends_with(".zip")),
        "{job}"
    );
    // What the items' runs recorded: spread, and continued past their budget.
    let dynamo = aws_sdk_dynamodb::Client::new(&integration_tests::aws_at(&moto).await);
    let rows = dynamo
        .query()
        .table_name(std::env::var("TABLE_NAME").unwrap_or_else(|_| "exports".into()))
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("EXPORT#{id}")),
        )
        .send()
        .await
        .expect("moto answers");
    let legs: Vec<u64> = rows
        .items()
        .iter()
        .filter_map(|row| {
            row.get("leg")
                .and_then(|l| l.as_n().ok())
                .and_then(|n| n.parse().ok())
        })
        .collect();
    assert!(legs.iter().any(|leg| *leg > 0), "no item continued: {legs:?}");
}
