//! No injection, on moto with the local reader and SES: a title with a line break is a `400`;
//! whatever a stored title holds, the email SES receives has exactly the headers we set; device
//! strings and labels that a spreadsheet would run as formulas open as text in the CSV (and as
//! they are with the option off); a text longer than a workbook cell is cut with a marker and a
//! warning, never a failed job.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use exporter_core::domain::RunEvent;
use integration_tests::{one_time_body, someone, Fixture, READER_START};
use run_export::{handle, Outcome};

const CHANNEL: &str = "0115c85d-ef3e-4de9-9732-d0c5c4f2c482";

/// Serves these device strings (one a minute from `READER_START`) as SenML `note` messages.
async fn serve_strings(fx: &mut Fixture, strings: &[String]) {
    let messages = strings
        .iter()
        .enumerate()
        .map(|(k, text)| {
            json!({"channel": CHANNEL, "subtopic": "events.data", "name": "note", "protocol": "mqtt",
                   "publisher": "p", "time": (READER_START + 60 * k as i64) as f64, "stringValue": text})
        })
        .collect();
    fx.serve_messages(messages).await;
}

fn notes_body(extension: &str, labels: [&str; 3]) -> Value {
    let mut body = one_time_body();
    body["format"] = json!({"extension": extension, "columns": [
        {"id": "time", "label": labels[0]}, {"id": "stringValue", "label": labels[1]}, {"id": "name", "label": labels[2]}]});
    body["items"][0]["params"]["target"] = json!({"value": "note", "label": "=cmd|' /C calc'!A0"});
    body["items"][0]["params"]["from"] = json!(READER_START);
    body["items"][0]["params"]["to"] = json!(READER_START + 3600);
    body
}

async fn created_and_run(fx: &Fixture, who: &[(String, String)], body: &Value) -> (String, Outcome) {
    let (status, export) = fx.call("POST", "/exports", Some(body), who).await;
    assert_eq!(status, 201, "{export}");
    let id = export["id"].as_str().expect("an id").to_owned();
    let event = RunEvent {
        export_id: id.parse().expect("an id"),
        scheduled_at: export["createdAt"]
            .as_str()
            .and_then(|t| t.parse::<DateTime<Utc>>().ok())
            .expect("createdAt"),
        occurrence: None,
        leg: None,
        item: None,
        extra: None,
    };
    (id, handle(fx.run_deps(), event).await.expect("runs"))
}

#[tokio::test]
async fn a_title_with_a_line_break_is_a_400_and_nothing_is_stored() {
    let Some(fx) = Fixture::new().await else { return };
    let mut body = one_time_body();
    body["notification"]["messages"] = json!([{"policy": "onSuccess", "medium": "email",
        "title": "Report\r\nReply-To: attacker@evil.example", "text": "x"}]);
    let (status, refused) = fx.call("POST", "/exports", Some(&body), &someone()).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["details"][0]["path"], "/notification/messages/0/title");
    assert!(fx.items().await.is_empty());
}

#[tokio::test]
async fn the_email_ses_receives_has_exactly_the_headers_we_set() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let mut body = one_time_body();
    body["notification"]["messages"] = json!([{"policy": "onSuccess", "medium": "email",
        "title": "Rapport énergie PLACEHOLDER", "text": "x"}]);
    let (id, outcome) = created_and_run(&fx, &alice, &body).await;
    assert_eq!(outcome, Outcome::Done);
    // As a record stored before titles were checked could hold: line breaks and a header.
    let export_id: exporter_core::domain::ExportId = id.parse().expect("an id");
    let key = |k: &str, v: String| (k.to_owned(), aws_sdk_dynamodb::types::AttributeValue::S(v));
    let keys =
        std::collections::HashMap::from([key("pk", format!("EXPORT#{id}")), key("sk", "EXPORT".into())]);
    let stored = fx
        .dynamo
        .get_item()
        .table_name(&fx.table)
        .set_key(Some(keys.clone()))
        .send()
        .await
        .expect("moto reads");
    let record = stored
        .item()
        .and_then(|i| i.get("record"))
        .and_then(|v| v.as_s().ok())
        .expect("a record")
        .replace(
            "PLACEHOLDER",
            "\\r\\nReply-To: attacker@evil.example\\r\\nBcc: x@evil.example",
        );
    fx.dynamo
        .update_item()
        .table_name(&fx.table)
        .set_key(Some(keys))
        .update_expression("SET #r = :r")
        .expression_attribute_names("#r", "record")
        .expression_attribute_values(":r", aws_sdk_dynamodb::types::AttributeValue::S(record))
        .send()
        .await
        .expect("moto updates");

    let jobs = fx
        .call("GET", &format!("/exports/{id}/status"), None, &alice)
        .await
        .1;
    let job_id = jobs["jobs"][0]["jobId"].as_str().expect("a job").to_owned();
    let summary = fx.notify_job(export_id, job_id).await;
    assert_eq!(summary.sent, 1);
    let (_, state) = fx
        .call("GET", &format!("/exports/{id}/status"), None, &alice)
        .await;
    let message_id = state["jobs"][0]["notifications"][0]["providerMessageId"]
        .as_str()
        .expect("a message id")
        .to_owned();
    let raw = fx
        .sent_email(&message_id)
        .await
        .expect("moto kept the raw message");
    let head = raw.split("\r\n\r\n").next().unwrap_or_default();
    let mut names: Vec<String> = head
        .split("\r\n")
        .filter(|line| !line.starts_with([' ', '\t']))
        .filter_map(|line| line.split_once(':').map(|(name, _)| name.to_ascii_lowercase()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "content-type",
            "date",
            "from",
            "message-id",
            "mime-version",
            "subject",
            "to"
        ],
        "{head}"
    );
}

#[tokio::test]
async fn a_csv_of_device_strings_starting_with_equals_opens_as_text() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let alice = someone();
    let strings = [
        "=HYPERLINK(\"http://evil.example\",\"x\")",
        "+1+1",
        "-2",
        "@SUM(A1)",
        "plain",
    ];
    serve_strings(&mut fx, &strings.map(str::to_owned)).await;
    let (id, outcome) = created_and_run(&fx, &alice, &notes_body("csv", ["time", "+note", "name"])).await;
    assert_eq!(outcome, Outcome::Done);
    let bytes = fx.download(&alice, &id).await;
    let rows: Vec<Vec<String>> = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes.as_slice())
        .records()
        .map(|r| r.expect("a record").iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(rows[0][1], "'+note", "labels too");
    let notes: Vec<&str> = rows[1..].iter().map(|r| r[1].as_str()).collect();
    assert_eq!(
        notes,
        [
            "'=HYPERLINK(\"http://evil.example\",\"x\")",
            "'+1+1",
            "'-2",
            "'@SUM(A1)",
            "plain"
        ]
    );
    assert!(rows[1..].iter().all(|r| r[2] == "'=cmd|' /C calc'!A0"));

    // Turned off for machine consumers: as the devices sent them.
    let mut raw = notes_body("csv", ["time", "+note", "name"]);
    raw["format"]["escapeFormulas"] = json!(false);
    let (id, _) = created_and_run(&fx, &alice, &raw).await;
    let text = String::from_utf8(fx.download(&alice, &id).await).expect("utf-8");
    assert!(text.starts_with("time,+note,name\r\n"), "{text}");
    assert!(text.contains(",+1+1,"), "{text}");
}

#[tokio::test]
async fn a_text_longer_than_a_workbook_cell_is_cut_with_a_marker_and_a_warning() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let alice = someone();
    serve_strings(&mut fx, &["x".repeat(40_000), "short".into()]).await;
    let (id, outcome) = created_and_run(&fx, &alice, &notes_body("xlsx", ["time", "note", "name"])).await;
    assert_eq!(outcome, Outcome::Done, "never a failed job");
    let (_, state) = fx
        .call("GET", &format!("/exports/{id}/status"), None, &alice)
        .await;
    assert!(
        state["jobs"][0]["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("1 text cells") && w.contains("32767")),
        "{state}"
    );
    let mut book: Xlsx<_> =
        calamine::open_workbook_from_rs(Cursor::new(fx.download(&alice, &id).await)).expect("an xlsx");
    let first = book.sheet_names()[0].clone();
    let sheet = book.worksheet_range(&first).expect("a sheet");
    let Some(Data::String(cut)) = sheet.get((1, 1)) else {
        panic!("a string cell")
    };
    assert_eq!(cut.chars().count(), 32_767);
    assert!(cut.ends_with("…[cut]"));
    assert_eq!(sheet.get((2, 1)), Some(&Data::String("short".into())));
    assert_eq!(
        sheet.get((1, 2)),
        Some(&Data::String("=cmd|' /C calc'!A0".into())),
        "a string, not a formula"
    );
}
