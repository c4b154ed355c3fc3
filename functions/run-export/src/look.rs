//! How an item's workbook looks: its sheet's name and title, and its chart.

use crate::deps::Deps;
use exporter_core::domain::request::Item;
use exporter_core::domain::Export;
use exporter_core::render::wide::{wide_columns, WideColumn};
use exporter_core::render::xlsx_file::{ChartSpec, Look};

/// How an item's workbook looks: sheets named after the item's label (else its SenML name; a
/// wide item's after all its targets'), titled with that name and the export, and a line chart
/// of a decimated series of times and values short enough for one (not of a long file).
pub(crate) fn look(deps: Deps<'_>, export: &Export, item: &Item) -> Look {
    let name = look_name(item);
    // The columns as the file has them: a wide file's value (and count) columns are the
    // targets', a line each in the chart, named by their headers.
    let targets: Vec<(&str, Option<&str>)> = item
        .targets()
        .into_iter()
        .map(|(target, label)| (target.as_str(), label))
        .collect();
    // A long file (a row per time and target) has no line of one target: no chart.
    let format = &export.request.format;
    let columns = if format.is_long(item) {
        Vec::new()
    } else {
        format.columns_of(item)
    };
    let (layout, headers) = wide_columns(&columns, &targets);
    let time = layout.iter().position(|c| *c == WideColumn::Time);
    let series: Vec<(String, u16)> = layout
        .iter()
        .zip(headers)
        .enumerate()
        .filter(|(_, (column, _))| matches!(column, WideColumn::Value(_)))
        .filter_map(|(at, (_, header))| {
            let column = u16::try_from(at).ok()?;
            Some((if item.is_wide() { header } else { name.clone() }, column))
        })
        .collect();
    let chart = match (item.decimation, time.and_then(|at| u16::try_from(at).ok())) {
        (Some(_), Some(time_column)) if deps.config.xlsx_chart_max_rows > 0 && !series.is_empty() => {
            Some(ChartSpec {
                time_column,
                series,
                title: name.clone(),
                max_rows: deps.config.xlsx_chart_max_rows,
            })
        }
        _ => None,
    };
    Look {
        title: format!("{name} (export {})", export.id),
        sheet: name,
        chart,
    }
}

/// What an item's workbook and chart are called: its label (else its SenML name); a wide item
/// is named after all its targets.
pub(crate) fn look_name(item: &Item) -> String {
    item.targets()
        .iter()
        .map(|(target, label)| label.unwrap_or(target.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}
