//! Gaps and counters end to end (run-export on moto, a local reader serving a recorded counter):
//! `decimation.fill` (`null`, `previous`) and `transform: delta`, on the autumn DST day in Rome
//! (25 hourly buckets), against rows computed here.

use serde_json::{json, Value};

use integration_tests::{number_text, rome_time, someone, Fixture};

const CHANNEL: &str = "0115c85d-ef3e-4de9-9732-d0c5c4f2c482";
/// 2025-10-26 in Rome: 25 hours, local midnight to local midnight.
const DAY_FROM: i64 = 1_761_429_600;
const DAY_TO: i64 = 1_761_519_600;
const HOUR: i64 = 3600;

/// A counter read every ten minutes from the third hour of the day to the twenty-second, but
/// not in hours 4 to 6 (the repeated 02:00-03:00 among them): it grows by 0.5, 1, 1.5... and is
/// reset to 2 at the start of hour 15.
fn counter() -> Vec<(i64, f64)> {
    let mut points = Vec::new();
    let mut value = 100.0;
    let mut step = 0.5;
    for hour in 2..22 {
        if (4..=6).contains(&hour) {
            continue;
        }
        for minute in (0..60).step_by(10) {
            let t = DAY_FROM + hour * HOUR + minute * 60;
            if hour == 15 && minute == 0 {
                value = 2.0;
            } else {
                value += step;
                step += 0.5;
            }
            points.push((t, value));
        }
    }
    points
}

async fn serve(fx: &mut Fixture, points: &[(i64, f64)]) {
    let messages = points
        .iter()
        .map(|(t, v)| {
            json!({"channel": CHANNEL, "subtopic": "events.data", "name": "energy", "protocol": "mqtt",
                   "publisher": "p", "unit": "kWh", "time": *t as f64, "value": v})
        })
        .collect();
    fx.serve_messages(messages).await;
}

fn body(params: Value, columns: &[&str]) -> Value {
    let mut item = json!({"target": {"value": "energy"}, "channelId": CHANNEL, "subtopic": "events.data",
        "from": DAY_FROM, "to": DAY_TO});
    if let (Value::Object(item), Value::Object(extra)) = (&mut item, params) {
        item.extend(extra);
    }
    json!({
        "format": {"extension": "csv", "timezone": "Europe/Rome",
            "columns": columns.iter().map(|c| json!({"id": c, "label": c})).collect::<Vec<_>>()},
        "type": "oneTime",
        "items": [{"params": item}],
        "notification": {"messages": []}
    })
}

async fn csv_of(fx: &Fixture, body: &Value) -> String {
    fx.exported_text(&someone(), body).await
}

/// The hourly buckets of the day: their start and the values in them.
fn hourly(points: &[(i64, f64)]) -> Vec<(i64, Vec<f64>)> {
    (0..25)
        .map(|h| {
            let start = DAY_FROM + h * HOUR;
            let values = points
                .iter()
                .filter(|(t, _)| (start..start + HOUR).contains(t))
                .map(|(_, v)| *v)
                .collect();
            (start, values)
        })
        .collect()
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

#[tokio::test]
async fn empty_buckets_are_filled_with_nothing_or_the_last_value_across_the_dst_day() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let points = counter();
    serve(&mut fx, &points).await;
    let buckets = hourly(&points);
    assert_eq!(buckets.len(), 25);
    assert_eq!(
        buckets.iter().filter(|(_, v)| v.is_empty()).count(),
        8,
        "2 before, 3 within, 3 after"
    );
    for fill in ["null", "previous"] {
        let csv = csv_of(
            &fx,
            &body(
                json!({"decimation": {"ds": "1h", "dsf": "avg", "fill": fill}}),
                &["time", "value", "count"],
            ),
        )
        .await;
        let mut expected = String::from("time,value,count\r\n");
        let mut last = None;
        for (start, values) in &buckets {
            let value = match mean(values) {
                Some(m) => {
                    last = Some(m);
                    Some(m)
                }
                None if fill == "previous" => last,
                None => None,
            };
            expected += &format!(
                "{},{},{}\r\n",
                rome_time(*start),
                number_text(value),
                values.len()
            );
        }
        assert_eq!(csv, expected, "fill {fill}");
        assert_eq!(csv.matches("T02:00:00").count(), 2, "the repeated hour, twice");
    }
    // Without `fill`, as before: only buckets with points.
    let csv = csv_of(
        &fx,
        &body(
            json!({"decimation": {"ds": "1h", "dsf": "avg"}}),
            &["time", "count"],
        ),
    )
    .await;
    assert_eq!(csv.lines().count(), 1 + 17);
}

#[tokio::test]
async fn deltas_of_a_counter_raw_and_summed_by_the_hour_show_its_reset() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let points = counter();
    serve(&mut fx, &points).await;
    let deltas: Vec<(i64, Option<f64>)> = points
        .iter()
        .enumerate()
        .map(|(i, (t, v))| (*t, i.checked_sub(1).map(|j| v - points[j].1)))
        .collect();
    assert_eq!(
        deltas.iter().filter(|(_, d)| d.is_some_and(|d| d < 0.0)).count(),
        1,
        "one reset"
    );
    let csv = csv_of(&fx, &body(json!({"transform": "delta"}), &["time", "value"])).await;
    let mut expected = String::from("time,value\r\n");
    for (t, d) in &deltas {
        expected += &format!("{},{}\r\n", rome_time(*t), number_text(*d));
    }
    assert_eq!(
        csv, expected,
        "the first point has no delta; the reset is negative"
    );
    // Summed by the hour: the first point (no delta) is not counted.
    let csv = csv_of(
        &fx,
        &body(
            json!({"transform": "delta", "decimation": {"ds": "1h", "dsf": "sum", "fill": "null"}}),
            &["time", "value", "count"],
        ),
    )
    .await;
    let known: Vec<(i64, f64)> = deltas.iter().filter_map(|(t, d)| d.map(|d| (*t, d))).collect();
    let mut expected = String::from("time,value,count\r\n");
    for (start, values) in hourly(&known) {
        let sum = (!values.is_empty()).then(|| values.iter().sum::<f64>());
        expected += &format!("{},{},{}\r\n", rome_time(start), number_text(sum), values.len());
    }
    assert_eq!(csv, expected);
}
