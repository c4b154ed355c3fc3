//! Every sample event in `events/` deserialises into its function's input type, so
//! `cargo lambda invoke --data-file events/<function>.<case>.json` feeds a real shape.

use std::path::Path;

use exporter_core::domain::RunEvent;
use notify::NotifyEvent;

#[test]
fn every_sample_event_deserialises_into_its_functions_input() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("events/ exists") {
        let path = entry.expect("readable").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let text = std::fs::read_to_string(&path).expect("readable");
        let function = name.split('.').next().unwrap_or_default();
        match function {
            "exports-api" => {
                let request = lambda_http::request::from_str(&text);
                assert!(request.is_ok(), "{name}: {:?}", request.err());
            }
            "run-export" => {
                let event = serde_json::from_str::<RunEvent>(&text);
                assert!(event.is_ok(), "{name}: {:?}", event.err());
            }
            "notify" => {
                let event = serde_json::from_str::<NotifyEvent>(&text);
                assert!(event.is_ok(), "{name}: {:?}", event.err());
            }
            // API Gateway's request to its authorizer (payload 2.0): the header the verdict is on.
            "authorize" => {
                let event = serde_json::from_str::<
                    lambda_http::aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request,
                >(&text);
                assert!(event.is_ok(), "{name}: {:?}", event.err());
                let header = event.ok().and_then(|e| e.headers.get("authorization").cloned());
                assert!(header.is_some(), "{name}: no Authorization header");
            }
            // The rate schedule's event: reconcile takes any JSON and reads nothing of it.
            "reconcile" => {
                let event = serde_json::from_str::<serde_json::Value>(&text);
                assert!(event.is_ok_and(|e| e.is_object()), "{name}");
            }
            other => panic!("{name}: no function `{other}`; name events <function>.<case>.json"),
        }
        seen += 1;
    }
    assert!(seen >= 8, "expected the sample events, found {seen}");
}

#[test]
fn the_create_event_carries_the_seed_example_as_it_is() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/exports-api.create-seed.json");
    let event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("readable")).expect("JSON");
    assert_eq!(event["body"].as_str(), Some(integration_tests::seed_body()));
}

#[test]
fn the_excel_ready_create_event_is_a_valid_request_of_every_new_option() {
    let request = sample_request("exports-api.create-excel-ready.json");
    let format = &request.format;
    assert!(format.csv_bom && format.csv_decimal_comma && format.csv_delimiter == b';');
    let item = &request.items[0];
    assert_eq!(
        item.transform,
        Some(exporter_core::domain::request::Transform::Delta)
    );
    assert_eq!(
        item.decimation.map(|d| d.fill),
        Some(exporter_core::domain::request::Fill::Null)
    );
}

#[test]
fn the_parquet_create_event_is_a_valid_request_with_local_times() {
    let request = sample_request("exports-api.create-parquet.json");
    assert_eq!(
        request.format.extension,
        exporter_core::domain::request::Extension::Parquet
    );
    assert!(request.format.local_time);
}

#[test]
fn the_report_create_event_is_a_valid_weekly_pdf_request() {
    let request = sample_request("exports-api.create-report.json");
    assert_eq!(
        request.format.extension,
        exporter_core::domain::request::Extension::Pdf
    );
    assert!(request.format.pdf.landscape);
}

/// The request in the body of the sample event `name`, checked as the API checks it.
fn sample_request(name: &str) -> exporter_core::domain::request::ExportRequest {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events").join(name);
    let event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("readable")).expect("JSON");
    let body: serde_json::Value =
        serde_json::from_str(event["body"].as_str().expect("a body")).expect("JSON");
    exporter_core::domain::request::ExportRequest::parse(
        &body,
        chrono::Utc::now(),
        &exporter_core::domain::request::Policy::default(),
    )
    .expect("valid")
}
