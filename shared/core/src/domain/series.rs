//! One point of a series as the export sees it: a SenML record read back from the platform,
//! with borrowed text so a page of thousands of points is parsed without copying strings.

use std::borrow::Cow;

/// A SenML record. `time_ns` is Unix time in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Point<'a> {
    pub time_ns: i64,
    pub name: Cow<'a, str>,
    pub unit: Cow<'a, str>,
    pub channel: Cow<'a, str>,
    pub subtopic: Cow<'a, str>,
    pub publisher: Cow<'a, str>,
    pub protocol: Cow<'a, str>,
    pub value: Option<f64>,
    pub string_value: Option<Cow<'a, str>>,
    pub bool_value: Option<bool>,
    pub data_value: Option<Cow<'a, str>>,
    pub sum: Option<f64>,
    pub update_time: Option<f64>,
}

impl Point<'_> {
    /// The point holding its own text (to outlive the page it was read from).
    pub fn to_owned_point(&self) -> Point<'static> {
        let own = |s: &Cow<'_, str>| Cow::Owned(s.to_string());
        Point {
            time_ns: self.time_ns,
            name: own(&self.name),
            unit: own(&self.unit),
            channel: own(&self.channel),
            subtopic: own(&self.subtopic),
            publisher: own(&self.publisher),
            protocol: own(&self.protocol),
            value: self.value,
            string_value: self.string_value.as_ref().map(own),
            bool_value: self.bool_value,
            data_value: self.data_value.as_ref().map(own),
            sum: self.sum,
            update_time: self.update_time,
        }
    }

    /// The order of points: by time, then, among points of one time (which readers serve in
    /// no particular order), by their content, so the same messages always give the same file.
    pub fn order(&self, other: &Point<'_>) -> std::cmp::Ordering {
        let float = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => a.total_cmp(&b),
            (a, b) => a.is_some().cmp(&b.is_some()),
        };
        self.time_ns
            .cmp(&other.time_ns)
            .then_with(|| self.publisher.cmp(&other.publisher))
            .then_with(|| self.name.cmp(&other.name))
            .then_with(|| self.subtopic.cmp(&other.subtopic))
            .then_with(|| self.protocol.cmp(&other.protocol))
            .then_with(|| self.unit.cmp(&other.unit))
            .then_with(|| float(self.value, other.value))
            .then_with(|| self.string_value.cmp(&other.string_value))
            .then_with(|| self.bool_value.cmp(&other.bool_value))
            .then_with(|| self.data_value.cmp(&other.data_value))
            .then_with(|| float(self.sum, other.sum))
            .then_with(|| float(self.update_time, other.update_time))
            .then_with(|| self.channel.cmp(&other.channel))
    }

    /// The number decimation aggregates: `value`, or a boolean as 1 or 0; `None` for neither.
    pub fn numeric(&self) -> Option<f64> {
        self.value
            .filter(|v| v.is_finite())
            .or(self.bool_value.map(|b| if b { 1.0 } else { 0.0 }))
    }
}

/// Unix seconds (fractional) to nanoseconds, `None` when out of range or not finite.
pub fn seconds_to_nanos(secs: f64) -> Option<i64> {
    let nanos = (secs * 1e9).round();
    (nanos.is_finite() && nanos.abs() < 9.2e18).then_some(nanos as i64)
}
