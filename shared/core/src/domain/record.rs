//! What is stored of an export's request: a small versioned record of its own (serde), written
//! and read without the API's validator, so that tightening a validation rule never makes an
//! old record unreadable (and its runs fail).
//!
//! | version | where | shape |
//! |---|---|---|
//! | 1 | the `record` attribute | [`RecordV1`]: `{"version": 1, ...}`, times as RFC 3339 with nanoseconds (exact), durations and granularities in their canonical text |
//! | 0 | the `request` attribute (written until version 1) | the API's normalised request JSON, times as Unix seconds: read by [`read_v0`], frozen |
//!
//! Reading trusts what was stored: values are parsed for their structure (a time, a URL, a
//! known column id), never judged against today's limits, host lists or name rules. A record that
//! cannot be read is an error naming the field, never a panic.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::recurrence::{ItemSpan, Recurrence};
use super::request::{
    Aggregate, Column, ColumnId, Decimation, EmailAddress, ExportRequest, Filename, Fill, Format, Item,
    JobFilename, Medium, Message, MessageTable, NotifyPolicy, PageSize, PdfPages, Schedule, SenmlName,
    Subtopic, Tag, Target, TelegramChat, Template, Transform, WebhookUrl,
};

/// The version this code writes.
pub const VERSION: u32 = 1;

/// Why a stored record could not be read: the field, and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored request, {field}: {problem}")]
pub struct RecordError {
    pub field: String,
    pub problem: String,
}

fn bad(field: &str, problem: impl ToString) -> RecordError {
    RecordError {
        field: field.to_owned(),
        problem: problem.to_string(),
    }
}

/// Version 1 of the stored request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordV1 {
    pub version: u32,
    pub format: FormatV1,
    /// `None` for a one-time export.
    pub recurrence: Option<RecurrenceV1>,
    pub items: Vec<ItemV1>,
    pub messages: Vec<MessageV1>,
    /// `(label, value)` pairs; absent in records written before tags (and where none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormatV1 {
    pub extension: String,
    /// `(id, label)` pairs, ids in their canonical camelCase.
    pub columns: Vec<(String, String)>,
    pub timezone: String,
    pub csv_delimiter: char,
    /// Absent in records written before the option: on, as then.
    #[serde(default = "on")]
    pub escape_formulas: bool,
    /// Absent in records written before the option: off, as then.
    #[serde(default)]
    pub csv_bom: bool,
    /// Absent in records written before the option: a decimal point, as then.
    #[serde(default)]
    pub csv_decimal_comma: bool,
    /// `template`; absent in records written before it (and for `tabular`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The job's file name; absent in records written before it (and where none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// `localTime`; absent in records written before it (and when off).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local_time: bool,
    /// A report's pages (`pageSize`, `orientation`); absent in records written before it (and
    /// for the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdf: Option<(String, String)>,
}

fn on() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecurrenceV1 {
    pub anchor: DateTime<Utc>,
    pub every: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemV1 {
    pub name: String,
    pub label: Option<String>,
    /// The channel's domain; absent in records written before domains (and where none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<Uuid>,
    pub channel: Uuid,
    pub subtopic: String,
    /// The message table (Connhex's `format`); absent in records written before it (and for
    /// the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub period: Option<String>,
    /// `(granularity, function)`, such as `("15m", "avg")`.
    pub decimation: Option<(String, String)>,
    /// `decimation.fill`; absent in records written before the option (and for `none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill: Option<String>,
    /// `transform`; absent in records written before the option (and for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
    pub filename: Option<String>,
    /// `outputFormat: long`; absent in records written before it (and for a wide file).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub long: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageV1 {
    pub policy: String,
    pub medium: String,
    pub title: String,
    pub text: String,
    pub target: Option<String>,
}

impl RecordV1 {
    /// The record of a request.
    pub fn of(request: &ExportRequest) -> Self {
        let format = &request.format;
        Self {
            version: VERSION,
            format: FormatV1 {
                extension: format.extension.as_str().to_owned(),
                columns: format
                    .columns
                    .iter()
                    .map(|c| (c.id.as_str().to_owned(), c.label.clone()))
                    .collect(),
                timezone: format.timezone.name().to_owned(),
                csv_delimiter: char::from(format.csv_delimiter),
                escape_formulas: format.escape_formulas,
                csv_bom: format.csv_bom,
                csv_decimal_comma: format.csv_decimal_comma,
                template: (format.template != Template::Tabular).then(|| format.template.as_str().to_owned()),
                filename: format.filename.as_ref().map(|f| f.as_str().to_owned()),
                local_time: format.local_time,
                pdf: (format.pdf != PdfPages::default()).then(|| {
                    (
                        format.pdf.size.as_str().to_owned(),
                        if format.pdf.landscape {
                            "landscape"
                        } else {
                            "portrait"
                        }
                        .to_owned(),
                    )
                }),
            },
            recurrence: match request.schedule {
                Schedule::OneTime => None,
                Schedule::Recurring(r) => Some(RecurrenceV1 {
                    anchor: r.anchor,
                    every: r.every.to_string(),
                }),
            },
            items: request
                .items
                .iter()
                .map(|item| ItemV1 {
                    // A wide item's targets and labels, comma-separated as in the request.
                    name: super::request::wire::joined_targets(item).0,
                    label: super::request::wire::joined_targets(item).1,
                    domain: item.domain_id,
                    channel: item.channel_id,
                    subtopic: item.subtopic.as_str().to_owned(),
                    table: item.table.map(|t| t.as_str().to_owned()),
                    from: item.span.from,
                    to: item.span.to,
                    period: item.span.period.map(|p| p.to_string()),
                    decimation: item
                        .decimation
                        .map(|d| (d.ds.to_string(), d.dsf.as_str().to_owned())),
                    fill: item
                        .decimation
                        .filter(|d| d.fill != Fill::None)
                        .map(|d| d.fill.as_str().to_owned()),
                    transform: item.transform.map(|t| t.as_str().to_owned()),
                    filename: item.filename.as_ref().map(|f| f.as_str().to_owned()),
                    long: item.long,
                })
                .collect(),
            messages: request
                .messages
                .iter()
                .map(|m| MessageV1 {
                    policy: policy_name(m.policy).to_owned(),
                    medium: m.medium.as_str().to_owned(),
                    title: m.title.clone(),
                    text: m.text.clone(),
                    target: m.target.as_ref().map(|t| t.as_str().to_owned()),
                })
                .collect(),
            tags: request
                .tags
                .iter()
                .map(|t| (t.label.clone(), t.value.clone()))
                .collect(),
        }
    }

    /// The request this record holds.
    ///
    /// Fails naming the field when a value is not even structurally what was written (a record
    /// damaged or written by something else).
    pub fn request(&self) -> Result<ExportRequest, RecordError> {
        if self.version != VERSION {
            return Err(bad(
                "version",
                format!("{} is not version {VERSION}", self.version),
            ));
        }
        let f = &self.format;
        let extension = match crate::domain::formats::named(&f.extension) {
            Some(extension) => extension,
            None => return Err(bad("format.extension", format!("unknown `{}`", f.extension))),
        };
        let columns = f
            .columns
            .iter()
            .map(|(id, label)| {
                let id = ColumnId::ALL
                    .into_iter()
                    .find(|c| c.as_str() == id)
                    .ok_or_else(|| bad("format.columns", format!("unknown column `{id}`")))?;
                Ok(Column {
                    id,
                    label: label.clone(),
                })
            })
            .collect::<Result<_, RecordError>>()?;
        let timezone: Tz = f
            .timezone
            .parse()
            .map_err(|_| bad("format.timezone", format!("unknown zone `{}`", f.timezone)))?;
        let csv_delimiter = u8::try_from(f.csv_delimiter)
            .ok()
            .filter(u8::is_ascii)
            .ok_or_else(|| bad("format.csvDelimiter", "not an ASCII character"))?;
        let schedule = match &self.recurrence {
            None => Schedule::OneTime,
            Some(r) => Schedule::Recurring(Recurrence {
                anchor: r.anchor,
                every: r.every.parse().map_err(|e| bad("recurrence.every", e))?,
                tz: timezone,
            }),
        };
        let items = self
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| item.item(i))
            .collect::<Result<_, _>>()?;
        let messages = self
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| m.message(i))
            .collect::<Result<_, _>>()?;
        Ok(ExportRequest {
            format: Format {
                extension,
                columns,
                timezone,
                csv_delimiter,
                escape_formulas: f.escape_formulas,
                csv_bom: f.csv_bom,
                csv_decimal_comma: f.csv_decimal_comma,
                template: match f.template.as_deref() {
                    None => Template::Tabular,
                    Some(name) => Template::parse(name)
                        .ok_or_else(|| bad("format.template", format!("unknown template `{name}`")))?,
                },
                filename: f.filename.clone().map(JobFilename::stored),
                local_time: f.local_time,
                pdf: match &f.pdf {
                    None => PdfPages::default(),
                    Some((size, orientation)) => PdfPages {
                        size: PageSize::parse(size)
                            .ok_or_else(|| bad("format.pdf", format!("unknown page size `{size}`")))?,
                        landscape: orientation == "landscape",
                    },
                },
            },
            schedule,
            items,
            messages,
            tags: self
                .tags
                .iter()
                .map(|(label, value)| Tag {
                    label: label.clone(),
                    value: value.clone(),
                })
                .collect(),
        })
    }
}

impl ItemV1 {
    fn item(&self, index: usize) -> Result<Item, RecordError> {
        let field = |name: &str| format!("items.{index}.{name}");
        let decimation = match &self.decimation {
            None => None,
            Some((ds, dsf)) => Some(Decimation {
                ds: ds.parse().map_err(|e| bad(&field("decimation"), e))?,
                dsf: Aggregate::ALL
                    .into_iter()
                    .find(|a| a.as_str() == dsf)
                    .ok_or_else(|| bad(&field("decimation"), format!("unknown function `{dsf}`")))?,
                fill: match self.fill.as_deref() {
                    None => Fill::None,
                    Some(name) => Fill::ALL
                        .into_iter()
                        .find(|f| f.as_str() == name)
                        .ok_or_else(|| bad(&field("fill"), format!("unknown fill `{name}`")))?,
                },
            }),
        };
        let transform = match self.transform.as_deref() {
            None => None,
            Some("delta") => Some(Transform::Delta),
            Some(other) => return Err(bad(&field("transform"), format!("unknown transform `{other}`"))),
        };
        // A wide item's names (and labels, when it has them) are stored comma-separated; a
        // name never holds a comma, a lone label may.
        let names: Vec<&str> = self.name.split(',').collect();
        let labels: Vec<Option<String>> = match &self.label {
            Some(label) if names.len() > 1 => label.split(',').map(|l| Some(l.to_owned())).collect(),
            label => vec![label.clone()],
        };
        let mut targets = names.iter().enumerate().map(|(k, name)| {
            (
                SenmlName::stored((*name).to_owned()),
                labels.get(k).cloned().flatten(),
            )
        });
        let (target, label) = targets.next().ok_or_else(|| bad(&field("name"), "no target"))?;
        Ok(Item {
            target,
            label,
            also: targets.collect(),
            domain_id: self.domain,
            channel_id: self.channel,
            subtopic: Subtopic::stored(self.subtopic.clone()),
            table: match self.table.as_deref() {
                None => None,
                Some(name) => Some(
                    MessageTable::parse(name)
                        .ok_or_else(|| bad(&field("table"), format!("unknown message table `{name}`")))?,
                ),
            },
            span: ItemSpan {
                from: self.from,
                to: self.to,
                period: self
                    .period
                    .as_deref()
                    .map(str::parse)
                    .transpose()
                    .map_err(|e| bad(&field("period"), e))?,
            },
            decimation,
            transform,
            filename: self.filename.clone().map(Filename::stored),
            long: self.long,
        })
    }
}

impl MessageV1 {
    fn message(&self, index: usize) -> Result<Message, RecordError> {
        let field = |name: &str| format!("messages.{index}.{name}");
        let policy = match self.policy.as_str() {
            "onSuccess" => NotifyPolicy::OnSuccess,
            "onFailure" => NotifyPolicy::OnFailure,
            other => return Err(bad(&field("policy"), format!("unknown `{other}`"))),
        };
        let medium = crate::domain::media::named(&self.medium)
            .ok_or_else(|| bad(&field("medium"), format!("unknown `{}`", self.medium)))?;
        let target = match &self.target {
            None => None,
            Some(text) => Some(match medium {
                Medium::Email => Target::Email(EmailAddress::stored(text.clone())),
                Medium::Telegram => Target::Telegram(TelegramChat::stored(text.clone())),
                Medium::Slack => {
                    Target::Slack(WebhookUrl::stored(text).map_err(|e| bad(&field("target"), e))?)
                }
                Medium::Discord => {
                    Target::Discord(WebhookUrl::stored(text).map_err(|e| bad(&field("target"), e))?)
                }
            }),
        };
        Ok(Message {
            policy,
            medium,
            title: self.title.clone(),
            text: self.text.clone(),
            target,
        })
    }
}

fn policy_name(policy: NotifyPolicy) -> &'static str {
    match policy {
        NotifyPolicy::OnSuccess => "onSuccess",
        NotifyPolicy::OnFailure => "onFailure",
    }
}

/// Reads a version 1 record from its JSON text.
pub fn read_v1(json: &str) -> Result<ExportRequest, RecordError> {
    serde_json::from_str::<RecordV1>(json)
        .map_err(|e| bad("record", e))?
        .request()
}

/// What a job's files depend on (the format, the schedule and the items; not the messages nor
/// the tags), as a digest: a job that continues checks that its export's definition is the one
/// it began with.
pub fn definition_digest(request: &ExportRequest) -> String {
    use sha2::Digest;
    let record = RecordV1::of(request);
    let parts = serde_json::json!([record.format, record.recurrence, record.items]);
    let digest = sha2::Sha256::digest(parts.to_string().as_bytes());
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// Writes the version 1 record of a request as JSON text.
pub fn write_v1(request: &ExportRequest) -> String {
    // A struct of strings, numbers and options: serialising it cannot fail.
    serde_json::to_string(&RecordV1::of(request)).unwrap_or_default()
}

/// Reads a version 0 record: the API's normalised request JSON, as stored before version 1.
/// Frozen: it reads exactly what the service wrote then, into a version 1 record.
pub fn read_v0(json: &str) -> Result<ExportRequest, RecordError> {
    let v: Value = serde_json::from_str(json).map_err(|e| bad("request", e))?;
    let text = |value: &Value, field: &str| -> Result<String, RecordError> {
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| bad(field, "not a string"))
    };
    let optional_text = |value: &Value| value.as_str().map(str::to_owned);
    let unix = |value: &Value, field: &str| -> Result<Option<DateTime<Utc>>, RecordError> {
        match value {
            Value::Null => Ok(None),
            Value::Number(n) => unix_seconds(n).map(Some).ok_or_else(|| bad(field, "not a time")),
            _ => Err(bad(field, "not a number")),
        }
    };
    let format = &v["format"];
    let columns = format["columns"]
        .as_array()
        .ok_or_else(|| bad("format.columns", "not a list"))?
        .iter()
        .map(|c| {
            Ok((
                text(&c["id"], "format.columns")?,
                text(&c["label"], "format.columns")?,
            ))
        })
        .collect::<Result<_, RecordError>>()?;
    let recurrence = match v["type"].as_str() {
        Some("recurring") => Some(RecurrenceV1 {
            anchor: unix(&v["periodStart"], "periodStart")?.ok_or_else(|| bad("periodStart", "missing"))?,
            every: text(&v["periodicity"], "periodicity")?,
        }),
        Some("oneTime") => None,
        _ => return Err(bad("type", "neither oneTime nor recurring")),
    };
    let items = v["items"]
        .as_array()
        .ok_or_else(|| bad("items", "not a list"))?
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let p = &item["params"];
            let field = |name: &str| format!("items.{i}.params.{name}");
            let channel = text(&p["channelId"], &field("channelId"))?;
            Ok(ItemV1 {
                name: text(&p["target"]["value"], &field("target.value"))?,
                label: optional_text(&p["target"]["label"]),
                domain: None,
                channel: Uuid::try_parse(&channel).map_err(|e| bad(&field("channelId"), e))?,
                subtopic: text(&p["subtopic"], &field("subtopic"))?,
                table: None,
                from: unix(&p["from"], &field("from"))?,
                to: unix(&p["to"], &field("to"))?,
                period: optional_text(&p["period"]),
                decimation: match &p["decimation"] {
                    Value::Null => None,
                    d => Some((
                        text(&d["ds"], &field("decimation.ds"))?,
                        text(&d["dsf"], &field("decimation.dsf"))?,
                    )),
                },
                fill: None,
                transform: None,
                filename: optional_text(&item["filename"]),
                long: false,
            })
        })
        .collect::<Result<_, RecordError>>()?;
    let messages = v["notification"]["messages"]
        .as_array()
        .ok_or_else(|| bad("notification.messages", "not a list"))?
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let field = |name: &str| format!("notification.messages.{i}.{name}");
            Ok(MessageV1 {
                policy: text(&m["policy"], &field("policy"))?,
                medium: text(&m["medium"], &field("medium"))?,
                title: text(&m["title"], &field("title"))?,
                text: text(&m["text"], &field("text"))?,
                target: optional_text(&m["target"]),
            })
        })
        .collect::<Result<_, RecordError>>()?;
    let delimiter = text(&format["csvDelimiter"], "format.csvDelimiter")?;
    RecordV1 {
        version: VERSION,
        format: FormatV1 {
            extension: text(&format["extension"], "format.extension")?,
            columns,
            timezone: text(&format["timezone"]["name"], "format.timezone.name")?,
            csv_delimiter: delimiter
                .chars()
                .next()
                .ok_or_else(|| bad("format.csvDelimiter", "empty"))?,
            escape_formulas: true,
            csv_bom: false,
            csv_decimal_comma: false,
            template: None,
            filename: None,
            local_time: false,
            pdf: None,
        },
        recurrence,
        items,
        messages,
        tags: Vec::new(),
    }
    .request()
}

/// Unix seconds as version 0 wrote them: whole, or with a fraction rounded to the nanosecond
/// (as the API's validator read them).
fn unix_seconds(n: &serde_json::Number) -> Option<DateTime<Utc>> {
    if let Some(secs) = n.as_i64() {
        return DateTime::from_timestamp(secs, 0);
    }
    let secs = n.as_f64().filter(|s| s.is_finite() && *s >= 0.0)?;
    let whole = secs.trunc();
    let nanos = ((secs - whole) * 1e9).round().min(999_999_999.0) as u32;
    DateTime::from_timestamp(whole as i64, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::request::{Limits, Policy, WebhookHosts};

    /// The policy the fixture's requests were validated under: their day's hosts, no limits.
    fn then() -> Policy {
        Policy {
            limits: Limits {
                max_items: usize::MAX,
                max_columns: usize::MAX,
                max_messages: usize::MAX,
            },
            webhook_hosts: WebhookHosts::default()
                .with(Medium::Slack, vec!["hooks.example.net".into()])
                .with(Medium::Discord, vec!["discord.com".into()]),
            min_periodicity_seconds: 60,
            dialect: crate::domain::Dialect::Connhex,
            subtopic_separator: None,
        }
    }

    /// Requests as version 0 stored them, copied from items the service wrote before version 1.
    const V0_FIXTURE: &str = include_str!("fixtures/request-v0.json");

    fn v0_requests() -> Vec<Value> {
        serde_json::from_str(V0_FIXTURE).expect("the fixture is a JSON list")
    }

    fn created_at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).expect("in range")
    }

    #[test]
    fn a_version_0_record_reads_as_the_validator_read_it_then() {
        for stored in v0_requests() {
            let read = read_v0(&stored.to_string()).expect("reads");
            let validated = ExportRequest::parse(&stored, created_at(), &then()).expect("valid then");
            assert_eq!(read, validated, "{stored}");
        }
    }

    #[test]
    fn a_version_0_record_reads_whatever_todays_limits_and_hosts_say() {
        // Version 0 records were validated under their day's policy; today's must not matter.
        for stored in v0_requests() {
            let read = read_v0(&stored.to_string()).expect("reads");
            assert!(!read.items.is_empty());
        }
        let with_foreign_hook = v0_requests()
            .into_iter()
            .find(|r| r.to_string().contains("hooks.example.net"))
            .expect("the fixture has a webhook on a host no longer allowed");
        let tightened = Policy::default();
        assert!(ExportRequest::parse(&with_foreign_hook, created_at(), &tightened).is_err());
        assert!(read_v0(&with_foreign_hook.to_string()).is_ok());
    }

    #[test]
    fn a_version_1_record_reads_back_exactly_what_was_written() {
        for stored in v0_requests() {
            let request = read_v0(&stored.to_string()).expect("reads");
            let json = write_v1(&request);
            assert!(json.starts_with("{\"version\":1,"), "{json}");
            assert_eq!(read_v1(&json).expect("reads"), request);
        }
    }

    #[test]
    fn an_anchor_keeps_every_nanosecond() {
        let mut request = read_v0(&v0_requests()[1].to_string()).expect("reads");
        let Schedule::Recurring(recurrence) = &mut request.schedule else {
            panic!("the second fixture is recurring")
        };
        recurrence.anchor = DateTime::from_timestamp(1_767_225_642, 122_999_907).expect("in range");
        assert_eq!(read_v1(&write_v1(&request)).expect("reads"), request);
    }

    #[test]
    fn a_domain_and_a_message_table_are_kept() {
        let mut request = read_v0(&v0_requests()[0].to_string()).expect("reads");
        request.items[0].domain_id = Some(Uuid::from_u128(7));
        request.items[0].table = Some(MessageTable::Params);
        let json = write_v1(&request);
        assert!(json.contains("\"table\":\"params\""), "{json}");
        assert_eq!(read_v1(&json).expect("reads"), request);
    }

    #[test]
    fn a_damaged_record_is_an_error_naming_the_field() {
        let request = read_v0(&v0_requests()[0].to_string()).expect("reads");
        let json = write_v1(&request).replace("\"extension\":\"csv\"", "\"extension\":\"docx\"");
        let error = read_v1(&json).expect_err("refused");
        assert_eq!(error.field, "format.extension");
        assert!(read_v1("{\"version\":2}").is_err());
        assert!(read_v0("[]").is_err());
        assert!(read_v1("not json").is_err());
    }
}
