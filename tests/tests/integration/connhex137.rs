//! Bodies written for Connhex Exporter 1.3.7 and later, end to end (the API and run-export on
//! moto, a local reader serving recorded messages across the autumn hour in Rome): the example
//! body is accepted and printed back; `template: expanded` writes every field of a raw item and
//! every statistic of a decimated one; `outputFormat: long` writes a wide item a row per time and
//! target; `format.filename` names the job's file and zip. Files are read back and compared cell
//! by cell with what is computed here.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use integration_tests::{number_text, rome_time, someone, Fixture};

const CHANNEL: &str = "0115c85d-ef3e-4de9-9732-d0c5c4f2c482";
/// An hour either side of 2025-10-26T01:00Z, when 03:00 CEST became 02:00 CET.
const FROM: i64 = 1_761_436_800;
const TO: i64 = 1_761_444_000;

/// `temp` every 60 s, `hum` every 90 s, and `state`, a message of every kind of value every
/// 600 s.
fn messages() -> Vec<Value> {
    let mut out = Vec::new();
    for (name, step, base, slope) in [("temp", 60, 20.0, 0.25), ("hum", 90, 50.0, 0.5)] {
        for (k, t) in (FROM..TO).step_by(step).enumerate() {
            out.push(
                json!({"channel": CHANNEL, "subtopic": "events.data", "name": name, "protocol": "mqtt",
                "publisher": "dev-1", "unit": "u", "time": t as f64, "value": base + k as f64 * slope}),
            );
        }
    }
    for (k, t) in (FROM..TO).step_by(600).enumerate() {
        let mut message = json!({"channel": CHANNEL, "subtopic": "events.data", "name": "state",
            "protocol": "coap", "publisher": "dev-2", "time": t as f64, "update_time": (t + 1) as f64});
        match k % 4 {
            0 => message["string_value"] = json!(format!("mode {k}")),
            1 => message["bool_value"] = json!(k % 8 == 1),
            2 => message["data_value"] = json!(format!("AQID{k}")),
            _ => {
                message["value"] = json!(k as f64 * 1.5);
                message["sum"] = json!(k as f64 * 10.0);
                message["unit"] = json!("W");
            }
        }
        out.push(message);
    }
    out
}

fn rows(text: &str, delimiter: u8) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(delimiter)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.expect("a CSV record").iter().map(str::to_owned).collect())
        .collect()
}

fn one_item(params: Value, format: Value) -> Value {
    let mut params = params;
    params["channelId"] = json!(CHANNEL);
    params["subtopic"] = json!("events.data");
    params["from"] = json!(FROM);
    params["to"] = json!(TO);
    json!({"format": format, "type": "oneTime", "items": [{"params": params}], "notification": {"messages": []}})
}

#[tokio::test]
async fn the_connhex_1_3_7_example_body_is_accepted_and_printed_back() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    // The create-request page's example, with values a user would give.
    let body = json!({
        "format": {"filename": "Site report {{jobId}}", "extension": "csv",
            "columns": [{"id": "time", "label": "Time"}, {"id": "name", "label": "Metric"},
                {"id": "value", "label": "Value"}],
            "timezone": "Europe/Rome", "template": "tabular", "csvDelimiter": ";"},
        "type": "recurring",
        "items": [{"params": {"target": {"value": "temp,hum", "label": "Temperature,Humidity"},
            "channelId": CHANNEL, "subtopic": "events.data", "from": 0, "to": 0, "period": "P1D",
            "decimation": {"ds": "15m", "dsf": "avg"}, "transform": "delta", "outputFormat": "long"},
            "filename": "site"}],
        "periodicity": "P1D",
        "periodStart": 1_767_225_600,
        "notification": {"messages": [{"target": "ops@example.com", "policy": "onSuccess",
            "medium": "email", "title": "Report", "text": "Done"}]},
        "tags": [{"label": "site", "value": "Rome"}]
    });
    let alice = someone();
    let (status, export) = fx.call("POST", "/exports", Some(&body), &alice).await;
    assert_eq!(status, 201, "{export}");
    assert_eq!(export["format"]["template"], "tabular");
    assert_eq!(export["format"]["filename"], "Site report {{jobId}}");
    assert_eq!(export["format"]["csvDelimiter"], ";");
    assert_eq!(export["items"][0]["params"]["outputFormat"], "long");
    assert_eq!(export["items"][0]["params"]["transform"], "delta");
    assert_eq!(export["tags"], json!([{"label": "site", "value": "Rome"}]));
    // What it stored reads back the same.
    let id = export["id"].as_str().expect("an id");
    let (status, got) = fx.call("GET", &format!("/exports/{id}"), None, &alice).await;
    assert_eq!(status, 200);
    assert_eq!(got, export);

    // Columns are optional since 1.3.7; a typo still fails loudly.
    let mut bare = body.clone();
    bare["format"].as_object_mut().map(|f| f.remove("columns"));
    let (status, created) = fx.call("POST", "/exports", Some(&bare), &alice).await;
    assert_eq!(status, 201, "{created}");
    let ids: Vec<&str> = created["format"]["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, ["time", "name", "value", "unit"]);
    let mut typo = body.clone();
    typo["format"]["templat"] = json!("expanded");
    typo["items"][0]["params"]["outputFormat"] = json!("longest");
    typo["format"]["filename"] = json!("{{status}}");
    let (status, problems) = fx.call("POST", "/exports", Some(&typo), &alice).await;
    assert_eq!(status, 400);
    let text = problems.to_string();
    assert!(
        text.contains("/format/templat") && text.contains("did you mean `template`"),
        "{text}"
    );
    assert!(text.contains("/items/0/params/outputFormat"), "{text}");
    assert!(
        text.contains("/format/filename") && text.contains("{{jobId}}"),
        "{text}"
    );
}

#[tokio::test]
async fn expanded_raw_writes_every_field_of_every_message() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.serve_messages(messages()).await;
    let body = one_item(
        json!({"target": {"value": "state", "label": "Mode"}}),
        json!({"extension": "csv", "timezone": "Europe/Rome", "template": "expanded",
            "columns": [{"id": "time", "label": "When"}, {"id": "utcOffset", "label": "UTC"}]}),
    );
    let text = fx.exported_text(&someone(), &body).await;
    let got = rows(&text, b',');
    assert_eq!(
        got[0],
        [
            "When",
            "channel",
            "subtopic",
            "publisher",
            "protocol",
            "name",
            "unit",
            "value",
            "stringValue",
            "boolValue",
            "dataValue",
            "sum",
            "updateTime",
            "UTC"
        ],
        "every field, headed as `columns` labels them, then the chosen column it lacks"
    );
    let mut expected = Vec::new();
    for (k, t) in (FROM..TO).step_by(600).enumerate() {
        let k64 = k as f64;
        let (unit, value, string, boolean, data, sum) = match k % 4 {
            0 => (
                "",
                String::new(),
                format!("mode {k}"),
                String::new(),
                String::new(),
                String::new(),
            ),
            1 => (
                "",
                String::new(),
                String::new(),
                (k % 8 == 1).to_string(),
                String::new(),
                String::new(),
            ),
            2 => (
                "",
                String::new(),
                String::new(),
                String::new(),
                format!("AQID{k}"),
                String::new(),
            ),
            _ => (
                "W",
                number_text(Some(k64 * 1.5)),
                String::new(),
                String::new(),
                String::new(),
                number_text(Some(k64 * 10.0)),
            ),
        };
        let offset = if t < 1_761_440_400 { "+02:00" } else { "+01:00" };
        expected.push(vec![
            rome_time(t),
            CHANNEL.to_owned(),
            "events.data".to_owned(),
            "dev-2".to_owned(),
            "coap".to_owned(),
            "Mode".to_owned(),
            unit.to_owned(),
            value,
            string,
            boolean,
            data,
            sum,
            number_text(Some((t + 1) as f64)),
            offset.to_owned(),
        ]);
    }
    assert_eq!(got[1..], expected[..]);
}

/// Every statistic of `values`, computed plainly: count, mean, lowest, highest, sum, and the
/// sample spread (two passes).
fn statistics(values: &[f64]) -> [Option<f64>; 6] {
    let n = values.len() as f64;
    let sum: f64 = values.iter().sum();
    let mean = sum / n;
    let variance =
        (values.len() > 1).then(|| values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0));
    [
        Some(mean),
        values.iter().copied().reduce(f64::min),
        values.iter().copied().reduce(f64::max),
        Some(sum),
        variance.map(f64::sqrt),
        variance,
    ]
}

/// Whether a cell holds `expected`: exactly for what needs no rounding, to 1e-12 relative for
/// the spread (the service's running update and the test's two passes may part in the last bit).
fn close(cell: &str, expected: Option<f64>) -> bool {
    match (cell.parse::<f64>().ok(), expected) {
        (None, None) => cell.is_empty(),
        (Some(got), Some(want)) => got == want || (got - want).abs() <= 1e-12 * want.abs().max(1e-300),
        _ => false,
    }
}

#[tokio::test]
async fn expanded_decimated_writes_every_statistic_of_each_bucket() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.serve_messages(messages()).await;
    let body = one_item(
        json!({"target": {"value": "hum"}, "decimation": {"ds": "15m", "dsf": "max"}}),
        json!({"extension": "csv", "timezone": "Europe/Rome", "template": "expanded", "csvDelimiter": ";",
            "columns": [{"id": "avg", "label": "Mean"}, {"id": "count", "label": "Points"}]}),
    );
    let text = fx.exported_text(&someone(), &body).await;
    let got = rows(&text, b';');
    assert_eq!(
        got[0],
        [
            "time", "channel", "subtopic", "name", "unit", "Points", "Mean", "min", "max", "sum", "stddev",
            "variance"
        ]
    );
    let humidity: Vec<(i64, f64)> = (FROM..TO)
        .step_by(90)
        .enumerate()
        .map(|(k, t)| (t, 50.0 + k as f64 * 0.5))
        .collect();
    let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (t, v) in humidity {
        buckets.entry(t - (t - FROM) % 900).or_default().push(v);
    }
    assert_eq!(got.len(), buckets.len() + 1, "a row per bucket");
    for (row, (start, values)) in got[1..].iter().zip(&buckets) {
        assert_eq!(row[0], rome_time(*start));
        assert_eq!(row[1..5], [CHANNEL, "events.data", "hum", "u"]);
        assert_eq!(row[5], values.len().to_string());
        for (cell, want) in row[6..].iter().zip(statistics(values)) {
            assert!(
                close(cell, want),
                "bucket {}: {row:?} against {:?}",
                rome_time(*start),
                statistics(values)
            );
        }
    }
}

#[tokio::test]
async fn a_long_wide_item_writes_a_row_per_time_and_target() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.serve_messages(messages()).await;
    let params =
        json!({"target": {"value": "temp,hum", "label": "Temperature,Humidity"}, "outputFormat": "long"});
    let format = json!({"extension": "csv", "timezone": "Europe/Rome",
        "columns": [{"id": "time", "label": "Time"}, {"id": "name", "label": "Metric"},
            {"id": "value", "label": "Value"}, {"id": "unit", "label": "Unit"}]});
    let alice = someone();
    let raw = rows(
        &fx.exported_text(&alice, &one_item(params.clone(), format.clone()))
            .await,
        b',',
    );
    // Raw: every point of both, oldest first (at a time both have, in the targets' order).
    let mut expected: Vec<(i64, usize, f64)> = Vec::new();
    for (k, (step, base, slope)) in [(60, 20.0, 0.25), (90, 50.0, 0.5)].into_iter().enumerate() {
        for (n, t) in (FROM..TO).step_by(step).enumerate() {
            expected.push((t, k, base + n as f64 * slope));
        }
    }
    expected.sort_by_key(|(t, k, _)| (*t, *k));
    let names = ["Temperature", "Humidity"];
    let want: Vec<Vec<String>> = expected
        .iter()
        .map(|(t, k, v)| {
            vec![
                rome_time(*t),
                names[*k].to_owned(),
                number_text(Some(*v)),
                "u".to_owned(),
            ]
        })
        .collect();
    assert_eq!(raw[0], ["Time", "Metric", "Value", "Unit"]);
    assert_eq!(raw[1..], want[..]);

    // Decimated: a row per bucket and target, each target's own mean and count.
    let mut decimated_params = params;
    decimated_params["decimation"] = json!({"ds": "30m", "dsf": "avg"});
    let mut decimated_format = format;
    decimated_format["columns"] = json!([{"id": "time", "label": "Time"}, {"id": "name", "label": "Metric"},
        {"id": "value", "label": "Mean"}, {"id": "count", "label": "Points"}]);
    let got = rows(
        &fx.exported_text(&alice, &one_item(decimated_params, decimated_format))
            .await,
        b',',
    );
    let mut want = vec![vec![
        "Time".to_owned(),
        "Metric".into(),
        "Mean".into(),
        "Points".into(),
    ]];
    for start in (FROM..TO).step_by(1800) {
        for (k, name) in names.iter().enumerate() {
            let values: Vec<f64> = expected
                .iter()
                .filter(|(t, target, _)| *target == k && (start..start + 1800).contains(t))
                .map(|(_, _, v)| *v)
                .collect();
            want.push(vec![
                rome_time(start),
                (*name).to_owned(),
                number_text(Some(values.iter().sum::<f64>() / values.len() as f64)),
                values.len().to_string(),
            ]);
        }
    }
    assert_eq!(got, want);
}

#[tokio::test]
async fn format_filename_names_the_job_s_file_and_its_zip() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.serve_messages(messages()).await;
    let alice = someone();
    let format = json!({"extension": "csv", "filename": "Plant {{exportId}} at {{jobId}}.csv",
        "columns": [{"id": "time", "label": "Time"}, {"id": "value", "label": "Value"}]});
    let single = one_item(json!({"target": {"value": "temp"}}), format.clone());
    let event = fx.create_run(&alice, &single).await;
    run_export::handle(fx.run_deps(), event.clone())
        .await
        .expect("runs");
    let job = event.job_id();
    let id = event.export_id;
    let objects = fx.objects().await;
    let file = format!("exports/{id}/{job}/Plant_{id}_at_{job}.csv");
    assert!(objects.contains(&file), "{file} among {objects:?}");

    // Two items: the zip is named so; each file inside keeps its item's name.
    let mut double = single.clone();
    let second = json!({"params": {"target": {"value": "hum"}, "channelId": CHANNEL, "subtopic": "events.data",
        "from": FROM, "to": TO}, "filename": "humidity"});
    double["items"].as_array_mut().expect("items").push(second);
    let event = fx.create_run(&alice, &double).await;
    run_export::handle(fx.run_deps(), event.clone())
        .await
        .expect("runs");
    let (job, id) = (event.job_id(), event.export_id);
    let zip = format!("exports/{id}/{job}/Plant_{id}_at_{job}.zip");
    let objects = fx.objects().await;
    assert!(objects.contains(&zip), "{zip} among {objects:?}");
    let bytes = fx.download(&alice, &id.to_string()).await;
    let archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
    let mut names: Vec<&str> = archive.file_names().collect();
    names.sort_unstable();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"humidity.csv"), "{names:?}");
}

#[tokio::test]
async fn the_list_filters_by_tag_label_and_by_label_and_value() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let alice = someone();
    let tagged = |tags: Value| {
        let mut body = one_item(
            json!({"target": {"value": "temp"}}),
            json!({"extension": "csv", "columns": [{"id": "time", "label": "Time"}]}),
        );
        body["tags"] = tags;
        body
    };
    let mut ids = Vec::new();
    for tags in [
        json!([{"label": "site", "value": "Rome"}, {"label": "team", "value": "ops"}]),
        json!([{"label": "site", "value": "Milan"}]),
        json!([]),
    ] {
        let (status, export) = fx.call("POST", "/exports", Some(&tagged(tags)), &alice).await;
        assert_eq!(status, 201, "{export}");
        ids.push(export["id"].as_str().expect("an id").to_owned());
    }
    let listed = |query: &'static str| {
        let fx = &fx;
        let alice = &alice;
        async move {
            let (status, page) = fx.call("GET", &format!("/exports?{query}"), None, alice).await;
            assert_eq!(status, 200, "{query}: {page}");
            let mut got: Vec<String> = page["results"]
                .as_array()
                .expect("results")
                .iter()
                .filter_map(|e| e["id"].as_str().map(str::to_owned))
                .collect();
            got.sort();
            got
        }
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        listed("tagLabels=site").await,
        sorted(vec![ids[0].clone(), ids[1].clone()])
    );
    assert_eq!(
        listed("tagLabels=site&tagLabels=team").await,
        [ids[0].clone()],
        "every label"
    );
    assert_eq!(
        listed("tagLabels=site,team").await,
        [ids[0].clone()],
        "comma-separated too"
    );
    assert_eq!(listed("tagLabelValues=site:Milan").await, [ids[1].clone()]);
    assert!(listed("tagLabelValues=site:Paris").await.is_empty());
    let (status, problems) = fx.call("GET", "/exports?tagLabelValues=site", None, &alice).await;
    assert_eq!(status, 400);
    assert!(
        problems.to_string().contains("/query/tagLabelValues"),
        "{problems}"
    );
    // Labels once each, and at most the documented number.
    let (status, problems) = fx
        .call(
            "POST",
            "/exports",
            Some(&tagged(
                json!([{"label": "a", "value": "1"}, {"label": "a", "value": "2"}]),
            )),
            &alice,
        )
        .await;
    assert_eq!(status, 400);
    assert!(problems.to_string().contains("/tags/1/label"), "{problems}");
    let many: Vec<Value> = (0..21)
        .map(|k| json!({"label": format!("l{k}"), "value": "v"}))
        .collect();
    let (status, problems) = fx
        .call("POST", "/exports", Some(&tagged(json!(many))), &alice)
        .await;
    assert_eq!(status, 400);
    assert!(problems.to_string().contains("at most 20"), "{problems}");
}
