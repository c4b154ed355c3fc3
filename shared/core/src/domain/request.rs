//! The export request of `POST /exports` (spec section 3), parsed from its wire JSON into
//! validated domain types, and printed back in its normalised wire form.
//!
//! Validation walks the JSON itself (not a serde derive) so that it reports *every* problem at
//! once, each with a JSON pointer to the offending place, and names unknown fields. Nothing here
//! reads a clock: the caller passes the creation time used as the default `periodStart`.

use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{json, Map, Number, Value};
use uuid::Uuid;

use super::duration::IsoDuration;
use super::granularity::Granularity;
use super::recurrence::{ItemSpan, Recurrence};

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

/// Size limits of a request; configurable per deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_items: usize,
    pub max_columns: usize,
    pub max_messages: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_items: 100,
            max_columns: 32,
            max_messages: 20,
        }
    }
}

/// Hosts a chat webhook target may name (spec section 8): the official ones by default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookHosts {
    pub slack: Vec<String>,
    pub discord: Vec<String>,
}

impl Default for WebhookHosts {
    fn default() -> Self {
        Self {
            slack: vec!["hooks.slack.com".into()],
            discord: vec!["discord.com".into(), "discordapp.com".into()],
        }
    }
}

/// What a request is validated against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub limits: Limits,
    /// `None` trusts every webhook host: only for re-reading requests the service stored itself.
    pub webhook_hosts: Option<WebhookHosts>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            webhook_hosts: Some(WebhookHosts::default()),
        }
    }
}

impl Policy {
    /// The policy for requests read back from the store: validated once already at creation,
    /// so limits and host checks (which may have changed since) do not apply again.
    pub fn stored() -> Self {
        Self {
            limits: Limits {
                max_items: usize::MAX,
                max_columns: usize::MAX,
                max_messages: usize::MAX,
            },
            webhook_hosts: None,
        }
    }
}

/// The output format of the files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extension {
    Csv,
    /// The seed's `xls`: written as an Office Open XML workbook named `.xlsx`.
    Xls,
    Xlsx,
}

impl Extension {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Xls => "xls",
            Self::Xlsx => "xlsx",
        }
    }

    /// The extension of the files written.
    pub fn file_extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Xls | Self::Xlsx => "xlsx",
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
}

impl ColumnId {
    pub const ALL: [ColumnId; 14] = [
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
        }
    }

    /// Parses camelCase or snake_case (`stringValue`, `string_value`).
    pub fn parse(text: &str) -> Option<Self> {
        let folded: String = text
            .chars()
            .filter(|&c| c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().to_ascii_lowercase() == folded && (text.contains('_') || text == c.as_str()))
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

/// Decimation of one item: buckets of `ds`, reduced with `dsf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decimation {
    pub ds: Granularity,
    pub dsf: Aggregate,
}

/// A SenML name, typically a URN (`urn:cpt:smartdevice:nid:D0CF5EFFFE26FDAB1:onoff`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SenmlName(String);

impl SenmlName {
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

/// A message subtopic such as `events.data`: dot-separated tokens, no wildcards.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Subtopic(String);

impl Subtopic {
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let token_ok =
            |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || "-_:".contains(c));
        if text.is_empty() || text.len() > 256 || !text.split('.').all(token_ok) {
            return Err("must be dot-separated tokens of letters, digits, - _ : (such as `events.data`), without wildcards");
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A file name chosen by the caller: a plain name, never a path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Filename(String);

impl Filename {
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
    pub channel_id: Uuid,
    pub subtopic: Subtopic,
    pub span: ItemSpan,
    pub decimation: Option<Decimation>,
    pub filename: Option<Filename>,
}

/// When a message is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyPolicy {
    OnSuccess,
    OnFailure,
}

/// Through what a message is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Medium {
    Email,
    Telegram,
    Slack,
    Discord,
}

impl Medium {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Telegram => "telegram",
            Self::Slack => "slack",
            Self::Discord => "discord",
        }
    }
}

/// One notification message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub policy: NotifyPolicy,
    pub medium: Medium,
    pub title: String,
    pub text: String,
    pub target: Option<String>,
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
    /// Validates a request body. `now` is the default anchor of a recurrence.
    ///
    /// Fails with every problem found, each at its JSON pointer.
    pub fn parse(body: &Value, now: DateTime<Utc>, policy: &Policy) -> Result<Self, Vec<Problem>> {
        let mut check = Checker {
            problems: Vec::new(),
            policy,
        };
        let request = check.request(body, now);
        match request {
            Some(request) if check.problems.is_empty() => Ok(request),
            _ => {
                if check.problems.is_empty() {
                    check
                        .problems
                        .push(Problem::new("", "is not a valid export request"));
                }
                Err(check.problems)
            }
        }
    }

    pub fn export_type(&self) -> ExportType {
        match self.schedule {
            Schedule::OneTime => ExportType::OneTime,
            Schedule::Recurring(_) => ExportType::Recurring,
        }
    }

    /// The normalised wire form: canonical column ids, the timezone as `{"name": ...}`,
    /// `periodStart` filled in, unset (`0`) times and absent options left out.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert(
            "format".into(),
            json!({
                "extension": self.format.extension.as_str(),
                "columns": self.format.columns.iter()
                    .map(|c| json!({"id": c.id.as_str(), "label": c.label}))
                    .collect::<Vec<_>>(),
                "timezone": {"name": self.format.timezone.name()},
                "csvDelimiter": char::from(self.format.csv_delimiter).to_string(),
            }),
        );
        out.insert("type".into(), json!(self.export_type().as_str()));
        out.insert(
            "items".into(),
            Value::Array(self.items.iter().map(item_json).collect()),
        );
        if let Schedule::Recurring(r) = &self.schedule {
            out.insert("periodicity".into(), json!(r.every.to_string()));
            out.insert("periodStart".into(), unix_json(r.anchor));
        }
        out.insert(
            "notification".into(),
            json!({"messages": self.messages.iter().map(message_json).collect::<Vec<_>>()}),
        );
        Value::Object(out)
    }
}

fn item_json(item: &Item) -> Value {
    let mut target = Map::new();
    target.insert("value".into(), json!(item.target.as_str()));
    if let Some(label) = &item.label {
        target.insert("label".into(), json!(label));
    }
    let mut params = Map::new();
    params.insert("target".into(), Value::Object(target));
    params.insert("channelId".into(), json!(item.channel_id.to_string()));
    params.insert("subtopic".into(), json!(item.subtopic.as_str()));
    if let Some(from) = item.span.from {
        params.insert("from".into(), unix_json(from));
    }
    if let Some(to) = item.span.to {
        params.insert("to".into(), unix_json(to));
    }
    if let Some(period) = item.span.period {
        params.insert("period".into(), json!(period.to_string()));
    }
    if let Some(d) = item.decimation {
        params.insert(
            "decimation".into(),
            json!({"ds": d.ds.to_string(), "dsf": d.dsf.as_str()}),
        );
    }
    let mut out = Map::new();
    out.insert("params".into(), Value::Object(params));
    if let Some(name) = &item.filename {
        out.insert("filename".into(), json!(name.as_str()));
    }
    Value::Object(out)
}

fn message_json(m: &Message) -> Value {
    let mut out = json!({
        "policy": match m.policy { NotifyPolicy::OnSuccess => "onSuccess", NotifyPolicy::OnFailure => "onFailure" },
        "medium": m.medium.as_str(),
        "title": m.title,
        "text": m.text,
    });
    if let (Some(target), Value::Object(map)) = (&m.target, &mut out) {
        map.insert("target".into(), json!(target));
    }
    out
}

/// Unix seconds as a JSON number: an integer when whole, else a fraction.
pub fn unix_json(t: DateTime<Utc>) -> Value {
    if t.timestamp_subsec_nanos() == 0 {
        json!(t.timestamp())
    } else {
        Number::from_f64(t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9)
            .map_or(Value::Null, Value::Number)
    }
}

/// The latest Unix time accepted: 9999-12-31T23:59:59Z.
const MAX_UNIX: f64 = 253_402_300_799.0;

/// Reads Unix seconds; `0` means unset.
fn unix_from_f64(secs: f64) -> Option<Option<DateTime<Utc>>> {
    if !secs.is_finite() || !(0.0..=MAX_UNIX).contains(&secs) {
        return None;
    }
    if secs == 0.0 {
        return Some(None);
    }
    let whole = secs.trunc();
    let nanos = ((secs - whole) * 1e9).round().min(999_999_999.0) as u32;
    Some(DateTime::from_timestamp(whole as i64, nanos))
}

/// JSON pointer of `key` below `base` (RFC 6901 escaping).
fn join(base: &str, key: &str) -> String {
    format!("{base}/{}", key.replace('~', "~0").replace('/', "~1"))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The closest known name to a misspelt one, when it is close enough to be a typo.
fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut previous = row[0];
            row[0] = i + 1;
            for (j, &cb) in b.iter().enumerate() {
                let current = row[j + 1];
                row[j + 1] = (previous + usize::from(ca != cb))
                    .min(row[j] + 1)
                    .min(current + 1);
                previous = current;
            }
        }
        row[b.len()]
    }
    known
        .iter()
        .map(|k| (distance(&word.to_ascii_lowercase(), &k.to_ascii_lowercase()), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

struct Checker<'p> {
    problems: Vec<Problem>,
    policy: &'p Policy,
}

impl Checker<'_> {
    fn fail(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    fn object<'v>(&mut self, v: &'v Value, path: &str, fields: &[&str]) -> Option<&'v Map<String, Value>> {
        let Value::Object(map) = v else {
            self.fail(path, format!("must be an object, found {}", type_name(v)));
            return None;
        };
        for key in map.keys().filter(|k| !fields.contains(&k.as_str())) {
            let hint = match closest(key, fields) {
                Some(near) => format!("; did you mean `{near}`?"),
                None => format!("; expected one of: {}", fields.join(", ")),
            };
            self.fail(&join(path, key), format!("unknown field `{key}`{hint}"));
        }
        Some(map)
    }

    fn required<'v>(&mut self, map: &'v Map<String, Value>, path: &str, key: &str) -> Option<&'v Value> {
        match map.get(key) {
            None | Some(Value::Null) => {
                self.fail(&join(path, key), "is required");
                None
            }
            Some(v) => Some(v),
        }
    }

    fn string<'v>(&mut self, v: &'v Value, path: &str, max_chars: usize) -> Option<&'v str> {
        match v {
            Value::String(s) if s.chars().count() > max_chars => {
                self.fail(path, format!("must be at most {max_chars} characters"));
                None
            }
            Value::String(s) => Some(s),
            other => {
                self.fail(path, format!("must be a string, found {}", type_name(other)));
                None
            }
        }
    }

    fn array<'v>(&mut self, v: &'v Value, path: &str, min: usize, max: usize) -> Option<&'v [Value]> {
        match v {
            Value::Array(a) if a.len() < min => {
                self.fail(path, format!("must have at least {min} element(s)"));
                None
            }
            Value::Array(a) if a.len() > max => {
                self.fail(
                    path,
                    format!("must have at most {max} elements, found {}", a.len()),
                );
                None
            }
            Value::Array(a) => Some(a),
            other => {
                self.fail(path, format!("must be an array, found {}", type_name(other)));
                None
            }
        }
    }

    fn one_of<T: Copy>(&mut self, v: &Value, path: &str, options: &[(&str, T)]) -> Option<T> {
        let text = self.string(v, path, 64)?;
        let found = options.iter().find(|(name, _)| *name == text).map(|(_, t)| *t);
        if found.is_none() {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            self.fail(
                path,
                format!("must be one of: {} (found `{text}`)", names.join(", ")),
            );
        }
        found
    }

    fn duration(&mut self, v: &Value, path: &str) -> Option<IsoDuration> {
        let text = self.string(v, path, 64)?;
        match text.parse::<IsoDuration>() {
            Ok(d) => Some(d),
            Err(e) => {
                self.fail(path, format!("must be an ISO 8601 duration: `{text}` {e}"));
                None
            }
        }
    }

    /// Unix seconds, `0` meaning unset: `Some(None)` for unset.
    fn unix(&mut self, v: Option<&Value>, path: &str) -> Option<Option<DateTime<Utc>>> {
        match v {
            None | Some(Value::Null) => Some(None),
            Some(Value::Number(n)) => {
                let parsed = n.as_f64().and_then(unix_from_f64);
                if parsed.is_none() {
                    self.fail(
                        path,
                        "must be Unix seconds between 0 (unset) and 253402300799 (year 9999)",
                    );
                }
                parsed
            }
            Some(other) => {
                self.fail(
                    path,
                    format!("must be a number of Unix seconds, found {}", type_name(other)),
                );
                None
            }
        }
    }

    fn request(&mut self, body: &Value, now: DateTime<Utc>) -> Option<ExportRequest> {
        const FIELDS: [&str; 6] = [
            "format",
            "type",
            "items",
            "periodicity",
            "periodStart",
            "notification",
        ];
        let map = self.object(body, "", &FIELDS)?;
        let format = self.required(map, "", "format").and_then(|v| self.format(v));
        let kind = self.required(map, "", "type").and_then(|v| {
            self.one_of(
                v,
                "/type",
                &[
                    ("oneTime", ExportType::OneTime),
                    ("recurring", ExportType::Recurring),
                ],
            )
        });
        let periodicity = match map.get("periodicity") {
            None | Some(Value::Null) => None,
            Some(v) => self.duration(v, "/periodicity").and_then(|d| {
                if d.at_least_seconds(60) {
                    Some(d)
                } else {
                    self.fail("/periodicity", "must be at least one minute (PT1M)");
                    None
                }
            }),
        };
        let period_start = self.unix(map.get("periodStart"), "/periodStart");
        let items = self.required(map, "", "items").and_then(|v| self.items(v, kind));
        let messages = self
            .required(map, "", "notification")
            .and_then(|v| self.notification(v));

        let schedule = match kind? {
            ExportType::OneTime => {
                if map.get("periodicity").is_some_and(|v| !v.is_null()) {
                    self.fail("/periodicity", "must not be set when `type` is `oneTime`");
                }
                if period_start.flatten().is_some() {
                    self.fail("/periodStart", "must not be set when `type` is `oneTime`");
                }
                Schedule::OneTime
            }
            ExportType::Recurring => {
                if map.get("periodicity").is_none_or(Value::is_null) {
                    self.fail("/periodicity", "is required when `type` is `recurring`");
                }
                // The default anchor is whole seconds: it is stored as Unix seconds and must
                // read back as the very same instant, or occurrence times would drift.
                let default_anchor = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
                Schedule::Recurring(Recurrence {
                    anchor: period_start?.unwrap_or(default_anchor),
                    every: periodicity?,
                    tz: format.as_ref()?.timezone,
                })
            }
        };
        let format = format?;
        let items = items?;
        if format.columns.iter().any(|c| c.id == ColumnId::Count)
            && items.iter().all(|i| i.decimation.is_none())
        {
            let at = format
                .columns
                .iter()
                .position(|c| c.id == ColumnId::Count)
                .unwrap_or_default();
            self.fail(
                &format!("/format/columns/{at}/id"),
                "`count` needs an item with `decimation`",
            );
        }
        Some(ExportRequest {
            format,
            schedule,
            items,
            messages: messages?,
        })
    }

    fn format(&mut self, v: &Value) -> Option<Format> {
        let map = self.object(
            v,
            "/format",
            &["extension", "columns", "timezone", "csvDelimiter"],
        )?;
        let extension = self.required(map, "/format", "extension").and_then(|v| {
            self.one_of(
                v,
                "/format/extension",
                &[
                    ("csv", Extension::Csv),
                    ("xls", Extension::Xls),
                    ("xlsx", Extension::Xlsx),
                ],
            )
        });
        let columns = self
            .required(map, "/format", "columns")
            .and_then(|v| self.columns(v));
        let timezone = match map.get("timezone") {
            None | Some(Value::Null) => Some(Tz::UTC),
            Some(v) => self.timezone(v),
        };
        let csv_delimiter = match map.get("csvDelimiter") {
            None | Some(Value::Null) => Some(b','),
            Some(v) => self
                .string(v, "/format/csvDelimiter", 1)
                .and_then(|s| match s.as_bytes() {
                    [c] if c.is_ascii()
                        && !b"\"\r\n".contains(c)
                        && (c.is_ascii_graphic() || *c == b'\t' || *c == b' ') =>
                    {
                        Some(*c)
                    }
                    _ => {
                        self.fail(
                            "/format/csvDelimiter",
                            "must be one ASCII character other than a quote or a line break",
                        );
                        None
                    }
                }),
        };
        Some(Format {
            extension: extension?,
            columns: columns?,
            timezone: timezone?,
            csv_delimiter: csv_delimiter?,
        })
    }

    fn columns(&mut self, v: &Value) -> Option<Vec<Column>> {
        let max = self.policy.limits.max_columns;
        let list = self.array(v, "/format/columns", 1, max)?;
        let mut columns = Vec::with_capacity(list.len());
        let mut ok = true;
        for (i, entry) in list.iter().enumerate() {
            let path = format!("/format/columns/{i}");
            let Some(map) = self.object(entry, &path, &["id", "label"]) else {
                ok = false;
                continue;
            };
            let id = self.required(map, &path, "id").and_then(|v| {
                let text = self.string(v, &format!("{path}/id"), 64)?;
                let id = ColumnId::parse(text);
                if id.is_none() {
                    let valid: Vec<&str> = ColumnId::ALL.iter().map(|c| c.as_str()).collect();
                    self.fail(
                        &format!("{path}/id"),
                        format!("unknown column `{text}`; valid ids: {}", valid.join(", ")),
                    );
                }
                id
            });
            let label = self
                .required(map, &path, "label")
                .and_then(|v| self.string(v, &format!("{path}/label"), 256));
            match (id, label) {
                (Some(id), Some(label)) => columns.push(Column {
                    id,
                    label: label.to_owned(),
                }),
                _ => ok = false,
            }
        }
        ok.then_some(columns)
    }

    fn timezone(&mut self, v: &Value) -> Option<Tz> {
        let (name, path) = match v {
            Value::String(s) => (s.as_str(), "/format/timezone".to_owned()),
            Value::Object(_) => {
                let map = self.object(v, "/format/timezone", &["name"])?;
                match map.get("name") {
                    None | Some(Value::Null) => return Some(Tz::UTC),
                    Some(name) => (
                        self.string(name, "/format/timezone/name", 64)?,
                        "/format/timezone/name".to_owned(),
                    ),
                }
            }
            other => {
                self.fail(
                    "/format/timezone",
                    format!(
                        "must be an IANA zone name or {{\"name\": ...}}, found {}",
                        type_name(other)
                    ),
                );
                return None;
            }
        };
        if name.eq_ignore_ascii_case("utc") {
            return Some(Tz::UTC);
        }
        let tz = name.parse::<Tz>().ok();
        if tz.is_none() {
            self.fail(
                &path,
                format!("unknown timezone `{name}`; use an IANA name such as `Europe/Rome`"),
            );
        }
        tz
    }

    fn items(&mut self, v: &Value, kind: Option<ExportType>) -> Option<Vec<Item>> {
        let max = self.policy.limits.max_items;
        let list = self.array(v, "/items", 1, max)?;
        let mut items = Vec::with_capacity(list.len());
        let mut ok = true;
        for (i, entry) in list.iter().enumerate() {
            match self.item(entry, &format!("/items/{i}"), kind) {
                Some(item) => items.push(item),
                None => ok = false,
            }
        }
        ok.then_some(items)
    }

    fn item(&mut self, v: &Value, path: &str, kind: Option<ExportType>) -> Option<Item> {
        let map = self.object(v, path, &["params", "filename"])?;
        let filename = match map.get("filename") {
            None | Some(Value::Null) => Some(None),
            Some(v) => {
                let at = format!("{path}/filename");
                self.string(v, &at, 1000).and_then(|s| match Filename::parse(s) {
                    Ok(f) => Some(Some(f)),
                    Err(e) => {
                        self.fail(&at, e);
                        None
                    }
                })
            }
        };
        let params_path = format!("{path}/params");
        let params = self.required(map, path, "params")?;
        let params = self.object(
            params,
            &params_path,
            &[
                "target",
                "channelId",
                "subtopic",
                "from",
                "to",
                "period",
                "decimation",
            ],
        )?;
        let p = params_path.as_str();
        let target = self.required(params, p, "target").and_then(|v| {
            let at = format!("{p}/target");
            let map = self.object(v, &at, &["value", "label"])?;
            let value = self.required(map, &at, "value").and_then(|v| {
                let text = self.string(v, &format!("{at}/value"), 512)?;
                SenmlName::parse(text)
                    .map_err(|e| self.fail(&format!("{at}/value"), e))
                    .ok()
            });
            let label = match map.get("label") {
                None | Some(Value::Null) => Some(None),
                Some(v) => self
                    .string(v, &format!("{at}/label"), 256)
                    .map(|s| Some(s.to_owned())),
            };
            Some((value?, label?))
        });
        let channel_id = self.required(params, p, "channelId").and_then(|v| {
            let at = format!("{p}/channelId");
            let text = self.string(v, &at, 64)?;
            match Uuid::try_parse(text) {
                Ok(id) if text.len() == 36 => Some(id),
                _ => {
                    self.fail(
                        &at,
                        format!(
                            "must be a UUID such as 0115c85d-ef3e-4de9-9732-d0c5c4f2c482 (found `{text}`)"
                        ),
                    );
                    None
                }
            }
        });
        let subtopic = self.required(params, p, "subtopic").and_then(|v| {
            let at = format!("{p}/subtopic");
            let text = self.string(v, &at, 256)?;
            Subtopic::parse(text).map_err(|e| self.fail(&at, e)).ok()
        });
        let from = self.unix(params.get("from"), &format!("{p}/from"));
        let to = self.unix(params.get("to"), &format!("{p}/to"));
        let period = match params.get("period") {
            None | Some(Value::Null) => Some(None),
            Some(v) => self.duration(v, &format!("{p}/period")).map(Some),
        };
        let decimation = match params.get("decimation") {
            None | Some(Value::Null) => Some(None),
            Some(v) => self.decimation(v, &format!("{p}/decimation")).map(Some),
        };
        let (from, to) = (from?, to?);
        if kind == Some(ExportType::Recurring) {
            for (name, value) in [("from", from), ("to", to)] {
                if value.is_some() {
                    self.fail(
                        &format!("{p}/{name}"),
                        "must be 0 or absent for a `recurring` export; its window follows the periodicity",
                    );
                }
            }
        }
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                self.fail(
                    &format!("{p}/to"),
                    "must be later than `from` (the window is [from, to))",
                );
            }
        }
        let (target, label) = target?;
        Some(Item {
            target,
            label,
            channel_id: channel_id?,
            subtopic: subtopic?,
            span: ItemSpan {
                from,
                to,
                period: period?,
            },
            decimation: decimation?,
            filename: filename?,
        })
    }

    fn decimation(&mut self, v: &Value, path: &str) -> Option<Decimation> {
        let map = self.object(v, path, &["ds", "dsf"])?;
        let ds = self.required(map, path, "ds").and_then(|v| {
            let at = format!("{path}/ds");
            let text = self.string(v, &at, 32)?;
            match text.parse::<Granularity>() {
                Ok(g) => Some(g),
                Err(e) => {
                    self.fail(&at, format!("`{text}` {e}"));
                    None
                }
            }
        });
        let dsf = self.required(map, path, "dsf").and_then(|v| {
            let options: Vec<(&str, Aggregate)> = Aggregate::ALL.iter().map(|a| (a.as_str(), *a)).collect();
            self.one_of(v, &format!("{path}/dsf"), &options)
        });
        Some(Decimation { ds: ds?, dsf: dsf? })
    }

    fn notification(&mut self, v: &Value) -> Option<Vec<Message>> {
        let map = self.object(v, "/notification", &["messages"])?;
        let list = self.required(map, "/notification", "messages")?;
        let max = self.policy.limits.max_messages;
        let list = self.array(list, "/notification/messages", 0, max)?;
        let mut messages = Vec::with_capacity(list.len());
        let mut ok = true;
        for (i, entry) in list.iter().enumerate() {
            match self.message(entry, &format!("/notification/messages/{i}")) {
                Some(m) => messages.push(m),
                None => ok = false,
            }
        }
        ok.then_some(messages)
    }

    fn message(&mut self, v: &Value, path: &str) -> Option<Message> {
        let map = self.object(v, path, &["policy", "medium", "title", "text", "target"])?;
        let policy = self.required(map, path, "policy").and_then(|v| {
            self.one_of(
                v,
                &format!("{path}/policy"),
                &[
                    ("onSuccess", NotifyPolicy::OnSuccess),
                    ("onFailure", NotifyPolicy::OnFailure),
                ],
            )
        });
        let medium = self.required(map, path, "medium").and_then(|v| {
            self.one_of(
                v,
                &format!("{path}/medium"),
                &[
                    ("email", Medium::Email),
                    ("telegram", Medium::Telegram),
                    ("slack", Medium::Slack),
                    ("discord", Medium::Discord),
                ],
            )
        });
        let title = self
            .required(map, path, "title")
            .and_then(|v| self.string(v, &format!("{path}/title"), 256));
        let text = self
            .required(map, path, "text")
            .and_then(|v| self.string(v, &format!("{path}/text"), 4000));
        let target = match map.get("target") {
            None | Some(Value::Null) => Some(None),
            Some(v) => {
                let at = format!("{path}/target");
                let text = self.string(v, &at, 2048);
                match (text, medium) {
                    (Some(text), Some(medium)) => {
                        match check_target(medium, text, self.policy.webhook_hosts.as_ref()) {
                            Ok(()) => Some(Some(text.to_owned())),
                            Err(e) => {
                                self.fail(&at, e);
                                None
                            }
                        }
                    }
                    _ => None,
                }
            }
        };
        Some(Message {
            policy: policy?,
            medium: medium?,
            title: title?.to_owned(),
            text: text?.to_owned(),
            target: target?,
        })
    }
}

/// Checks a message's `target` for its medium: an email address, a Telegram chat id, or a
/// webhook URL on an allowed host (https, or http on a loopback host for local runs).
/// With `hosts` `None` the host is not checked (requests the service stored itself).
pub fn check_target(medium: Medium, target: &str, hosts: Option<&WebhookHosts>) -> Result<(), String> {
    match medium {
        Medium::Email => {
            let (local, domain) = target.rsplit_once('@').unwrap_or_default();
            let ok = !local.is_empty()
                && local.len() <= 64
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && domain
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                && !target
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c));
            if ok {
                Ok(())
            } else {
                Err("must be an email address such as ops@example.com for medium `email`".into())
            }
        }
        Medium::Telegram => {
            let numeric = target.strip_prefix('-').unwrap_or(target);
            let is_id =
                !numeric.is_empty() && numeric.len() <= 20 && numeric.bytes().all(|b| b.is_ascii_digit());
            let is_channel = target.strip_prefix('@').is_some_and(|n| {
                (5..=32).contains(&n.len()) && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            if is_id || is_channel {
                Ok(())
            } else {
                Err("must be a Telegram chat id (such as -1001234567890) or @channelname for medium `telegram`".into())
            }
        }
        Medium::Slack | Medium::Discord => {
            let example = match medium {
                Medium::Slack => "https://hooks.slack.com/services/...",
                _ => "https://discord.com/api/webhooks/...",
            };
            let url =
                url::Url::parse(target).map_err(|_| format!("must be a webhook URL such as {example}"))?;
            let host = url.host_str().unwrap_or_default();
            let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
            let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
            if !scheme_ok || !url.username().is_empty() || url.password().is_some() {
                return Err(format!("must be an https webhook URL such as {example}"));
            }
            let Some(hosts) = hosts else { return Ok(()) };
            let allowed = if medium == Medium::Slack {
                &hosts.slack
            } else {
                &hosts.discord
            };
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(host)) {
                return Err(format!(
                    "must be a {} webhook on an allowed host ({}); `{host}` is not allowed",
                    medium.as_str(),
                    allowed.join(", ")
                ));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000, 0).expect("in range")
    }

    #[test]
    fn accepts_snake_and_camel_case_column_ids() {
        assert_eq!(ColumnId::parse("stringValue"), Some(ColumnId::StringValue));
        assert_eq!(ColumnId::parse("string_value"), Some(ColumnId::StringValue));
        assert_eq!(ColumnId::parse("stringvalue"), None);
        assert_eq!(ColumnId::parse("update_time"), Some(ColumnId::UpdateTime));
    }

    #[test]
    fn names_a_misspelt_field_and_suggests_the_right_one() {
        let body = json!({"perodicity": "P1D"});
        let problems = ExportRequest::parse(&body, now(), &Policy::default()).expect_err("invalid");
        let typo = problems
            .iter()
            .find(|p| p.path == "/perodicity")
            .expect("reported");
        assert!(
            typo.message.contains("did you mean `periodicity`"),
            "{}",
            typo.message
        );
        assert!(problems
            .iter()
            .any(|p| p.path == "/format" && p.message == "is required"));
    }

    #[test]
    fn urns_must_have_a_namespace_and_a_specific_string() {
        assert!(SenmlName::parse("urn:cpt:smartdevice:nid:D0CF5EFFFE26FDAB1:onoff").is_ok());
        assert!(SenmlName::parse("temperature").is_ok());
        assert!(SenmlName::parse("urn:x:").is_err());
        assert!(SenmlName::parse("urn::abc").is_err());
        assert!(SenmlName::parse("urn:cpt smartdevice").is_err());
    }

    #[test]
    fn webhook_targets_must_be_on_an_allowed_host() {
        let default_hosts = WebhookHosts::default();
        let hosts = Some(&default_hosts);
        assert!(check_target(Medium::Slack, "https://hooks.slack.com/services/T/B/X", hosts).is_ok());
        assert!(check_target(Medium::Slack, "https://evil.example/services/T/B/X", hosts).is_err());
        assert!(check_target(Medium::Discord, "http://discord.com/api/webhooks/1/x", hosts).is_err());
        assert!(check_target(Medium::Email, "not-an-email", hosts).is_err());
        assert!(check_target(Medium::Telegram, "-1001234567890", hosts).is_ok());
    }
}
