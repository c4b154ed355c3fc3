//! How a job's files are named: safe file stems from an item's `filename` or label and window,
//! names made unique within a job, the keys they are stored under, their content types, and the
//! file name a key ends with. Pure rules shared by run-export (which writes the files) and notify
//! (which attaches and names them).

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::export::ExportId;
use super::recurrence::Window;
use super::request::{Extension, Item, JobFilename};

/// The content type of a zip of a job's files.
pub const ZIP_CONTENT_TYPE: &str = "application/zip";

/// The longest file stem written, in characters.
const MAX_STEM: usize = 120;

/// The content type of files in `extension`'s format.
pub fn content_type(extension: Extension) -> &'static str {
    super::formats::of(extension).content_type
}

/// The content type of an item's file in `extension`'s format (a report's items are CSVs of
/// their first rows).
pub fn item_content_type(extension: Extension) -> &'static str {
    match extension {
        Extension::Pdf => content_type(Extension::Csv),
        other => content_type(other),
    }
}

/// The key of a job's report: `report-{jobId}.pdf`, or the export's `format.filename` with
/// `.pdf`.
pub fn report_key(export: &ExportId, job_id: &str, named: Option<&JobFilename>) -> String {
    let stem = match named {
        Some(name) => job_stem(name, export, job_id),
        None => format!("report-{job_id}"),
    };
    format!("{}/{stem}.pdf", job_prefix(export, job_id))
}

/// The content type of a stored file, from the extension its name ends with (a zip, a
/// registered format's file; text otherwise).
pub fn content_type_of(name: &str) -> &'static str {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".zip") {
        return ZIP_CONTENT_TYPE;
    }
    super::formats::FORMATS
        .iter()
        .find(|f| lower.ends_with(&format!(".{}", f.file_extension)))
        .map_or(super::formats::of(Extension::Csv).content_type, |f| {
            f.content_type
        })
}

/// The folder of a job's files: `exports/{exportId}/{jobId}`.
pub fn job_prefix(export: &ExportId, job_id: &str) -> String {
    format!("exports/{export}/{job_id}")
}

/// The key of the zip of a job's files: `export-{jobId}.zip`, or the export's
/// `format.filename` (placeholders filled in, made safe) with `.zip`.
pub fn archive_key(export: &ExportId, job_id: &str, named: Option<&JobFilename>) -> String {
    let stem = match named {
        Some(name) => job_stem(name, export, job_id),
        None => format!("export-{job_id}"),
    };
    format!("{}/{stem}.zip", job_prefix(export, job_id))
}

/// The stem of a job's file (or zip) named by `format.filename`: its placeholders filled in,
/// a known extension taken off, made safe as [`file_stem`] makes an item's.
pub fn job_stem(name: &JobFilename, export: &ExportId, job_id: &str) -> String {
    safe_stem(without_extension(&name.fill(&export.to_string(), job_id)))
}

/// `name` without a file extension the service writes (any case).
fn without_extension(name: &str) -> &str {
    let lower = name.to_ascii_lowercase();
    let known = std::iter::once("zip").chain(super::formats::FORMATS.iter().map(|f| f.file_extension));
    for extension in known {
        if lower.len() > extension.len() + 1
            && lower.ends_with(extension)
            && lower[..lower.len() - extension.len()].ends_with('.')
        {
            return &name[..name.len() - extension.len() - 1];
        }
    }
    name
}

/// The key of the series of a decimated item (a wide one's, a line per target), kept beside
/// the job's files for the chart in its email.
pub fn chart_key(export: &ExportId, job_id: &str, item: usize) -> String {
    format!("{}/.charts/item-{item}.json", job_prefix(export, job_id))
}

/// A decimated item's series as its email's chart shows it: the item's label (a wide item's
/// targets'), the export's timezone, and a line of buckets (a wide item: one per target).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartSeries {
    pub label: String,
    pub timezone: String,
    pub lines: Vec<ChartLine>,
}

/// One line of a chart: its name (the item's label, or a wide item's target's) and its
/// buckets' starts (Unix nanoseconds) and values.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartLine {
    pub name: String,
    pub points: Vec<(i64, f64)>,
    /// What every value of the line amounts to (absent in series stored before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<LineSummary>,
    /// The kept points' buckets' lowest and highest values (start, min, max), where the data
    /// has them: a decimated series'.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub band: Vec<(i64, f64, f64)>,
}

/// What a line's values amount to, over every one of them (not only the kept points).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineSummary {
    pub count: u64,
    /// The first and last value's time (Unix nanoseconds).
    pub first_ns: i64,
    pub last_ns: i64,
    pub lowest: f64,
    pub highest: f64,
    /// The sum of the values, added in order, divided by their count.
    pub mean: f64,
}

/// A line's summary as it grows, exact across invocations (values as their bits).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    pub count: u64,
    pub first_ns: i64,
    pub last_ns: i64,
    pub lowest: u64,
    pub highest: u64,
    pub sum: u64,
}

impl Tally {
    pub fn add(&mut self, at_ns: i64, value: f64) {
        if !value.is_finite() {
            return;
        }
        if self.count == 0 {
            *self = Self {
                count: 1,
                first_ns: at_ns,
                last_ns: at_ns,
                lowest: value.to_bits(),
                highest: value.to_bits(),
                sum: value.to_bits(),
            };
            return;
        }
        self.count += 1;
        self.last_ns = at_ns;
        self.lowest = f64::from_bits(self.lowest).min(value).to_bits();
        self.highest = f64::from_bits(self.highest).max(value).to_bits();
        self.sum = (f64::from_bits(self.sum) + value).to_bits();
    }

    /// The summary, once there is a value.
    pub fn summary(&self) -> Option<LineSummary> {
        (self.count > 0).then(|| LineSummary {
            count: self.count,
            first_ns: self.first_ns,
            last_ns: self.last_ns,
            lowest: f64::from_bits(self.lowest),
            highest: f64::from_bits(self.highest),
            mean: f64::from_bits(self.sum) / self.count as f64,
        })
    }
}

/// The most buckets kept for a chart (a 640-pixel chart shows no more).
pub const CHART_MAX_POINTS: usize = 4_000;

/// A series' buckets for its chart, thinned as they come so that at most [`CHART_MAX_POINTS`]
/// are kept: when full, every other one is dropped and from then on only every `stride`-th
/// bucket is kept, so the kept ones stay evenly spread whatever the series' length. Values as
/// their bits, so that a checkpoint gives them back exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartPoints {
    pub points: Vec<(i64, u64)>,
    pub stride: u64,
    pub seen: u64,
    /// Every value's summary (absent in checkpoints written before it: counted from then on).
    #[serde(default)]
    pub tally: Tally,
    /// Beside each kept point, its bucket's lowest and highest value (bits), when every point
    /// pushed had them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub band: Vec<(u64, u64)>,
}

impl ChartPoints {
    pub fn push(&mut self, start_ns: i64, value: f64) {
        self.push_with_band(start_ns, value, None);
    }

    /// Keeps a point with its bucket's lowest and highest value.
    pub fn push_with_band(&mut self, start_ns: i64, value: f64, band: Option<(f64, f64)>) {
        self.tally.add(start_ns, value);
        let stride = self.stride.max(1);
        // A band only while every point pushed has one.
        let banded = band.is_some() && self.band.len() == self.points.len();
        if self.seen.is_multiple_of(stride) {
            match band {
                Some((low, high)) if banded => self.band.push((low.to_bits(), high.to_bits())),
                _ => self.band.clear(),
            }
            self.points.push((start_ns, value.to_bits()));
            if self.points.len() >= CHART_MAX_POINTS {
                // Every other point goes; the band of each one kept takes in the next one's.
                if self.band.len() == self.points.len() {
                    self.band = self.band.chunks(2).map(widest).collect();
                }
                let mut k = 0;
                self.points.retain(|_| {
                    k += 1;
                    k % 2 == 1
                });
                self.stride = stride * 2;
            }
        } else {
            match (band, self.band.last_mut()) {
                // A bucket not kept: its extremes widen the band of the kept one before it.
                (Some((low, high)), Some(last)) if banded => {
                    *last = widest(&[*last, (low.to_bits(), high.to_bits())])
                }
                _ => self.band.clear(),
            }
        }
        self.seen += 1;
    }

    /// The line of `name`: the kept points, their band where every one has it, and the summary.
    pub fn line(&self, name: String) -> ChartLine {
        let band = if self.band.len() == self.points.len() {
            self.points
                .iter()
                .zip(&self.band)
                .map(|((t, _), (low, high))| (*t, f64::from_bits(*low), f64::from_bits(*high)))
                .collect()
        } else {
            Vec::new()
        };
        ChartLine {
            name,
            points: self.values(),
            summary: self.tally.summary(),
            band,
        }
    }

    /// The kept buckets: (start, value).
    pub fn values(&self) -> Vec<(i64, f64)> {
        self.points
            .iter()
            .map(|(t, v)| (*t, f64::from_bits(*v)))
            .collect()
    }
}

/// The lowest of the lows and the highest of the highs (values as bits).
fn widest(bands: &[(u64, u64)]) -> (u64, u64) {
    let low = bands
        .iter()
        .map(|b| f64::from_bits(b.0))
        .fold(f64::INFINITY, f64::min);
    let high = bands
        .iter()
        .map(|b| f64::from_bits(b.1))
        .fold(f64::NEG_INFINITY, f64::max);
    (low.to_bits(), high.to_bits())
}

/// The file name a key ends with (what a download or an attachment is called).
pub fn file_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// A safe file stem: the item's `filename` (without a known extension), or its label (else its
/// SenML name) and window; letters, digits and `-_.` only, at most 120 characters, never empty.
pub fn file_stem(item: &Item, window: &Window) -> String {
    let stem = match &item.filename {
        Some(name) => without_extension(name.as_str()).to_owned(),
        None => {
            let subject = item.label.as_deref().unwrap_or(item.target.as_str());
            let stamp = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
            match window.from {
                Some(from) => format!("{subject}_{}_{}", stamp(from), stamp(window.to)),
                None => format!("{subject}_until_{}", stamp(window.to)),
            }
        }
    };
    safe_stem(&stem)
}

/// The names Windows keeps for devices, which no file may have (whatever its extension).
const RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
    "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// A stem safe in an S3 key and on the file systems people save files to: letters, digits and
/// `-_.` only (others become `_`), at most 120 characters, no leading or trailing `.`, never
/// empty, never a name Windows keeps for a device.
fn safe_stem(stem: &str) -> String {
    let safe: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(MAX_STEM)
        .collect();
    let safe = safe.trim_matches('.').to_owned();
    if safe.is_empty() {
        "export".to_owned()
    } else if RESERVED
        .iter()
        .any(|r| r.eq_ignore_ascii_case(safe.split('.').next().unwrap_or("")))
    {
        format!("_{safe}")
    } else {
        safe
    }
}

/// The names already taken in one job, compared without case (as the file systems people unzip
/// onto do).
#[derive(Debug, Default)]
pub struct Names(HashSet<String>);

impl Names {
    /// `stem`, or `stem-2`, `stem-3`, ... when it is taken; the name returned is taken from now on.
    pub fn unique(&mut self, stem: String) -> String {
        let mut name = stem.clone();
        let mut n = 2;
        while !self.0.insert(name.to_ascii_lowercase()) {
            name = format!("{stem}-{n}");
            n += 1;
        }
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::recurrence::ItemSpan;
    use crate::domain::request::{Filename, SenmlName, Subtopic};

    fn item(label: Option<&str>, filename: Option<&str>) -> Item {
        Item {
            target: SenmlName::parse("urn:dev:temp").expect("a name"),
            label: label.map(str::to_owned),
            also: Vec::new(),
            domain_id: None,
            channel_id: uuid::Uuid::nil(),
            subtopic: Subtopic::parse("events.data", '.').expect("a subtopic"),
            table: None,
            span: ItemSpan {
                from: None,
                to: None,
                period: None,
            },
            decimation: None,
            transform: None,
            filename: filename.map(|f| Filename::parse(f).expect("a file name")),
            long: false,
        }
    }

    fn window(from: Option<i64>, to: i64) -> Window {
        Window {
            from: from.and_then(|t| DateTime::from_timestamp(t, 0)),
            to: DateTime::from_timestamp(to, 0).expect("in range"),
        }
    }

    #[test]
    fn a_stem_is_the_label_and_the_window_in_utc() {
        let stem = file_stem(
            &item(Some("Kitchen"), None),
            &window(Some(1_767_225_600), 1_767_312_000),
        );
        assert_eq!(stem, "Kitchen_20260101T000000Z_20260102T000000Z");
        let open = file_stem(&item(None, None), &window(None, 1_767_312_000));
        assert_eq!(open, "urn_dev_temp_until_20260102T000000Z");
    }

    #[test]
    fn a_chosen_file_name_loses_its_extension_and_unsafe_characters() {
        let w = window(None, 1_767_312_000);
        assert_eq!(file_stem(&item(None, Some("Report é 1.CSV")), &w), "Report___1");
        assert_eq!(file_stem(&item(None, Some("data.xlsx")), &w), "data");
        let long = "x".repeat(119) + "yz";
        assert_eq!(file_stem(&item(None, Some(&long[..120])), &w).len(), 120);
    }

    #[test]
    fn a_stem_never_ends_in_a_dot_nor_holds_unsafe_characters() {
        let w = window(None, 1_767_312_000);
        assert_eq!(file_stem(&item(None, Some("Ω")), &w), "_");
        assert_eq!(file_stem(&item(None, Some("x.")), &w), "x");
    }

    #[test]
    fn a_job_s_file_name_fills_its_placeholders_and_is_made_safe() {
        let id: ExportId = "0115c85d-ef3e-4de9-9732-d0c5c4f2c482".parse().expect("an id");
        let named = |text: &str| JobFilename::parse(text).expect("a job file name");
        let job = "20260101T000000000Z";
        assert_eq!(
            job_stem(&named("Report {{jobId}} of {{exportId}}.zip"), &id, job),
            "Report_20260101T000000000Z_of_0115c85d-ef3e-4de9-9732-d0c5c4f2c482"
        );
        assert_eq!(
            archive_key(&id, job, Some(&named("Weekly report é.XLSX"))),
            format!("exports/{id}/{job}/Weekly_report__.zip")
        );
        assert_eq!(
            job_stem(&named("con.csv"), &id, job),
            "_con",
            "a device name of Windows"
        );
        assert_eq!(job_stem(&named("Lpt1.backup"), &id, job), "_Lpt1.backup");
        assert_eq!(job_stem(&named("console"), &id, job), "console");
        assert!(
            JobFilename::parse("a {{status}}").is_err(),
            "a placeholder a file cannot know"
        );
        assert!(JobFilename::parse("a/b").is_err());
        assert!(JobFilename::parse("").is_err());
    }

    #[test]
    fn names_are_unique_within_a_job_without_regard_to_case() {
        let mut names = Names::default();
        assert_eq!(names.unique("a".into()), "a");
        assert_eq!(names.unique("A".into()), "A-2");
        assert_eq!(names.unique("a".into()), "a-3");
        assert_eq!(names.unique("b".into()), "b");
    }

    #[test]
    fn thinned_points_keep_every_bucket_s_extremes_in_their_band_and_count_every_value() {
        let mut chart = ChartPoints::default();
        let n = 3 * CHART_MAX_POINTS as i64 + 7;
        for k in 0..n {
            let spike = if k == 4_321 { 1_000.0 } else { 1.0 };
            chart.push_with_band(k, 0.5, Some((-spike, spike)));
        }
        let line = chart.line("x".into());
        assert!(line.points.len() < CHART_MAX_POINTS);
        assert_eq!(
            line.band.len(),
            line.points.len(),
            "a band beside every kept point"
        );
        assert_eq!(
            line.band.iter().map(|b| b.2).fold(0.0, f64::max),
            1_000.0,
            "the spike is kept"
        );
        assert_eq!(line.band.iter().map(|b| b.1).fold(0.0, f64::min), -1_000.0);
        let summary = line.summary.expect("a summary");
        assert_eq!(
            (summary.count, summary.first_ns, summary.last_ns),
            (n as u64, 0, n - 1)
        );
        assert_eq!(summary.mean, 0.5);
        // One value without a band: no band at all.
        chart.push(n, 0.5);
        assert!(chart.line("x".into()).band.is_empty());
    }

    #[test]
    fn keys_name_their_file_and_its_content_type() {
        let id = ExportId::new_random();
        let key = archive_key(&id, "20260101T000000000Z", None);
        assert_eq!(
            key,
            format!("exports/{id}/20260101T000000000Z/export-20260101T000000000Z.zip")
        );
        assert_eq!(file_name(&key), "export-20260101T000000000Z.zip");
        assert_eq!(file_name("plain"), "plain");
        assert_eq!(content_type_of(&key), ZIP_CONTENT_TYPE);
        assert_eq!(content_type_of("a.XLSX"), content_type(Extension::Xlsx));
        assert_eq!(content_type_of("a.csv"), content_type(Extension::Csv));
        assert_eq!(content_type(Extension::Xls), content_type(Extension::Xlsx));
    }

    #[test]
    fn a_long_series_is_thinned_evenly_to_at_most_the_chart_s_points() {
        let mut chart = ChartPoints::default();
        for k in 0..10_000i64 {
            chart.push(k, k as f64);
        }
        let values = chart.values();
        assert!(
            values.len() < CHART_MAX_POINTS && values.len() > CHART_MAX_POINTS / 4,
            "{}",
            values.len()
        );
        let step = values[1].0 - values[0].0;
        assert!(
            values.windows(2).all(|w| w[1].0 - w[0].0 == step),
            "evenly spread"
        );
        assert_eq!(values[0], (0, 0.0));
        // Stopped and restored (as a checkpoint does), it goes on the same.
        let mut whole = ChartPoints::default();
        let mut split = ChartPoints::default();
        for k in 0..9_000i64 {
            whole.push(k, 1.0);
            if k == 5_000 {
                split = serde_json::from_str(&serde_json::to_string(&split).expect("json")).expect("back");
            }
            split.push(k, 1.0);
        }
        assert_eq!(whole, split);
    }
}
