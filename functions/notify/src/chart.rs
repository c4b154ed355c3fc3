//! The small chart an email carries for each decimated item: a line of the series' buckets in
//! the export's timezone, drawn by plotters into a bitmap with an embedded font (DejaVu Sans:
//! Lambda has no system fonts) and encoded as PNG; and its text fallback.

use std::sync::OnceLock;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use exporter::domain::files::ChartSeries;

/// The chart's size in pixels.
pub const WIDTH: u32 = 640;
pub const HEIGHT: u32 = 320;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the embedded font once; `false` when it cannot be.
fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| register_font("sans-serif", FontStyle::Normal, FONT).is_ok())
}

/// The series drawn as a PNG of [`WIDTH`] x [`HEIGHT`].
pub fn png(series: &ChartSeries) -> Result<Vec<u8>, String> {
    if !font_ready() {
        return Err("the embedded font cannot be read".into());
    }
    let tz: Tz = series.timezone.parse().unwrap_or(Tz::UTC);
    let points: Vec<(DateTime<Tz>, f64)> = series
        .points
        .iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(t, v)| {
            (
                tz.from_utc_datetime(&DateTime::<Utc>::from_timestamp_nanos(*t).naive_utc()),
                *v,
            )
        })
        .collect();
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Err("no value to draw".into());
    };
    let (mut low, mut high) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), (_, v)| {
            (l.min(*v), h.max(*v))
        });
    if high - low < f64::EPSILON * high.abs().max(1.0) {
        // A flat line: some room above and below it.
        (low, high) = (low - 1.0, high + 1.0);
    }
    let margin = (high - low) * 0.05;
    let (start, end) = (first.0, last.0.max(first.0 + chrono::TimeDelta::seconds(1)));
    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&series.label, ("sans-serif", 18))
            .margin(10)
            .margin_right(36)
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d(start..end, (low - margin)..(high + margin))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(5)
            .y_labels(5)
            .x_label_formatter(&|t: &DateTime<Tz>| t.format("%m-%d %H:%M").to_string())
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(points.iter().copied(), &BLUE))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, WIDTH, HEIGHT);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(&pixels).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// What the text part says in place of the chart.
pub fn fallback(series: &ChartSeries) -> String {
    let values = series.points.iter().map(|(_, v)| *v).filter(|v| v.is_finite());
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    let tz: Tz = series.timezone.parse().unwrap_or(Tz::UTC);
    let at = |t: i64| {
        tz.from_utc_datetime(&DateTime::<Utc>::from_timestamp_nanos(t).naive_utc())
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    };
    match (series.points.first(), series.points.last()) {
        (Some((from, _)), Some((to, last))) => format!(
            "{}: {} values from {} to {}; lowest {low}, highest {high}, last {last}.",
            series.label,
            series.points.len(),
            at(*from),
            at(*to)
        ),
        _ => format!("{}: no values.", series.label),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_becomes_a_png_of_the_set_size_and_a_line_of_text() {
        let series = ChartSeries {
            label: "Température".into(),
            timezone: "Europe/Rome".into(),
            points: (0..96)
                .map(|k| {
                    (
                        1_761_429_600_000_000_000 + k * 900_000_000_000,
                        20.0 + (k as f64 / 7.0).sin(),
                    )
                })
                .collect(),
        };
        let bytes = png(&series).expect("drawn");
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let reader = decoder.read_info().expect("a PNG");
        assert_eq!((reader.info().width, reader.info().height), (WIDTH, HEIGHT));
        let text = fallback(&series);
        assert!(
            text.starts_with("Température: 96 values from 2025-10-26 00:00 CEST to 2025-10-26 22:45 CET"),
            "{text}"
        );
        let flat = ChartSeries {
            points: vec![(0, 5.0)],
            ..series
        };
        assert!(png(&flat).is_ok(), "one point, a flat line");
    }
}
