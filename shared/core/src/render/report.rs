//! The PDF report of a job (`"extension": "pdf"`): one document for all its items, drawn from
//! what the run kept, never from all the rows: each item's series (thinned to at most a few
//! thousand points), its summary (count, first and last time, lowest, highest, mean, over every
//! value) and its first rows (at most [`REPORT_TABLE_ROWS`]). A year of one-second data makes a
//! report of the same size as a day's.
//!
//! The pages are laid out first, as drawing operations ([`Op`]), and drawn by krilla second:
//! page numbers then know the page count. Text is DejaVu Sans, embedded (subset) with its
//! Unicode map, so it is selectable and extractable; charts are vector paths. Times are in the
//! export's zone with their offset (`2025-10-26 02:30:00 +01:00`), so the autumn's repeated
//! hour reads twice, told apart. The look (logo, colour, footer) is the operator's
//! ([`Branding`]), from configuration.

use std::sync::OnceLock;

use chrono::{DateTime, Offset, TimeZone};
use chrono_tz::Tz;
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Size, Transform};
use krilla::image::Image;
use krilla::metadata::Metadata;
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::{Font, TextDirection};
use krilla::Document;
use skrifa::instance::{LocationRef, Size as FontSize};
use skrifa::MetadataProvider;

use crate::domain::files::{ChartLine, LineSummary};
use crate::domain::request::PdfPages;
use crate::render::axis::time_ticks;
pub use crate::render::csv_file::REPORT_TABLE_ROWS;

/// DejaVu Sans (its licence beside it).
const FONT: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");

/// The operator's look of every report.
#[derive(Clone, Debug, PartialEq)]
pub struct Branding {
    /// A PNG or JPEG drawn at the top left of the first page.
    pub logo: Option<Vec<u8>>,
    /// The accent: the band at the top, headings, the charts' first line.
    pub colour: (u8, u8, u8),
    /// Text at the foot of every page, beside the page number.
    pub footer: String,
}

impl Default for Branding {
    fn default() -> Self {
        Self {
            logo: None,
            colour: (31, 119, 180),
            footer: String::new(),
        }
    }
}

/// Parses `#RRGGBB`.
pub fn colour(text: &str) -> Option<(u8, u8, u8)> {
    let hex = text.strip_prefix('#')?;
    if hex.len() != 6 || !hex.is_ascii() {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some((byte(0)?, byte(2)?, byte(4)?))
}

/// An item of the report.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportItem {
    /// Its label, else its SenML name(s).
    pub title: String,
    /// What its values are: `raw`, or the decimation (`15m avg`).
    pub what: String,
    /// Its window (Unix nanoseconds; `None`: from the beginning).
    pub window: (Option<i64>, i64),
    /// Its lines (a wide item's: one per target), as the run kept them.
    pub lines: Vec<ChartLine>,
    /// The rows of its file.
    pub rows: u64,
    /// Its first rows as the file has them: header, rows (at most [`REPORT_TABLE_ROWS`]).
    pub head: (Vec<String>, Vec<Vec<String>>),
}

/// A job's report.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub title: String,
    pub tz: Tz,
    /// When the job was made (its scheduled time), Unix nanoseconds.
    pub made_ns: i64,
    pub export_id: String,
    pub job_id: String,
    pub pages: PdfPages,
    pub items: Vec<ReportItem>,
}

/// Where text is anchored on its x.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Anchor {
    Left,
    Right,
    Centre,
}

/// A drawing operation of a page; y grows downwards from the page's top, in points.
#[derive(Clone, Debug, PartialEq)]
enum Op {
    Text {
        at: (f32, f32),
        size: f32,
        text: String,
        colour: (u8, u8, u8),
        anchor: Anchor,
    },
    Line {
        points: Vec<(f32, f32)>,
        width: f32,
        colour: (u8, u8, u8),
    },
    Area {
        points: Vec<(f32, f32)>,
        colour: (u8, u8, u8),
        opacity: f32,
    },
    Logo {
        at: (f32, f32),
        size: (f32, f32),
    },
}

const MARGIN: f32 = 42.0;
const GREY: (u8, u8, u8) = (110, 110, 110);
const BLACK: (u8, u8, u8) = (20, 20, 20);
const RULE: (u8, u8, u8) = (200, 200, 200);
const CHART_HEIGHT: f32 = 210.0;
/// The colours of a wide item's other lines.
const PALETTE: [(u8, u8, u8); 5] = [
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
];

/// The embedded font's advance widths.
struct Metrics {
    font: skrifa::FontRef<'static>,
    units_per_em: f32,
}

fn metrics() -> Option<&'static Metrics> {
    static METRICS: OnceLock<Option<Metrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| {
            let font = skrifa::FontRef::new(FONT).ok()?;
            let units_per_em = f32::from(
                font.metrics(FontSize::unscaled(), LocationRef::default())
                    .units_per_em,
            );
            Some(Metrics { font, units_per_em })
        })
        .as_ref()
}

/// The width of `c` at `size`, in points.
fn char_width(c: char, size: f32) -> f32 {
    let Some(m) = metrics() else {
        return size * 0.55;
    };
    let advance = m
        .font
        .charmap()
        .map(c)
        .and_then(|g| {
            m.font
                .glyph_metrics(FontSize::unscaled(), LocationRef::default())
                .advance_width(g)
        })
        .unwrap_or(m.units_per_em * 0.55);
    advance * size / m.units_per_em
}

/// The width of `text` at `size`, in points.
fn width(text: &str, size: f32) -> f32 {
    text.chars().map(|c| char_width(c, size)).sum()
}

/// `text` cut (with `…`) to fit `room` points at `size`: one pass over it, stopping once it is
/// past the room.
fn fit(text: &str, size: f32, room: f32) -> String {
    let ellipsis = char_width('…', size);
    let mut used = 0.0;
    let mut cut = 0;
    for (i, c) in text.char_indices() {
        let w = char_width(c, size);
        if used + w + ellipsis <= room {
            cut = i + c.len_utf8();
        }
        used += w;
        if used > room {
            return format!("{}…", &text[..cut]);
        }
    }
    text.to_owned()
}

/// A number as the CSV writes it: shortest round-trip form.
pub fn number(v: f64) -> String {
    let mut out = Vec::new();
    crate::render::cells::write_number(v, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// A time in `tz` with its offset: `2025-10-26 02:30:00 +01:00`.
pub fn local_time(tz: Tz, ns: i64) -> String {
    let at = tz.from_utc_datetime(&DateTime::from_timestamp_nanos(ns).naive_utc());
    let offset = at.offset().fix().local_minus_utc();
    let sign = if offset < 0 { '-' } else { '+' };
    let offset = offset.abs();
    format!(
        "{} {sign}{:02}:{:02}",
        at.format("%Y-%m-%d %H:%M:%S"),
        offset / 3600,
        (offset % 3600) / 60
    )
}

/// A time cell of the head (`2025-10-26T02:30:00+01:00`) as the report shows times.
fn cell_text(cell: &str) -> String {
    // An RFC 3339 time is ASCII: its offset is its last six bytes.
    let timed = cell.len() >= 25 && cell.is_ascii() && DateTime::parse_from_rfc3339(cell).is_ok();
    let at = cell.len().saturating_sub(6);
    match (timed, cell.get(..at), cell.get(at..)) {
        (true, Some(stamp), Some(offset)) if offset.starts_with(['+', '-']) => {
            format!("{} {offset}", stamp.replacen('T', " ", 1))
        }
        _ => cell.to_owned(),
    }
}

/// The pages being laid out.
struct Pages {
    size: (f32, f32),
    pages: Vec<Vec<Op>>,
    y: f32,
    title: String,
}

impl Pages {
    fn new(size: (f32, f32), title: String) -> Self {
        Self {
            size,
            pages: vec![Vec::new()],
            y: MARGIN,
            title,
        }
    }

    fn content_width(&self) -> f32 {
        self.size.0 - 2.0 * MARGIN
    }

    /// Where the page's content ends (the footer below it).
    fn bottom(&self) -> f32 {
        self.size.1 - MARGIN - 18.0
    }

    fn ops(&mut self) -> &mut Vec<Op> {
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    /// A new page, headed with the report's title.
    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = MARGIN;
        let title = fit(&self.title, 8.0, self.content_width());
        self.text((MARGIN, self.y + 8.0), 8.0, title, GREY, Anchor::Left);
        self.y += 20.0;
    }

    /// A new page unless `height` points still fit on this one.
    fn room(&mut self, height: f32) {
        if self.y + height > self.bottom() {
            self.new_page();
        }
    }

    fn text(&mut self, at: (f32, f32), size: f32, text: String, colour: (u8, u8, u8), anchor: Anchor) {
        self.ops().push(Op::Text {
            at,
            size,
            text,
            colour,
            anchor,
        });
    }

    /// A line of text at the cursor, which moves below it.
    fn line_of(&mut self, size: f32, text: &str, colour: (u8, u8, u8)) {
        self.room(size * 1.5);
        let text = fit(text, size, self.content_width());
        self.text((MARGIN, self.y + size), size, text, colour, Anchor::Left);
        self.y += size * 1.5;
    }

    /// `text` wrapped at spaces to the content's width, a line at a time.
    fn paragraph(&mut self, size: f32, text: &str, colour: (u8, u8, u8)) {
        let room = self.content_width();
        let mut line = String::new();
        for word in text.split(' ') {
            let longer = if line.is_empty() {
                word.to_owned()
            } else {
                format!("{line} {word}")
            };
            if !line.is_empty() && width(&longer, size) > room {
                self.line_of(size, &line, colour);
                line = word.to_owned();
            } else {
                line = longer;
            }
        }
        if !line.is_empty() {
            self.line_of(size, &line, colour);
        }
    }

    fn rule(&mut self, y: f32, colour: (u8, u8, u8)) {
        let x1 = self.size.0 - MARGIN;
        self.ops().push(Op::Line {
            points: vec![(MARGIN, y), (x1, y)],
            width: 0.5,
            colour,
        });
    }
}

/// The pages of `report`, as drawing operations.
fn lay_out(report: &Report, brand: &Branding, logo: Option<(u32, u32)>) -> Vec<Vec<Op>> {
    let (w, h) = report.pages.size.points();
    let size = if report.pages.landscape { (h, w) } else { (w, h) };
    let mut pages = Pages::new(size, report.title.clone());
    // The band at the top, the logo and the title block.
    pages.ops().push(Op::Area {
        points: vec![(0.0, 0.0), (size.0, 0.0), (size.0, 6.0), (0.0, 6.0)],
        colour: brand.colour,
        opacity: 1.0,
    });
    if let Some((lw, lh)) = logo.filter(|(lw, lh)| *lw > 0 && *lh > 0) {
        let height = 36.0;
        let width = (height * lw as f32 / lh as f32).min(pages.content_width() / 3.0);
        let top = pages.y;
        pages.ops().push(Op::Logo {
            at: (MARGIN, top),
            size: (width, width * lh as f32 / lw as f32),
        });
        pages.y += height + 10.0;
    }
    pages.line_of(18.0, &report.title, brand.colour);
    let windows: Vec<(Option<i64>, i64)> = report.items.iter().map(|i| i.window).collect();
    if let Some(first) = windows.first().filter(|w| windows.iter().all(|x| x == *w)) {
        pages.line_of(10.0, &window_text(report.tz, *first), BLACK);
    }
    pages.line_of(
        10.0,
        &format!("Made {}", local_time(report.tz, report.made_ns)),
        BLACK,
    );
    pages.line_of(
        8.0,
        &format!("Export {}, job {}", report.export_id, report.job_id),
        GREY,
    );
    pages.y += 8.0;
    for (k, item) in report.items.iter().enumerate() {
        if k > 0 {
            pages.new_page();
        }
        lay_out_item(&mut pages, report, item, brand);
    }
    // Every page's foot: the operator's text and the page's number.
    let count = pages.pages.len();
    let foot = size.1 - MARGIN + 4.0;
    let footer = fit(&brand.footer, 8.0, pages.content_width() - 80.0);
    for (i, page) in pages.pages.iter_mut().enumerate() {
        page.push(Op::Line {
            points: vec![(MARGIN, foot - 12.0), (size.0 - MARGIN, foot - 12.0)],
            width: 0.5,
            colour: RULE,
        });
        if !footer.is_empty() {
            page.push(Op::Text {
                at: (MARGIN, foot),
                size: 8.0,
                text: footer.clone(),
                colour: GREY,
                anchor: Anchor::Left,
            });
        }
        page.push(Op::Text {
            at: (size.0 - MARGIN, foot),
            size: 8.0,
            text: format!("Page {} of {count}", i + 1),
            colour: GREY,
            anchor: Anchor::Right,
        });
    }
    pages.pages
}

fn window_text(tz: Tz, (from, to): (Option<i64>, i64)) -> String {
    let from = from.map_or_else(|| "the beginning".to_owned(), |f| local_time(tz, f));
    format!("From {from} to {} ({})", local_time(tz, to), tz.name())
}

fn lay_out_item(pages: &mut Pages, report: &Report, item: &ReportItem, brand: &Branding) {
    pages.room(CHART_HEIGHT + 120.0);
    pages.line_of(13.0, &item.title, brand.colour);
    pages.line_of(
        9.0,
        &format!("{}; {}", item.what, window_text(report.tz, item.window)),
        GREY,
    );
    pages.y += 4.0;
    let drawn: Vec<&ChartLine> = item.lines.iter().filter(|l| !l.points.is_empty()).collect();
    if drawn.is_empty() {
        pages.line_of(10.0, "No values in the window.", BLACK);
    } else {
        chart(pages, report.tz, &drawn, brand);
    }
    // The summary: a block of figures per line.
    let summaries: Vec<(&str, LineSummary)> = item
        .lines
        .iter()
        .filter_map(|l| l.summary.map(|s| (l.name.as_str(), s)))
        .collect();
    if !summaries.is_empty() {
        pages.y += 6.0;
        pages.line_of(11.0, "Summary", brand.colour);
        let block = 250.0;
        let per_row = ((pages.content_width() / block).floor() as usize).max(1);
        for chunk in summaries.chunks(per_row) {
            pages.room(8.0 * 12.0);
            let top = pages.y;
            for (k, (name, s)) in chunk.iter().enumerate() {
                let x = MARGIN + k as f32 * block;
                let rows = [
                    ("Line", (*name).to_owned()),
                    ("Count", s.count.to_string()),
                    ("First", local_time(report.tz, s.first_ns)),
                    ("Last", local_time(report.tz, s.last_ns)),
                    ("Lowest", number(s.lowest)),
                    ("Highest", number(s.highest)),
                    ("Mean", number(s.mean)),
                ];
                for (r, (label, value)) in rows.iter().enumerate() {
                    let y = top + 10.0 + r as f32 * 12.0;
                    pages.text((x, y), 9.0, (*label).to_owned(), GREY, Anchor::Left);
                    let value = fit(value, 9.0, block - 62.0);
                    pages.text((x + 52.0, y), 9.0, value, BLACK, Anchor::Left);
                }
            }
            pages.y = top + 7.0 * 12.0 + 8.0;
        }
    }
    // The data, when short.
    pages.y += 6.0;
    let (header, rows) = &item.head;
    if item.rows == 0 {
        return;
    }
    if item.rows > REPORT_TABLE_ROWS || rows.len() as u64 != item.rows {
        pages.paragraph(
            9.0,
            &format!(
                "{} rows: more than the {REPORT_TABLE_ROWS} a report lists. The full data is in an export of the same items as csv, json, ndjson or parquet.",
                item.rows
            ),
            BLACK,
        );
        return;
    }
    pages.line_of(11.0, &format!("Data ({} rows)", item.rows), brand.colour);
    table(pages, header, rows);
}

/// The table of `rows`, its header repeated on each page.
fn table(pages: &mut Pages, header: &[String], rows: &[Vec<String>]) {
    let size = 7.5;
    let height = 10.5;
    let columns = header.len().max(1);
    let cell = pages.content_width() / columns as f32;
    let head = |pages: &mut Pages| {
        let y = pages.y + size;
        for (c, label) in header.iter().enumerate() {
            let text = fit(label, size, cell - 4.0);
            pages.text((MARGIN + c as f32 * cell, y), size, text, GREY, Anchor::Left);
        }
        pages.y += height;
        let y = pages.y - 2.0;
        pages.rule(y, RULE);
    };
    pages.room(height * 3.0);
    head(pages);
    for row in rows {
        if pages.y + height > pages.bottom() {
            pages.new_page();
            head(pages);
        }
        let y = pages.y + size;
        for (c, value) in row.iter().enumerate().take(columns) {
            let text = fit(&cell_text(value), size, cell - 4.0);
            pages.text((MARGIN + c as f32 * cell, y), size, text, BLACK, Anchor::Left);
        }
        pages.y += height;
    }
}

/// Round values for a value axis from `low` to `high` (about five), and their labels, written
/// with as many decimals as the step has.
fn value_ticks(low: f64, high: f64) -> Vec<(f64, String)> {
    let span = (high - low).abs();
    if !span.is_finite() || span == 0.0 {
        return vec![(low, number(low))];
    }
    let rough = span / 5.0;
    let exponent = rough.log10().floor();
    let magnitude = 10f64.powf(exponent);
    let (mantissa, step) = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| (*m, m * magnitude))
        .find(|(_, s)| span / s <= 6.0)
        .unwrap_or((10.0, magnitude * 10.0));
    let decimals = (-exponent).max(0.0) as usize + usize::from(mantissa == 2.5);
    let first = (low / step).ceil() as i64;
    (0..12)
        .map(|i| (first + i) as f64 * step)
        .take_while(|v| *v <= high + step * 1e-9)
        .map(|v| (v, format!("{v:.decimals$}")))
        .collect()
}

/// A vector chart of `lines` (the first in the brand's colour, with its min/max band where it
/// has one), its time axis labelled at round local times.
fn chart(pages: &mut Pages, tz: Tz, lines: &[&ChartLine], brand: &Branding) {
    let left = MARGIN + 52.0;
    let right = pages.size.0 - MARGIN - 8.0;
    let top = pages.y + 6.0;
    let bottom = top + CHART_HEIGHT - 24.0;
    let times = || lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let (Some(first), Some(last)) = (times().min(), times().max()) else {
        return;
    };
    let values = || {
        lines.iter().flat_map(|l| {
            l.points
                .iter()
                .map(|p| p.1)
                .chain(l.band.iter().flat_map(|b| [b.1, b.2]))
        })
    };
    let (mut low, mut high) = values()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(v), h.max(v))
        });
    if !(low.is_finite() && high.is_finite()) {
        return;
    }
    // Room above and below, relative to the values (a flat line of 2^60 needs more than 1).
    let pad = high.abs().max(low.abs()).max(1.0) * 1e-6;
    if high - low < pad {
        (low, high) = (low - pad, high + pad);
    }
    let margin = (high - low) * 0.05;
    let (low, high) = (low - margin, high + margin);
    if !(high - low).is_finite() || high - low <= 0.0 {
        // Values near the largest a double holds: no scale draws them.
        pages.line_of(9.0, "The values are too large to draw.", GREY);
        return;
    }
    let end = last.max(first.saturating_add(1_000_000_000));
    let x = |t: i64| left + ((t - first) as f64 / (end - first) as f64) as f32 * (right - left);
    let y = |v: f64| bottom - ((v - low) / (high - low)) as f32 * (bottom - top);
    // Grid and value labels.
    for (v, label) in value_ticks(low, high) {
        let at = y(v);
        pages.ops().push(Op::Line {
            points: vec![(left, at), (right, at)],
            width: 0.3,
            colour: RULE,
        });
        pages.text((left - 4.0, at + 3.0), 7.5, label, GREY, Anchor::Right);
    }
    let ticks = time_ticks(tz, (first, end), 6);
    for (at, label) in ticks.at.iter().zip(&ticks.labels) {
        let px = x(*at);
        pages.ops().push(Op::Line {
            points: vec![(px, top), (px, bottom)],
            width: 0.3,
            colour: RULE,
        });
        pages.text((px, bottom + 11.0), 7.5, label.clone(), GREY, Anchor::Centre);
    }
    pages.ops().push(Op::Line {
        points: vec![(left, top), (left, bottom), (right, bottom)],
        width: 0.6,
        colour: GREY,
    });
    for (k, line) in lines.iter().enumerate() {
        let colour = if k == 0 {
            brand.colour
        } else {
            PALETTE[(k - 1) % PALETTE.len()]
        };
        if !line.band.is_empty() && line.band.iter().all(|(_, l, h)| l.is_finite() && h.is_finite()) {
            let mut outline: Vec<(f32, f32)> = line.band.iter().map(|(t, _, h)| (x(*t), y(*h))).collect();
            outline.extend(line.band.iter().rev().map(|(t, l, _)| (x(*t), y(*l))));
            pages.ops().push(Op::Area {
                points: outline,
                colour,
                opacity: 0.18,
            });
        }
        let points: Vec<(f32, f32)> = line
            .points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|(t, v)| (x(*t), y(*v)))
            .collect();
        pages.ops().push(Op::Line {
            points,
            width: 1.2,
            colour,
        });
    }
    pages.y = bottom + 16.0;
    if lines.len() > 1 || lines.iter().any(|l| !l.band.is_empty()) {
        // The legend: each line's colour and name, and what the band is.
        let mut lx = left;
        let ly = pages.y + 6.0;
        for (k, line) in lines.iter().enumerate() {
            let colour = if k == 0 {
                brand.colour
            } else {
                PALETTE[(k - 1) % PALETTE.len()]
            };
            if right - lx < 60.0 {
                // No room for more names: say how many lines are left unnamed.
                let rest = format!("and {} more", lines.len() - k);
                pages.text((lx, ly), 8.0, rest, GREY, Anchor::Left);
                break;
            }
            pages.ops().push(Op::Line {
                points: vec![(lx, ly - 3.0), (lx + 14.0, ly - 3.0)],
                width: 1.5,
                colour,
            });
            let name = if line.band.is_empty() {
                line.name.clone()
            } else {
                format!("{} (band: each bucket's lowest and highest)", line.name)
            };
            let name = fit(&name, 8.0, right - lx - 20.0);
            let advance = width(&name, 8.0) + 30.0;
            pages.text((lx + 18.0, ly), 8.0, name, BLACK, Anchor::Left);
            lx += advance;
        }
        pages.y += 14.0;
    }
}

/// The path through `points` in order (`closed`: back to the first).
fn path_through(points: &[(f32, f32)], closed: bool) -> Option<krilla::geom::Path> {
    let mut path = PathBuilder::new();
    for (i, (x, y)) in points.iter().enumerate() {
        if i == 0 {
            path.move_to(*x, *y);
        } else {
            path.line_to(*x, *y);
        }
    }
    if closed {
        path.close();
    }
    path.finish()
}

fn rgb_of((r, g, b): (u8, u8, u8)) -> rgb::Color {
    rgb::Color::new(r, g, b)
}

fn font() -> Result<Font, String> {
    static FONT_OBJECT: OnceLock<Option<Font>> = OnceLock::new();
    FONT_OBJECT
        .get_or_init(|| Font::new(FONT.into(), 0))
        .clone()
        .ok_or_else(|| "the embedded font cannot be read".to_owned())
}

/// The logo as an image krilla draws, and its size in pixels.
fn logo_image(bytes: &[u8]) -> Option<(Image, (u32, u32))> {
    let image = if bytes.starts_with(b"\x89PNG") {
        Image::from_png(bytes.to_vec().into(), true).ok()?
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        Image::from_jpeg(bytes.to_vec().into(), true).ok()?
    } else {
        return None;
    };
    let size = image.size();
    Some((image, size))
}

/// The report as a PDF document; `made` names its creation date in its metadata.
pub fn render(report: &Report, brand: &Branding) -> Result<Vec<u8>, String> {
    let font = font()?;
    let logo = brand.logo.as_deref().and_then(logo_image);
    let pages = lay_out(report, brand, logo.as_ref().map(|(_, size)| *size));
    let (w, h) = report.pages.size.points();
    let (w, h) = if report.pages.landscape { (h, w) } else { (w, h) };
    let mut document = Document::new();
    let made = DateTime::from_timestamp_nanos(report.made_ns);
    use chrono::{Datelike, Timelike};
    document.set_metadata(
        Metadata::new()
            .title(report.title.clone())
            .creator("exports".to_owned())
            .creation_date(
                krilla::metadata::DateTime::new(u16::try_from(made.year()).unwrap_or(2000))
                    .month(made.month() as u8)
                    .day(made.day() as u8)
                    .hour(made.hour() as u8)
                    .minute(made.minute() as u8)
                    .second(made.second() as u8)
                    .utc_offset_hour(0)
                    .utc_offset_minute(0),
            ),
    );
    for ops in pages {
        let settings = PageSettings::from_wh(w, h).ok_or("a page of no size")?;
        let mut page = document.start_page_with(settings);
        let mut surface = page.surface();
        for op in ops {
            match op {
                Op::Text {
                    at,
                    size,
                    text,
                    colour,
                    anchor,
                } => {
                    let x = match anchor {
                        Anchor::Left => at.0,
                        Anchor::Right => at.0 - width(&text, size),
                        Anchor::Centre => at.0 - width(&text, size) / 2.0,
                    };
                    surface.set_stroke(None);
                    surface.set_fill(Some(Fill {
                        paint: rgb_of(colour).into(),
                        opacity: NormalizedF32::ONE,
                        rule: Default::default(),
                    }));
                    surface.draw_text(
                        Point::from_xy(x, at.1),
                        font.clone(),
                        size,
                        &text,
                        false,
                        TextDirection::Auto,
                    );
                }
                Op::Line {
                    points,
                    width,
                    colour,
                } => {
                    if let Some(path) = path_through(&points, false) {
                        surface.set_fill(None);
                        surface.set_stroke(Some(Stroke {
                            paint: rgb_of(colour).into(),
                            width,
                            ..Stroke::default()
                        }));
                        surface.draw_path(&path);
                    }
                }
                Op::Area {
                    points,
                    colour,
                    opacity,
                } => {
                    if let Some(path) = path_through(&points, true) {
                        surface.set_stroke(None);
                        surface.set_fill(Some(Fill {
                            paint: rgb_of(colour).into(),
                            opacity: NormalizedF32::new(opacity).unwrap_or(NormalizedF32::ONE),
                            rule: Default::default(),
                        }));
                        surface.draw_path(&path);
                    }
                }
                Op::Logo { at, size } => {
                    if let (Some((image, _)), Some(size)) = (&logo, Size::from_wh(size.0, size.1)) {
                        surface.push_transform(&Transform::from_translate(at.0, at.1));
                        surface.draw_image(image.clone(), size);
                        surface.pop();
                    }
                }
            }
        }
        surface.finish();
        page.finish();
    }
    document.finish().map_err(|e| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::files::Tally;

    pub(crate) fn sample(rows: u64, days: i64) -> Report {
        let start = 1_761_429_600_i64;
        let step = 900;
        let mut points = crate::domain::files::ChartPoints::default();
        let mut tally = Tally::default();
        let count = days * 86_400 / step;
        for k in 0..count {
            let t = (start + k * step) * 1_000_000_000;
            let v = 20.0 + (k as f64 / 9.0).sin();
            points.push_with_band(t, v, Some((v - 0.5, v + 0.5)));
            tally.add(t, v);
        }
        let head: Vec<Vec<String>> = (0..rows.min(REPORT_TABLE_ROWS) as i64)
            .map(|k| {
                vec![
                    format!("2025-10-26T0{}:{:02}:00+02:00", k / 60 % 10, k % 60),
                    number(k as f64 * 0.1),
                ]
            })
            .collect();
        Report {
            title: "Hall B température".into(),
            tz: chrono_tz::Europe::Rome,
            made_ns: (start + 90_000) * 1_000_000_000,
            export_id: "0b6c".into(),
            job_id: "job-1".into(),
            pages: PdfPages::default(),
            items: vec![ReportItem {
                title: "Hall B".into(),
                what: "15m avg".into(),
                window: (
                    Some(start * 1_000_000_000),
                    (start + days * 86_400) * 1_000_000_000,
                ),
                lines: vec![points.line("Hall B".into())],
                rows,
                head: (vec!["Time".into(), "Value".into()], head),
            }],
        }
    }

    fn tests_sample_flat(v: f64) -> Report {
        let mut report = sample(10, 1);
        let mut points = crate::domain::files::ChartPoints::default();
        for k in 0..10 {
            points.push(
                (1_761_429_600 + k * 900) * 1_000_000_000,
                if k == 3 && v == f64::MAX { -v } else { v },
            );
        }
        report.items[0].lines = vec![points.line("flat".into())];
        report
    }

    #[test]
    fn a_report_is_a_pdf_whose_pages_stay_few_whatever_the_data() {
        let short = render(&sample(100, 1), &Branding::default()).expect("rendered");
        if let Some(dir) = std::env::var_os("KEEP_REPORT") {
            std::fs::write(std::path::Path::new(&dir).join("short.pdf"), &short).expect("kept");
        }
        assert!(short.starts_with(b"%PDF-"));
        let long = render(&sample(1_000_000, 365), &Branding::default()).expect("rendered");
        let pages = |pdf: &[u8]| {
            pdf.windows(10)
                .filter(|w| w == b"/Type /Pag" || w == b"/Type/Page")
                .count()
        };
        assert!(pages(&short) >= 1);
        // A year of buckets: one page, its chart thinned; no table.
        assert!(lay_out(&sample(1_000_000, 365), &Branding::default(), None).len() == 1);
        assert!(lay_out(&sample(200, 1), &Branding::default(), None).len() <= 5);
        assert!(long.len() < 400_000, "{} bytes", long.len());
    }

    #[test]
    fn times_read_with_their_offset_and_colours_parse() {
        assert_eq!(
            local_time(
                chrono_tz::Europe::Rome,
                1_761_440_400_000_000_000 - 1_800_000_000_000
            ),
            "2025-10-26 02:30:00 +02:00"
        );
        assert_eq!(
            local_time(
                chrono_tz::Europe::Rome,
                1_761_440_400_000_000_000 + 1_800_000_000_000
            ),
            "2025-10-26 02:30:00 +01:00"
        );
        assert_eq!(
            cell_text("2025-10-26T02:30:00+01:00"),
            "2025-10-26 02:30:00 +01:00"
        );
        assert_eq!(cell_text("21.5"), "21.5");
        // A text that merely looks like a time is kept, whatever its characters.
        assert_eq!(
            cell_text("2025-10-26T02:30 Sala è12345"),
            "2025-10-26T02:30 Sala è12345"
        );
        assert_eq!(fit("abc", 8.0, 100.0), "abc");
        let long = "é".repeat(20_000);
        let cut = fit(&long, 8.0, 50.0);
        assert!(cut.ends_with('…') && cut.chars().count() < 20 && width(&cut, 8.0) <= 50.0);
        // Flat lines of huge values, and values near the largest double: drawn or said, never NaN.
        for v in [2f64.powi(60), f64::MAX, -f64::MAX] {
            let report = tests_sample_flat(v);
            for op in lay_out(&report, &Branding::default(), None).iter().flatten() {
                let points = match op {
                    Op::Text { at, .. } | Op::Logo { at, .. } => vec![*at],
                    Op::Line { points, .. } | Op::Area { points, .. } => points.clone(),
                };
                assert!(
                    points.iter().all(|(x, y)| x.is_finite() && y.is_finite()),
                    "{v}: {op:?}"
                );
            }
            render(&report, &Branding::default()).expect("rendered");
        }
        assert_eq!(colour("#1F77b4"), Some((31, 119, 180)));
        assert_eq!(colour("1f77b4"), None);
        assert_eq!(colour("#1f77bé"), None);
        let labels = |low, high| {
            value_ticks(low, high)
                .into_iter()
                .map(|(_, l)| l)
                .collect::<Vec<_>>()
        };
        assert_eq!(labels(0.0, 10.0), ["0", "2", "4", "6", "8", "10"]);
        assert_eq!(labels(-0.05, 1.05), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        assert_eq!(labels(0.0, 0.1), ["0.00", "0.02", "0.04", "0.06", "0.08", "0.10"]);
        assert_eq!(labels(0.0, 14.0), ["0.0", "2.5", "5.0", "7.5", "10.0", "12.5"]);
    }
}
