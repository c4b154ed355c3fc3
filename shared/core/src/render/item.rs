//! An item's file as rows: its layout (targets, columns and their headers, as the export's
//! format and template make them) and the sink its points go into (one series, a wide file, a
//! long one; decimated, filled, as deltas when asked), resumed where a paused one stood. What
//! run-export writes and what the API's preview shows are made here alike.

use crate::domain::decimation::{Decimator, Filler};
use crate::domain::recurrence::Window;
use crate::domain::request::{ColumnId, Extension, Fill, Format, Item, Transform};

use super::parquet_file::Kind;
use super::series::{Paused, SeriesRenderer, SeriesSink};
use super::wide::{wide_columns, Long, WideColumn, WideDecimation, WideRenderer};
use super::{ItemContext, RowWriter};

/// What an item's file looks like: its targets (name, label), its columns (a wide file's, a
/// value and count column per target), and their headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub targets: Vec<(String, Option<String>)>,
    /// The columns of a file of one series, or of a long one.
    pub columns: Vec<ColumnId>,
    /// The columns of a wide file.
    pub wide_columns: Vec<WideColumn>,
    pub labels: Vec<String>,
    /// What each column of the file holds when none of its cells says (a typed file's column
    /// with no value at all).
    pub kinds: Vec<Kind>,
}

impl Layout {
    pub fn of(format: &Format, item: &Item) -> Self {
        let targets: Vec<(&str, Option<&str>)> = item
            .targets()
            .into_iter()
            .map(|(name, label)| (name.as_str(), label))
            .collect();
        let columns = format.columns_of(item);
        // A wide item has a value (and count) column per target, unless written long.
        let (wide_columns, wide_labels) = wide_columns(&columns, &targets);
        let (labels, kinds) = if item.is_wide() && !format.is_long(item) {
            let kinds = wide_columns
                .iter()
                .map(|c| match c {
                    WideColumn::Time => Kind::Time,
                    WideColumn::Value(_) => Kind::Double,
                    WideColumn::Count(_) => Kind::Count,
                    WideColumn::UtcOffset | WideColumn::Empty => Kind::Text,
                })
                .collect();
            (wide_labels, kinds)
        } else {
            (
                columns.iter().map(|c| c.label.clone()).collect(),
                columns.iter().map(|c| Kind::of_column(c.id)).collect(),
            )
        };
        Self {
            targets: targets
                .iter()
                .map(|(name, label)| ((*name).to_owned(), label.map(str::to_owned)))
                .collect(),
            columns: columns.iter().map(|c| c.id).collect(),
            wide_columns,
            labels,
            kinds,
        }
    }

    pub fn labels(&self) -> Vec<&str> {
        self.labels.iter().map(String::as_str).collect()
    }
}

/// The sink `item`'s points (its targets merged, oldest first) go into, writing into `writer`:
/// its decimation, fill, deltas and chart, going on from `paused` when an earlier invocation
/// paused it.
pub fn sink(
    format: &Format,
    item: &Item,
    (layout, window): (&Layout, Window),
    writer: Box<dyn RowWriter + Send>,
    paused: Option<&Paused>,
) -> Box<dyn SeriesSink> {
    let context = ItemContext {
        label: item.label.clone(),
        target: item.target.as_str().to_owned(),
        channel: item.channel_id.to_string(),
        subtopic: item.subtopic.as_str().to_owned(),
    };
    let bounds = (
        window.from.and_then(|f| f.timestamp_nanos_opt()),
        window.to.timestamp_nanos_opt().unwrap_or(i64::MAX),
    );
    let delta = item.transform == Some(Transform::Delta);
    if item.is_wide() {
        let mut wide = WideRenderer::new(
            writer,
            layout.wide_columns.clone(),
            layout.targets.iter().map(|(name, _)| name.clone()).collect(),
            (
                item.decimation.map(|d| WideDecimation {
                    tz: format.timezone,
                    ds: d.ds,
                    dsf: d.dsf,
                    fill: d.fill,
                    window: bounds,
                }),
                delta,
            ),
            paused.and_then(|p| p.wide.as_ref()),
        );
        // A report charts raw series too (the email only decimated ones).
        if item.decimation.is_none() && format.extension == Extension::Pdf {
            wide = wide.charting_raw(paused.and_then(|p| p.wide.as_ref()));
        }
        if item.decimation.is_some_and(|d| d.dsf.bounded()) {
            wide = wide.banded();
        }
        if !format.is_long(item) {
            return Box::new(wide);
        }
        let contexts = layout
            .targets
            .iter()
            .map(|(name, label)| ItemContext {
                label: label.clone(),
                target: name.clone(),
                ..context.clone()
            })
            .collect();
        return Box::new(wide.long(Long {
            columns: layout.columns.clone(),
            contexts,
        }));
    }
    let decimator = item
        .decimation
        .map(|d| match paused.and_then(|p| p.decimator.as_ref()) {
            Some(state) => Decimator::restore(format.timezone, d.ds, d.dsf, state),
            None => Decimator::new(format.timezone, d.ds, d.dsf),
        });
    let mut series = SeriesRenderer::new(writer, layout.columns.clone(), context, decimator);
    if let Some(d) = item.decimation.filter(|d| d.fill != Fill::None) {
        let state = paused.and_then(|p| p.fill.clone()).unwrap_or_default();
        series = series.with_filler(Filler::new(format.timezone, d.ds, d.fill, bounds, state));
    }
    if delta {
        series = series.with_delta(paused.and_then(|p| p.previous));
    }
    // A report charts raw series too (the email only decimated ones).
    if item.decimation.is_some() || format.extension == Extension::Pdf {
        series = series.with_chart(paused.and_then(|p| p.chart.clone()));
        if item.decimation.is_some_and(|d| d.dsf.bounded()) {
            series = series.banded();
        }
    }
    Box::new(series)
}
