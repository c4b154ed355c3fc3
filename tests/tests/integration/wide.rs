//! Wide files end to end (run-export on moto, a local reader serving recorded series): an item
//! naming three targets with different timestamps, across the repeated autumn hour in Rome, is
//! one file with a value column per target joined on time, raw and decimated, against rows
//! computed here.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use integration_tests::{number_text, rome_time, someone, Fixture};

const CHANNEL: &str = "0115c85d-ef3e-4de9-9732-d0c5c4f2c482";
/// An hour either side of 2025-10-26T01:00Z, when 03:00 CEST became 02:00 CET.
const FROM: i64 = 1_761_436_800;
const TO: i64 = 1_761_444_000;

/// Three series of their own rhythm: every 60 s, every 90 s, every 150 s from 30 s in.
fn series() -> Vec<(&'static str, Vec<(i64, f64)>)> {
    let every = |step: i64, offset: i64, base: f64, slope: f64| -> Vec<(i64, f64)> {
        (0..)
            .map(|k| (FROM + offset + k * step, base + k as f64 * slope))
            .take_while(|(t, _)| *t < TO)
            .collect()
    };
    vec![
        ("temp", every(60, 0, 20.0, 0.25)),
        ("hum", every(90, 0, 50.0, 0.5)),
        ("co2", every(150, 30, 400.0, 1.0)),
    ]
}

fn messages() -> Vec<Value> {
    series()
        .into_iter()
        .flat_map(|(name, points)| {
            points.into_iter().map(move |(t, v)| {
                json!({"channel": CHANNEL, "subtopic": "events.data", "name": name, "protocol": "mqtt",
                       "publisher": "p", "unit": "u", "time": t as f64, "value": v})
            })
        })
        .collect()
}

/// Runs `event` and every continuation it launches (through `queue`) until the job ends; how
/// many invocations it took, failing past `cap` (a job that never ends).
async fn run_to_end(
    deps: run_export::Deps<'_>,
    queue: &integration_tests::doubles::Launches,
    event: exporter_core::domain::RunEvent,
    cap: usize,
) -> usize {
    let mut invocations = 0;
    let mut pending = vec![event];
    while let Some(next) = pending.pop() {
        invocations += 1;
        run_export::handle(deps, next).await.expect("runs");
        pending.extend(queue.take());
        assert!(
            invocations < cap,
            "a job that never ends ({invocations} invocations)"
        );
    }
    invocations
}

async fn serve(fx: &mut Fixture) {
    fx.serve_messages(messages()).await;
}

fn body(columns: &[(&str, &str)], decimation: Option<Value>) -> Value {
    let mut params = json!({"target": {"value": "temp,hum,co2", "label": "Temperature,Humidity,CO2"},
        "channelId": CHANNEL, "subtopic": "events.data", "from": FROM, "to": TO});
    if let Some(d) = decimation {
        params["decimation"] = d;
    }
    json!({
        "format": {"extension": "csv", "timezone": "Europe/Rome",
            "columns": columns.iter().map(|(id, label)| json!({"id": id, "label": label})).collect::<Vec<_>>()},
        "type": "oneTime",
        "items": [{"params": params}],
        "notification": {"messages": []}
    })
}

async fn csv_of(fx: &Fixture, body: &Value) -> String {
    let alice = someone();
    let (status, export) = fx.call("POST", "/exports", Some(body), &alice).await;
    assert_eq!(status, 201, "{export}");
    assert_eq!(export["items"][0]["params"]["target"]["value"], "temp,hum,co2");
    assert_eq!(
        export["items"][0]["params"]["target"]["label"],
        "Temperature,Humidity,CO2"
    );
    fx.exported_text(&alice, body).await
}

#[tokio::test]
async fn three_targets_with_different_times_make_one_wide_file_joined_on_time() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    serve(&mut fx).await;
    let series = series();
    // Raw: a row per time any target has, a column per target.
    let mut rows: BTreeMap<i64, [Option<f64>; 3]> = BTreeMap::new();
    for (k, (_, points)) in series.iter().enumerate() {
        for (t, v) in points {
            rows.entry(*t).or_default()[k] = Some(*v);
        }
    }
    let mut expected = String::from("Time,UTC,Temperature,Humidity,CO2\r\n");
    for (t, values) in &rows {
        let offset = if *t < 1_761_440_400 { "+02:00" } else { "+01:00" };
        expected += &format!(
            "{},{offset},{},{},{}\r\n",
            rome_time(*t),
            number_text(values[0]),
            number_text(values[1]),
            number_text(values[2])
        );
    }
    let raw = csv_of(
        &fx,
        &body(
            &[("time", "Time"), ("utcOffset", "UTC"), ("value", "Value")],
            None,
        ),
    )
    .await;
    assert_eq!(raw, expected);
    assert!(
        raw.contains("T02:00:00+02:00,") && raw.contains("T02:00:00+01:00,"),
        "the hour, twice"
    );

    // Decimated: a row per quarter of an hour, each target's mean and count.
    let mut expected =
        String::from("Time,Temperature,Humidity,CO2,Points (Temperature),Points (Humidity),Points (CO2)\r\n");
    for start in (FROM..TO).step_by(900) {
        let (means, counts): (Vec<String>, Vec<String>) = series
            .iter()
            .map(|(_, points)| {
                let values: Vec<f64> = points
                    .iter()
                    .filter(|(t, _)| (start..start + 900).contains(t))
                    .map(|(_, v)| *v)
                    .collect();
                let mean = (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64);
                (number_text(mean), values.len().to_string())
            })
            .unzip();
        expected += &format!(
            "{},{},{}\r\n",
            rome_time(start),
            means.join(","),
            counts.join(",")
        );
    }
    let decimated = csv_of(
        &fx,
        &body(
            &[("time", "Time"), ("value", "Value"), ("count", "Points")],
            Some(json!({"ds": "15m", "dsf": "avg"})),
        ),
    )
    .await;
    assert_eq!(decimated, expected);
}

#[tokio::test]
async fn a_wide_file_of_targets_with_different_times_continues_across_invocations_unchanged() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    // Pages of ten, each answer 15 ms: many pieces per target, so the merged stream pauses often.
    fx.serve_messages_slowly(messages(), std::time::Duration::from_millis(15), 10)
        .await;
    let alice = someone();
    let request = body(
        &[("time", "Time"), ("utcOffset", "UTC"), ("value", "Value")],
        None,
    );
    let reference = fx.exported_text(&alice, &request).await;
    let event = fx.create_run(&alice, &request).await;
    let queue = integration_tests::doubles::Launches::default();
    // 60 ms an invocation: the job pauses several times. Each leg moves on by at least one
    // boundary of the merged stream (the oldest of the three targets' pages); on a machine busy
    // with other tests that may be all it does, so the job may take a few hundred legs.
    let config = run_export::RunConfig {
        budget: Some(chrono::TimeDelta::milliseconds(60)),
        max_legs: 1000,
        ..fx.run_config.clone()
    };
    let deps = run_export::Deps {
        launcher: &queue,
        config: &config,
        ..fx.run_deps()
    };
    let invocations = run_to_end(deps, &queue, event.clone(), 1000).await;
    assert!(invocations >= 3, "{invocations} invocations");
    let got = String::from_utf8(fx.download(&alice, &event.export_id.to_string()).await).expect("UTF-8");
    assert_eq!(
        got, reference,
        "byte for byte the file of a run that never stopped"
    );
}

#[tokio::test]
async fn a_decimated_wide_workbook_charts_a_line_per_target() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    serve(&mut fx).await;
    let mut request = body(
        &[("time", "Time"), ("value", "Value"), ("count", "Points")],
        Some(json!({"ds": "15m", "dsf": "avg"})),
    );
    request["format"]["extension"] = json!("xlsx");
    let alice = someone();
    let event = fx.create_run(&alice, &request).await;
    let outcome = run_export::handle(fx.run_deps(), event.clone())
        .await
        .expect("runs");
    assert_eq!(outcome, run_export::Outcome::Done);
    let bytes = fx.download(&alice, &event.export_id.to_string()).await;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a workbook");
    let mut part = |name: &str| {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut archive.by_name(name).expect(name), &mut text).expect("text");
        text
    };
    let chart = part("xl/charts/chart1.xml");
    let workbook = part("xl/workbook.xml");
    assert_eq!(chart.matches("<c:ser>").count(), 3, "a line per target: {chart}");
    for (k, name) in ["Temperature", "Humidity", "CO2"].iter().enumerate() {
        assert!(
            chart.contains(&format!("<c:v>{name}</c:v>")),
            "{name} names a line: {chart}"
        );
        // Each line's values are its target's value column (B, C, D), the times column A.
        let column = ["B", "C", "D"][k];
        assert!(
            chart.contains("$A$2:$A$9</c:f>") && chart.contains(&format!("${column}$2:${column}$9</c:f>")),
            "{name}: times in A, values in {column}: {chart}"
        );
    }
    assert!(chart.contains("<c:legend>"), "several lines get a legend");
    assert!(
        workbook.contains(r#"name="Temperature, Humidity, CO2""#) && workbook.contains(" chart\""),
        "the data sheet named after the targets, and the chart's sheet: {workbook}"
    );
}

#[tokio::test]
async fn every_leg_moves_on_even_when_its_budget_is_spent_before_it_reads() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    serve(&mut fx).await;
    let alice = someone();
    let request = body(&[("time", "Time"), ("value", "Value")], None);
    let reference = fx.exported_text(&alice, &request).await;
    let event = fx.create_run(&alice, &request).await;
    let queue = integration_tests::doubles::Launches::default();
    // A budget spent before the leg begins (a slow start: a cold container, a busy host):
    // each leg still takes the read to its next boundary, so the job ends.
    let config = run_export::RunConfig {
        budget: Some(chrono::TimeDelta::zero()),
        max_legs: 1000,
        ..fx.run_config.clone()
    };
    let deps = run_export::Deps {
        launcher: &queue,
        config: &config,
        ..fx.run_deps()
    };
    let invocations = run_to_end(deps, &queue, event.clone(), 300).await;
    assert!(invocations >= 3, "{invocations} invocations");
    let got = String::from_utf8(fx.download(&alice, &event.export_id.to_string()).await).expect("UTF-8");
    assert_eq!(got, reference, "the same file as a run that never stopped");
}
