//! `POST /exports/preview`: the body of a create, checked as a create is (every problem, the
//! recipients, each item's channel access), answered at once with the first rows of each item as
//! its file would have them (CSV cells: times in the export's zone, numbers in shortest form),
//! from at most one page of the reader per target. Nothing is stored, armed or launched.

use std::io::{Read, Seek, SeekFrom};

use async_trait::async_trait;
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};

use exporter_core::domain::recurrence::Window;
use exporter_core::domain::request::{Extension, Format, Item};
use exporter_core::domain::series::Point;
use exporter_core::domain::timestamp::rfc3339;
use exporter_core::domain::Schedule;
use exporter_core::ports::{Cause, ReadError, SeriesQuery, SliceSink};
use exporter_core::render::item::{sink, Layout};
use exporter_core::render::WriterArgs;

use crate::identity::Identity;
use crate::manage::next_of;
use crate::{body_json, check_channels, checked_request, json_response, ApiError, Deps};

/// The most rows shown of each item.
pub const PREVIEW_ROWS: usize = 20;

/// The points of a page, kept (a target's first page, oldest first).
#[derive(Default)]
struct Kept(Vec<Point<'static>>);

#[async_trait]
impl SliceSink for Kept {
    async fn accept(&mut self, points: &[Point<'_>]) -> Result<(), Cause> {
        self.0.extend(points.iter().map(Point::to_owned_point));
        Ok(())
    }
}

pub(crate) async fn preview(
    deps: Deps<'_>,
    who: &Identity,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let body = body_json(deps, request)?;
    let now = deps.clock.now();
    let parsed = checked_request(deps, who, &body, now)?;
    check_channels(deps, who, &parsed).await?;
    // A recurring export's latest passed occurrence (its next, when none has passed).
    let occurrence = match parsed.schedule {
        Schedule::OneTime => None,
        Schedule::Recurring(recurrence) => {
            let (next, _) = next_of(&recurrence, now)?;
            Some((recurrence, if next >= 2 { next - 1 } else { next }))
        }
    };
    let mut items = Vec::with_capacity(parsed.items.len());
    for (index, item) in parsed.items.iter().enumerate() {
        let window = match occurrence {
            Some((recurrence, k)) => item.span.recurring_window(&recurrence, k),
            None => item.span.one_time_window(now, parsed.format.timezone),
        }
        .ok_or_else(|| {
            ApiError::Invalid(vec![exporter_core::domain::Problem::new(
                format!("/items/{index}/params"),
                "has no window in the representable range",
            )])
        })?;
        items.push(item_preview(deps, &parsed.format, (index, item), (window, now)).await?);
    }
    Ok(json_response(
        200,
        &json!({"items": items, "maxRows": PREVIEW_ROWS, "previewedAt": rfc3339(now)}),
    ))
}

/// One item's first rows: a page of each target read, merged oldest first (targets in their
/// order at one time), rendered as its CSV file would be.
async fn item_preview(
    deps: Deps<'_>,
    format: &Format,
    (index, item): (usize, &Item),
    (window, now): (Window, chrono::DateTime<chrono::Utc>),
) -> Result<Value, ApiError> {
    let layout = Layout::of(format, item);
    let mut points: Vec<(usize, Point<'static>)> = Vec::new();
    let mut total = 0u64;
    // Where the rows stop being the file's: before the newest time read of a target whose page
    // did not hold its whole window (what lies past it is not read, for it or the others).
    let mut cut: Option<i64> = None;
    // A window that has not begun (a recurring export's first occurrence to come) holds
    // nothing yet: it is not read (a reader may refuse times far ahead).
    let begun = window.from.is_none_or(|from| from <= now);
    for (k, (name, _)) in layout.targets.iter().enumerate().filter(|_| begun) {
        let query = SeriesQuery {
            domain: item.domain_id.map(|d| d.to_string()),
            channel: item.channel_id.to_string(),
            subtopic: item.subtopic.as_str().to_owned(),
            table: item.table.map(|t| t.as_str().to_owned()),
            name: name.clone(),
            window,
        };
        let mut kept = Kept::default();
        let messages = deps
            .reader
            .first_page(&query, &mut kept)
            .await
            .map_err(|e| unreadable(index, e))?;
        total += messages;
        if (kept.0.len() as u64) < messages {
            let newest = kept.0.iter().map(|p| p.time_ns).max().unwrap_or(i64::MIN);
            cut = Some(cut.map_or(newest, |c| c.min(newest)));
        }
        points.extend(kept.0.into_iter().map(|p| (k, p)));
    }
    if let Some(cut) = cut {
        points.retain(|(_, p)| p.time_ns < cut);
    }
    points.sort_by_key(|(k, p)| (p.time_ns, *k));
    let seen = points.len() as u64;
    let exact = cut.is_none();
    let merged: Vec<Point<'static>> = points.into_iter().map(|(_, p)| p).collect();
    let (header, rows) = render(format, item, (&layout, window), (&merged, exact))
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    // Every message of the window was read: the rows are the file's; else scaled by the
    // messages the window holds.
    let row_count = if exact || seen == 0 {
        rows.len() as u64
    } else {
        (rows.len() as f64 * total as f64 / seen as f64).round() as u64
    };
    Ok(json!({
        "index": index,
        "window": {"from": window.from.map(rfc3339), "to": rfc3339(window.to)},
        "columns": header,
        "rows": rows.iter().take(PREVIEW_ROWS).collect::<Vec<_>>(),
        "rowCount": row_count,
        "exact": exact,
        "messages": total,
    }))
}

/// A reader that cannot answer: `503` (a refused credential or a broken reader is the
/// deployment's, not the caller's).
fn unreadable(index: usize, e: ReadError) -> ApiError {
    tracing::warn!(item = index, error = %e, "the preview could not read an item");
    ApiError::Unavailable(Box::new(e))
}

/// The rows `points` make in `item`'s file, as CSV cells: the header, then the rows. When the
/// points are the whole window's the file is finished (its last bucket, the empty buckets to
/// the window's end); else it stops where the points do (a bucket they may not hold whole is
/// left out, and nothing is filled past them).
async fn render(
    format: &Format,
    item: &Item,
    (layout, window): (&Layout, Window),
    (points, whole): (&[Point<'static>], bool),
) -> Result<(Vec<String>, Vec<Vec<String>>), std::io::Error> {
    let text_format = Format {
        extension: Extension::Csv,
        csv_bom: false,
        ..format.clone()
    };
    let mut file = tempfile::tempfile()?;
    let writer = exporter_core::render::writer(WriterArgs {
        out: file.try_clone()?,
        format: &text_format,
        labels: &layout.labels(),
        resumed_rows: None,
        max_staged_rows: u64::MAX,
    })
    .map_err(std::io::Error::other)?;
    let mut series = sink(&text_format, item, (layout, window), writer, None);
    series.accept(points).await.map_err(std::io::Error::other)?;
    if whole {
        series.finish(&mut file).map_err(std::io::Error::other)?;
    } else {
        series.pause().map_err(std::io::Error::other)?;
    }
    file.seek(SeekFrom::Start(0))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let mut records = csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(text_format.csv_delimiter)
        .from_reader(text.as_bytes())
        .into_records();
    let header: Vec<String> = match records.next() {
        Some(record) => record
            .map_err(std::io::Error::other)?
            .iter()
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    };
    let rows = records
        .map(|r| r.map(|r| r.iter().map(str::to_owned).collect()))
        .collect::<Result<Vec<Vec<String>>, _>>()
        .map_err(std::io::Error::other)?;
    Ok((header, rows))
}
