//! The export request of `POST /exports` (spec section 3): its validated domain types (here),
//! the limits and policies it is checked against (`policy`), the validator (`walk` and
//! `validate`: the JSON itself is walked, not a serde derive, so that *every* problem is
//! reported at once with its JSON pointer and unknown fields are named), its normalised wire
//! form (`wire`), and message targets parsed into types (`target`).

mod policy;
mod target;
mod validate;
mod walk;
pub mod wire;

use std::fmt;

use chrono_tz::Tz;
use uuid::Uuid;

use super::granularity::Granularity;
use super::recurrence::{ItemSpan, Recurrence};

pub use crate::domain::formats::Extension;
pub use crate::domain::media::Medium;
pub use policy::{Limits, Policy, Recipients, WebhookHosts};
pub use target::{EmailAddress, Target, TelegramChat, WebhookUrl};
pub use wire::unix_json;

/// One thing wrong with a request, at a JSON pointer (`/items/0/params/decimation/ds`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A column a file may contain (spec section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ColumnId {
    Time,
    Value,
    Name,
    Unit,
    Channel,
    Subtopic,
    Publisher,
    Protocol,
    StringValue,
    BoolValue,
    DataValue,
    Sum,
    UpdateTime,
    Count,
    /// The zone's offset from UTC at the row's time (`+02:00`): tells the repeated autumn hour
    /// apart.
    UtcOffset,
    /// A decimated bucket's statistics (empty on raw rows); `sum` is the bucket's sum there.
    Avg,
    Min,
    Max,
    Stddev,
    Variance,
}

impl ColumnId {
    pub const ALL: [ColumnId; 20] = [
        Self::Time,
        Self::Value,
        Self::Name,
        Self::Unit,
        Self::Channel,
        Self::Subtopic,
        Self::Publisher,
        Self::Protocol,
        Self::StringValue,
        Self::BoolValue,
        Self::DataValue,
        Self::Sum,
        Self::UpdateTime,
        Self::Count,
        Self::UtcOffset,
        Self::Avg,
        Self::Min,
        Self::Max,
        Self::Stddev,
        Self::Variance,
    ];

    /// What `template: expanded` writes for a raw item: every field of a SenML message.
    pub const EXPANDED_RAW: [ColumnId; 13] = [
        Self::Time,
        Self::Channel,
        Self::Subtopic,
        Self::Publisher,
        Self::Protocol,
        Self::Name,
        Self::Unit,
        Self::Value,
        Self::StringValue,
        Self::BoolValue,
        Self::DataValue,
        Self::Sum,
        Self::UpdateTime,
    ];

    /// What `template: expanded` writes for a decimated item: every statistic of a bucket.
    pub const EXPANDED_DECIMATED: [ColumnId; 12] = [
        Self::Time,
        Self::Channel,
        Self::Subtopic,
        Self::Name,
        Self::Unit,
        Self::Count,
        Self::Avg,
        Self::Min,
        Self::Max,
        Self::Sum,
        Self::Stddev,
        Self::Variance,
    ];

    /// The canonical (camelCase) id.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Time => "time",
            Self::Value => "value",
            Self::Name => "name",
            Self::Unit => "unit",
            Self::Channel => "channel",
            Self::Subtopic => "subtopic",
            Self::Publisher => "publisher",
            Self::Protocol => "protocol",
            Self::StringValue => "stringValue",
            Self::BoolValue => "boolValue",
            Self::DataValue => "dataValue",
            Self::Sum => "sum",
            Self::UpdateTime => "updateTime",
            Self::Count => "count",
            Self::UtcOffset => "utcOffset",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
            Self::Stddev => "stddev",
            Self::Variance => "variance",
        }
    }

    /// Parses camelCase or snake_case (`stringValue`, `string_value`), exactly.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| text == c.as_str() || text == c.snake_case())
    }

    /// The snake_case spelling (`string_value`).
    fn snake_case(self) -> String {
        let mut out = String::new();
        for c in self.as_str().chars() {
            if c.is_ascii_uppercase() {
                out.push('_');
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        out
    }
}

/// A column of the file: what it holds and its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub id: ColumnId,
    pub label: String,
}

/// The format of the export's files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    pub extension: Extension,
    pub columns: Vec<Column>,
    pub timezone: Tz,
    pub csv_delimiter: u8,
    /// CSV text cells that a spreadsheet would run as a formula (starting with `=`, `+`, `-`,
    /// `@`, tab or CR) get a leading `'`; off for machine consumers. Workbooks need none.
    pub escape_formulas: bool,
    /// A CSV file starts with a UTF-8 byte-order mark (so Excel reads non-ASCII labels right).
    pub csv_bom: bool,
    /// A CSV file's numbers use a decimal comma (`21,5`), for locales that write them so; never
    /// with a `,` delimiter.
    pub csv_decimal_comma: bool,
    /// Which columns the files have: the chosen ones, or every field (`template`).
    pub template: Template,
    /// The name of a job's file (its zip, when it has several), `{{exportId}}` and `{{jobId}}`
    /// filled in; an item's own `filename` names its file before this.
    pub filename: Option<JobFilename>,
    /// A Parquet file's time columns are each followed by the local wall time
    /// (`format.localTime`).
    pub local_time: bool,
    /// A report's pages (`format.pdf`).
    pub pdf: PdfPages,
}

/// A report's paper and orientation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PdfPages {
    pub size: PageSize,
    pub landscape: bool,
}

/// A report's paper.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PageSize {
    #[default]
    A4,
    Letter,
}

impl PageSize {
    pub const ALL: [Self; 2] = [Self::A4, Self::Letter];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::A4 => "A4",
            Self::Letter => "letter",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Width and height in points (1/72 inch), portrait.
    pub fn points(self) -> (f32, f32) {
        match self {
            Self::A4 => (595.28, 841.89),
            Self::Letter => (612.0, 792.0),
        }
    }
}

impl Format {
    /// The columns of `item`'s file, in order, with their headers: the chosen `columns`; with
    /// `template: expanded`, every field of a raw item's messages
    /// ([`ColumnId::EXPANDED_RAW`]) or every statistic of a decimated item's buckets
    /// ([`ColumnId::EXPANDED_DECIMATED`]), headed as `columns` labels them (else by their
    /// ids), then every chosen column they lack.
    pub fn columns_of(&self, item: &Item) -> Vec<Column> {
        let fields: &[ColumnId] = match (self.template, item.decimation) {
            (Template::Tabular, _) => return self.columns.clone(),
            (Template::Expanded, None) => &ColumnId::EXPANDED_RAW,
            (Template::Expanded, Some(_)) => &ColumnId::EXPANDED_DECIMATED,
        };
        let label = |id: ColumnId| {
            self.columns
                .iter()
                .find(|c| c.id == id)
                .map_or_else(|| id.as_str().to_owned(), |c| c.label.clone())
        };
        let mut out: Vec<Column> = fields
            .iter()
            .map(|id| Column {
                id: *id,
                label: label(*id),
            })
            .collect();
        for column in &self.columns {
            if !fields.contains(&column.id) {
                out.push(column.clone());
            }
        }
        out
    }

    /// Whether `item`'s file has a row per (time, target): a wide item written `long` or with
    /// every field (`template: expanded`).
    pub fn is_long(&self, item: &Item) -> bool {
        item.is_wide() && (item.long || self.template == Template::Expanded)
    }
}

/// Which columns an export's files have (`format.template`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Template {
    /// The columns chosen in `format.columns` (the default).
    #[default]
    Tabular,
    /// Every field of a message, or every statistic of a bucket.
    Expanded,
}

impl Template {
    pub const ALL: [Template; 2] = [Self::Tabular, Self::Expanded];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tabular => "tabular",
            Self::Expanded => "expanded",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// A job's file name as requested (`format.filename`): a plain name that may hold
/// `{{exportId}}` and `{{jobId}}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JobFilename(String);

impl JobFilename {
    /// The placeholders a job's file name may hold.
    pub const PLACEHOLDERS: [&'static str; 2] = ["{{exportId}}", "{{jobId}}"];

    /// A value read back from storage.
    pub(crate) fn stored(text: String) -> Self {
        Self(text)
    }

    /// A plain file name (as an item's `filename`), whose `{{...}}` are only the placeholders.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rest = text.to_owned();
        for placeholder in Self::PLACEHOLDERS {
            rest = rest.replace(placeholder, "x");
        }
        if rest.contains(['{', '}']) {
            return Err(format!(
                "may hold `{{` and `}}` only in the placeholders {}",
                Self::PLACEHOLDERS.join(" and ")
            ));
        }
        Filename::parse(&rest).map_err(str::to_owned)?;
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name with its placeholders filled in.
    pub fn fill(&self, export_id: &str, job_id: &str) -> String {
        self.0
            .replace("{{exportId}}", export_id)
            .replace("{{jobId}}", job_id)
    }
}

/// A label/value tag of an export (`tags`), which the list filters by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tag {
    pub label: String,
    pub value: String,
}

impl Tag {
    /// The most tags an export carries.
    pub const MAX: usize = 20;
    /// The longest label or value, in characters.
    pub const MAX_CHARS: usize = 128;

    /// The text a list filter names it by: `label:value`.
    pub fn joined(&self) -> String {
        format!("{}:{}", self.label, self.value)
    }
}

/// The aggregate function of a decimation (`dsf`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Aggregate {
    Avg,
    Max,
    Min,
    Sum,
    Stddev,
    Variance,
}

impl Aggregate {
    /// Whether each bucket's value lies between its lowest and highest point (so that those
    /// make a band around it): an average, a minimum, a maximum.
    pub fn bounded(self) -> bool {
        matches!(self, Self::Avg | Self::Min | Self::Max)
    }

    pub const ALL: [Aggregate; 6] = [
        Self::Avg,
        Self::Max,
        Self::Min,
        Self::Sum,
        Self::Stddev,
        Self::Variance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Avg => "avg",
            Self::Max => "max",
            Self::Min => "min",
            Self::Sum => "sum",
            Self::Stddev => "stddev",
            Self::Variance => "variance",
        }
    }
}

/// Decimation of one item: buckets of `ds`, reduced with `dsf`; empty buckets as `fill` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decimation {
    pub ds: Granularity,
    pub dsf: Aggregate,
    pub fill: Fill,
}

/// What a decimation writes for a bucket of the window with no point (`decimation.fill`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fill {
    /// No row (the default).
    #[default]
    None,
    /// A row with empty values and a count of 0.
    Null,
    /// A row carrying the last value forward (empty before the first), count 0.
    Previous,
}

impl Fill {
    pub const ALL: [Fill; 3] = [Self::None, Self::Null, Self::Previous];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Null => "null",
            Self::Previous => "previous",
        }
    }
}

/// What is done to an item's values before they are written or decimated (`transform`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transform {
    /// Each value minus the one before it in the series (for counters): the window's first
    /// point has none (an empty value; not counted in a decimation); a counter reset shows as
    /// a negative value.
    Delta,
}

impl Transform {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delta => "delta",
        }
    }
}

/// A SenML name, typically a URN (`urn:cpt:smartdevice:nid:D0CF5EFFFE26FDAB1:onoff`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SenmlName(String);

impl SenmlName {
    /// A value read back from storage: it was valid when written, and is not judged again by
    /// today's rules.
    pub(crate) fn stored(text: String) -> Self {
        Self(text)
    }

    /// Accepts SenML's name characters (`A-Z a-z 0-9 - : . / _`), starting with a letter or digit;
    /// a name starting with `urn:` must also be an RFC 8141 URN (`urn:<nid>:<nss>`).
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let first_ok = text.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if !first_ok || text.len() > 512 {
            return Err("must be a SenML name: 1 to 512 characters starting with a letter or digit");
        }
        if !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-:./_".contains(c))
        {
            return Err("must be a SenML name: only letters, digits and - : . / _");
        }
        if text.len() >= 4 && text[..4].eq_ignore_ascii_case("urn:") {
            let mut parts = text[4..].splitn(2, ':');
            let nid = parts.next().unwrap_or_default();
            let nss = parts.next().unwrap_or_default();
            let nid_ok = (2..=32).contains(&nid.len())
                && nid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !nid.starts_with('-')
                && !nid.ends_with('-');
            if !nid_ok || nss.is_empty() {
                return Err("must be a URN of the form urn:<namespace>:<specific string> (RFC 8141)");
            }
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A message subtopic such as `events.data` (or `events/data` where the reader's dialect
/// separates with `/`): tokens joined by the dialect's separator, no wildcards.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Subtopic(String);

impl Subtopic {
    /// A value read back from storage: it was valid when written, and is not judged again by
    /// today's rules.
    pub(crate) fn stored(text: String) -> Self {
        Self(text)
    }

    /// A subtopic whose tokens are joined by `separator` (`.` or `/`, as the reader's dialect
    /// stores them). Fails naming the separator, and the form the dialect wants when the text
    /// uses the other one.
    pub fn parse(text: &str, separator: char) -> Result<Self, String> {
        let token_ok =
            |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || "-_:".contains(c));
        if !text.is_empty() && text.len() <= 256 && text.split(separator).all(token_ok) {
            return Ok(Self(text.to_owned()));
        }
        let (word, example) = match separator {
            '/' => ("slash", "events/data"),
            _ => ("dot", "events.data"),
        };
        let other = if separator == '/' { '.' } else { '/' };
        let hint = if text.split(other).all(token_ok) && text.contains(other) {
            format!(
                "; this deployment's reader separates subtopic tokens with `{separator}`: write `{}`",
                text.replace(other, &separator.to_string())
            )
        } else {
            String::new()
        };
        Err(format!(
            "must be {word}-separated tokens of letters, digits, - _ : (such as `{example}`), without wildcards{hint}"
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A message table of the reader, on platforms that keep messages of different kinds apart
/// (Connhex: `messages`, `params`, `infos`, `metrics`), asked for with the reader's `format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageTable {
    Messages,
    Params,
    Infos,
    Metrics,
}

impl MessageTable {
    pub const ALL: [Self; 4] = [Self::Messages, Self::Params, Self::Infos, Self::Metrics];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Messages => "messages",
            Self::Params => "params",
            Self::Infos => "infos",
            Self::Metrics => "metrics",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// A file name chosen by the caller: a plain name, never a path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Filename(String);

impl Filename {
    /// A value read back from storage: it was valid when written, and is not judged again by
    /// today's rules.
    pub(crate) fn stored(text: String) -> Self {
        Self(text)
    }

    pub fn parse(text: &str) -> Result<Self, &'static str> {
        if text.trim().is_empty() || text.chars().count() > 120 {
            return Err("must be a name of 1 to 120 characters");
        }
        if text.contains(['/', '\\']) || text == "." || text == ".." || text.starts_with('.') {
            return Err("must be a file name, not a path (no `/`, `\\`, or leading `.`)");
        }
        if text.chars().any(|c| c.is_control() || "<>:\"|?*".contains(c)) {
            return Err("must not contain control characters or any of < > : \" | ? *");
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One series to export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub target: SenmlName,
    pub label: Option<String>,
    /// The further targets of a wide item (`target.value` naming several, comma-separated,
    /// with as many comma-separated labels): its file has a value column per target, joined
    /// on time. Empty for an item of one target.
    pub also: Vec<(SenmlName, Option<String>)>,
    /// The channel's domain, on platforms whose readers have domains (Magistrala, SuperMQ).
    pub domain_id: Option<Uuid>,
    pub channel_id: Uuid,
    pub subtopic: Subtopic,
    /// The message table to read, on platforms that keep several (Connhex); `None`: messages.
    pub table: Option<MessageTable>,
    pub span: ItemSpan,
    pub decimation: Option<Decimation>,
    pub transform: Option<Transform>,
    pub filename: Option<Filename>,
    /// `params.outputFormat: "long"`: a wide item's file has a row per (time, target), the
    /// target's label in `name`, instead of a value column per target.
    pub long: bool,
}

impl Item {
    /// The most targets one item may name.
    pub const MAX_TARGETS: usize = 16;

    /// Every target of the item, the first one first, with its label.
    pub fn targets(&self) -> Vec<(&SenmlName, Option<&str>)> {
        std::iter::once((&self.target, self.label.as_deref()))
            .chain(self.also.iter().map(|(name, label)| (name, label.as_deref())))
            .collect()
    }

    /// Whether the item names several targets (a wide file).
    pub fn is_wide(&self) -> bool {
        !self.also.is_empty()
    }
}

/// When a message is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyPolicy {
    OnSuccess,
    OnFailure,
}

/// One notification message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub policy: NotifyPolicy,
    pub medium: Medium,
    pub title: String,
    pub text: String,
    /// Where it goes; `None`: the medium's default (the creator's email, a configured chat).
    pub target: Option<Target>,
}

/// When the export runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    OneTime,
    Recurring(Recurrence),
}

/// A validated export request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportRequest {
    pub format: Format,
    pub schedule: Schedule,
    pub items: Vec<Item>,
    pub messages: Vec<Message>,
    pub tags: Vec<Tag>,
}

/// The kind of an export, as the `type` field names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportType {
    OneTime,
    Recurring,
}

impl ExportType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OneTime => "oneTime",
            Self::Recurring => "recurring",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "oneTime" => Some(Self::OneTime),
            "recurring" => Some(Self::Recurring),
            _ => None,
        }
    }
}

impl fmt::Display for ExportType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ExportRequest {
    pub fn export_type(&self) -> ExportType {
        match self.schedule {
            Schedule::OneTime => ExportType::OneTime,
            Schedule::Recurring(_) => ExportType::Recurring,
        }
    }
}
