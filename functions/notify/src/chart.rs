//! The small chart an email carries for each decimated item: a line of the series' buckets in
//! the export's timezone (a wide item's: a line per target, with a legend), drawn by plotters into a bitmap with an embedded font (DejaVu Sans:
//! Lambda has no system fonts) and encoded as PNG; and its text fallback.

use std::sync::OnceLock;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use plotters::coord::combinators::BindKeyPoints;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use exporter_core::domain::files::ChartSeries;
use exporter_core::render::axis::time_ticks;

/// The chart's size in pixels.
pub const WIDTH: u32 = 640;
pub const HEIGHT: u32 = 320;

const FONT: &[u8] = include_bytes!("../../../shared/assets/DejaVuSans.ttf");

/// Registers the embedded font once; `false` when it cannot be.
fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| register_font("sans-serif", FontStyle::Normal, FONT).is_ok())
}

/// The colours of a chart's lines, in turn (a wide item's targets).
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// A line's points (Unix nanoseconds), without values that are not finite.
type Drawn = Vec<(i64, f64)>;

/// The series drawn as a PNG of [`WIDTH`] x [`HEIGHT`]: a line each, with a legend when there
/// are several.
pub fn png(series: &ChartSeries) -> Result<Vec<u8>, String> {
    if !font_ready() {
        return Err("the embedded font cannot be read".into());
    }
    let tz: Tz = series.timezone.parse().unwrap_or(Tz::UTC);
    let lines: Vec<(&str, Drawn)> = series
        .lines
        .iter()
        .map(|line| {
            let points = line
                .points
                .iter()
                .filter(|(_, v)| v.is_finite())
                .copied()
                .collect();
            (line.name.as_str(), points)
        })
        .collect();
    let all = || lines.iter().flat_map(|(_, points)| points.iter());
    let (Some(first), Some(last)) = (all().map(|p| p.0).min(), all().map(|p| p.0).max()) else {
        return Err("no value to draw".into());
    };
    let (mut low, mut high) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), (_, v)| {
        (l.min(*v), h.max(*v))
    });
    if high - low < f64::EPSILON * high.abs().max(1.0) {
        // A flat line: some room above and below it.
        (low, high) = (low - 1.0, high + 1.0);
    }
    let margin = (high - low) * 0.05;
    let (start, end) = (first, last.max(first.saturating_add(1_000_000_000)));
    // Labels at round local times, evenly on the wall clock, as many as fit.
    let ticks = time_ticks(tz, (start, end), 6);
    let label = |t: &i64| {
        ticks
            .at
            .iter()
            .position(|at| at == t)
            .map(|i| ticks.labels[i].clone())
            .unwrap_or_default()
    };
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
            .build_cartesian_2d(
                (start..end).with_key_points(ticks.at.clone()),
                (low - margin)..(high + margin),
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(ticks.at.len().max(1))
            .y_labels(5)
            .x_label_formatter(&label)
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, (name, points)) in lines.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
        }
        if lines.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK.mix(0.3))
                .label_font(("sans-serif", 12))
                .draw()
                .map_err(|e| e.to_string())?;
        }
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

/// What the text part says in place of the chart: the span and, for each line, how many
/// values, the lowest, the highest and the last.
pub fn fallback(series: &ChartSeries) -> String {
    let tz: Tz = series.timezone.parse().unwrap_or(Tz::UTC);
    let at = |t: i64| {
        tz.from_utc_datetime(&DateTime::<Utc>::from_timestamp_nanos(t).naive_utc())
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    };
    let times = series.lines.iter().flat_map(|l| l.points.iter().map(|(t, _)| *t));
    let (Some(from), Some(to)) = (times.clone().min(), times.max()) else {
        return format!("{}: no values.", series.label);
    };
    let summary = |points: &[(i64, f64)]| {
        let values = points.iter().map(|(_, v)| *v).filter(|v| v.is_finite());
        let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(v), h.max(v))
        });
        let last = points.last().map_or(f64::NAN, |(_, v)| *v);
        format!("lowest {low}, highest {high}, last {last}")
    };
    match series.lines.as_slice() {
        [line] => format!(
            "{}: {} values from {} to {}; {}.",
            series.label,
            line.points.len(),
            at(from),
            at(to),
            summary(&line.points)
        ),
        lines => {
            let each: Vec<String> = lines
                .iter()
                .map(|l| match l.points.is_empty() {
                    true => format!("{}: no values", l.name),
                    false => format!("{}: {} values, {}", l.name, l.points.len(), summary(&l.points)),
                })
                .collect();
            format!(
                "{}: from {} to {}; {}.",
                series.label,
                at(from),
                at(to),
                each.join("; ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use exporter_core::domain::files::ChartLine;

    use super::*;

    #[test]
    fn a_series_becomes_a_png_of_the_set_size_and_a_line_of_text() {
        let line = |name: &str, base: f64| ChartLine {
            name: name.into(),
            points: (0..96)
                .map(|k| {
                    (
                        1_761_429_600_000_000_000 + k * 900_000_000_000,
                        base + (k as f64 / 7.0).sin(),
                    )
                })
                .collect(),
            summary: None,
            band: Vec::new(),
        };
        let series = ChartSeries {
            label: "Température".into(),
            timezone: "Europe/Rome".into(),
            lines: vec![line("Température", 20.0)],
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
            lines: vec![ChartLine {
                name: "x".into(),
                points: vec![(0, 5.0)],
                summary: None,
                band: Vec::new(),
            }],
            ..series.clone()
        };
        assert!(png(&flat).is_ok(), "one point, a flat line");
        // A wide item's lines: drawn together, each summed up in the text.
        let wide = ChartSeries {
            label: "Temperature, Humidity".into(),
            lines: vec![
                line("Temperature", 20.0),
                line("Humidity", 50.0),
                ChartLine {
                    name: "CO2".into(),
                    points: Vec::new(),
                    summary: None,
                    band: Vec::new(),
                },
            ],
            ..series
        };
        assert_eq!(png(&wide).map(|p| p.len() > 1000), Ok(true));
        let text = fallback(&wide);
        assert!(
            text.starts_with("Temperature, Humidity: from 2025-10-26 00:00 CEST to 2025-10-26 22:45 CET; Temperature: 96 values, lowest ")
                && text.contains("; Humidity: 96 values, lowest ")
                && text.ends_with("; CO2: no values."),
            "{text}"
        );
    }
}

#[cfg(test)]
mod axis_tests {
    use exporter_core::domain::files::ChartLine;

    use super::*;

    /// Dark pixels of the band under the plot, by column: where the time labels are written.
    fn label_columns(png_bytes: &[u8]) -> Vec<bool> {
        let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = decoder.read_info().expect("a PNG");
        let mut pixels = vec![0; reader.output_buffer_size()];
        reader.next_frame(&mut pixels).expect("a frame");
        let width = WIDTH as usize;
        let mut columns = vec![false; width];
        // The x labels' band: the last 28 pixels but the margin.
        for y in (HEIGHT as usize - 26)..(HEIGHT as usize - 10) {
            for (x, column) in columns.iter_mut().enumerate() {
                let p = &pixels[(y * width + x) * 3..][..3];
                if p.iter().all(|c| *c < 128) {
                    *column = true;
                }
            }
        }
        columns
    }

    #[test]
    fn an_hour_a_day_a_week_and_a_year_get_several_labels_across_the_axis() {
        let from = 1_761_429_600_i64;
        for (what, seconds, step) in [
            ("hour", 3_600, 60),
            ("day", 90_000, 900),
            ("week", 7 * 86_400, 3_600),
            ("year", 365 * 86_400, 86_400),
        ] {
            let series = ChartSeries {
                label: what.into(),
                timezone: "Europe/Rome".into(),
                lines: vec![ChartLine {
                    name: what.into(),
                    points: (0..seconds / step)
                        .map(|k| ((from + k * step) * 1_000_000_000, (k as f64 / 9.0).sin()))
                        .collect(),
                    summary: None,
                    band: Vec::new(),
                }],
            };
            let bytes = png(&series).expect("drawn");
            if let Some(dir) = std::env::var_os("KEEP_CHARTS") {
                std::fs::write(std::path::Path::new(&dir).join(format!("{what}.png")), &bytes).expect("kept");
            }
            // Separate runs of label text: one per label.
            let columns = label_columns(&bytes);
            let mut runs = 0;
            let mut gap = 99;
            for dark in columns {
                if dark {
                    if gap > 12 {
                        runs += 1;
                    }
                    gap = 0;
                } else {
                    gap += 1;
                }
            }
            assert!((3..=8).contains(&runs), "{what}: {runs} labels on the time axis");
        }
    }
}
