//! The request's rules, over the walker of `walk.rs`: formats, columns, timezones, items and
//! their windows, decimations, messages and their targets. Every problem is reported at once,
//! each at its JSON pointer. Nothing here reads a clock: the caller passes the creation time
//! used as the default `periodStart`.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use uuid::Uuid;

use super::target::Target;
use super::walk::{type_name, Checker};
use super::{
    Aggregate, Column, ColumnId, Decimation, ExportRequest, ExportType, Extension, Filename, Fill, Format,
    Item, Medium, Message, MessageTable, NotifyPolicy, Policy, Problem, Schedule, SenmlName, Subtopic,
    Transform,
};
use crate::domain::duration::IsoDuration;
use crate::domain::granularity::Granularity;
use crate::domain::recurrence::{ItemSpan, Recurrence};

impl ExportRequest {
    /// Validates a request body. `now` is the default anchor of a recurrence.
    ///
    /// Fails with every problem found, each at its JSON pointer.
    pub fn parse(body: &Value, now: DateTime<Utc>, policy: &Policy) -> Result<Self, Vec<Problem>> {
        let mut check = Checker::new(policy);
        let request = check.request(body, now);
        match request {
            Some(request) if check.is_clean() => Ok(request),
            _ => {
                if check.is_clean() {
                    check.fail("", "is not a valid export request");
                }
                Err(check.into_problems())
            }
        }
    }
}

impl Checker<'_> {
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
                let min = self.policy.min_periodicity_seconds.max(60);
                if d.at_least_seconds(min) {
                    Some(d)
                } else {
                    let shortest = IsoDuration {
                        hours: min / 3600,
                        minutes: min % 3600 / 60,
                        seconds: min % 60,
                        ..IsoDuration::default()
                    };
                    self.fail(
                        "/periodicity",
                        format!("must be at least {shortest} on this deployment"),
                    );
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
        // A wide file has a row per time and a value (and count) column per target: what
        // describes one point (its name, unit, publisher...) has no single place in it.
        if let Some(wide) = items.iter().position(Item::is_wide) {
            for (at, column) in format.columns.iter().enumerate() {
                if !matches!(
                    column.id,
                    ColumnId::Time | ColumnId::UtcOffset | ColumnId::Value | ColumnId::Count
                ) {
                    self.fail(
                        &format!("/format/columns/{at}/id"),
                        format!(
                            "`{}` has no place in the wide file of /items/{wide} (several targets): such a file holds only `time`, `utcOffset`, `value` and `count` (a column each per target); give that item's targets items of their own to keep `{}`",
                            column.id.as_str(),
                            column.id.as_str()
                        ),
                    );
                }
            }
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
            &[
                "extension",
                "columns",
                "timezone",
                "csvDelimiter",
                "escapeFormulas",
                "csvBom",
                "csvDecimalSeparator",
            ],
        )?;
        let formats: Vec<(&str, Extension)> = crate::domain::formats::FORMATS
            .iter()
            .map(|f| (f.name, f.extension))
            .collect();
        let extension = self
            .required(map, "/format", "extension")
            .and_then(|v| self.one_of(v, "/format/extension", &formats));
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
        let escape_formulas = match map.get("escapeFormulas") {
            None | Some(Value::Null) => Some(true),
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                self.fail(
                    "/format/escapeFormulas",
                    format!("must be a boolean, found {}", type_name(other)),
                );
                None
            }
        };
        let csv_bom = match map.get("csvBom") {
            None | Some(Value::Null) => Some(false),
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                self.fail(
                    "/format/csvBom",
                    format!("must be a boolean, found {}", type_name(other)),
                );
                None
            }
        };
        let csv_decimal_comma = match map.get("csvDecimalSeparator") {
            None | Some(Value::Null) => Some(false),
            Some(v) => self.one_of(v, "/format/csvDecimalSeparator", &[(".", false), (",", true)]),
        };
        if csv_decimal_comma == Some(true) && csv_delimiter == Some(b',') {
            self.fail(
                "/format/csvDecimalSeparator",
                "cannot be `,` while `csvDelimiter` is `,` (numbers would split into two fields): set `csvDelimiter` to `;`",
            );
            return None;
        }
        Some(Format {
            extension: extension?,
            columns: columns?,
            timezone: timezone?,
            csv_delimiter: csv_delimiter?,
            escape_formulas: escape_formulas?,
            csv_bom: csv_bom?,
            csv_decimal_comma: csv_decimal_comma?,
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
                .and_then(|v| self.line(v, &format!("{path}/label"), 256));
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
                "domainId",
                "channelId",
                "subtopic",
                "format",
                "from",
                "to",
                "period",
                "decimation",
                "transform",
            ],
        )?;
        let p = params_path.as_str();
        let target = self.required(params, p, "target").and_then(|v| {
            let at = format!("{p}/target");
            let map = self.object(v, &at, &["value", "label"])?;
            // Several comma-separated names make a wide item, with as many comma-separated labels.
            let value_at = format!("{at}/value");
            let names = self.required(map, &at, "value").and_then(|v| {
                let text = self.string(v, &value_at, 512 * Item::MAX_TARGETS)?;
                let parts: Vec<&str> = text.split(',').collect();
                if parts.len() > Item::MAX_TARGETS {
                    self.fail(
                        &value_at,
                        format!("names {} targets; an item names at most {}", parts.len(), Item::MAX_TARGETS),
                    );
                    return None;
                }
                let mut names: Vec<SenmlName> = Vec::with_capacity(parts.len());
                for (k, part) in parts.iter().enumerate() {
                    let which = if parts.len() > 1 { format!("target {} (`{part}`): ", k + 1) } else { String::new() };
                    match SenmlName::parse(part) {
                        Ok(name) if names.contains(&name) => {
                            self.fail(&value_at, format!("{which}named twice"));
                            return None;
                        }
                        Ok(name) => names.push(name),
                        Err(e) => {
                            self.fail(&value_at, format!("{which}{e}"));
                            return None;
                        }
                    }
                }
                Some(names)
            });
            let label_at = format!("{at}/label");
            let labels = match map.get("label") {
                None | Some(Value::Null) => Some(None),
                Some(v) => self.line(v, &label_at, 256 * Item::MAX_TARGETS).map(|s| Some(s.to_owned())),
            };
            let (names, labels) = (names?, labels?);
            let labels: Vec<Option<String>> = match labels {
                None => vec![None; names.len()],
                Some(label) if names.len() == 1 => {
                    if label.chars().count() > 256 {
                        self.fail(&label_at, "must be at most 256 characters");
                        return None;
                    }
                    vec![Some(label)]
                }
                Some(label) => {
                    let parts: Vec<&str> = label.split(',').collect();
                    if parts.len() != names.len() {
                        self.fail(
                            &label_at,
                            format!(
                                "has {} comma-separated labels for {} targets: give one label per target, in the order of `value`",
                                parts.len(),
                                names.len()
                            ),
                        );
                        return None;
                    }
                    if parts.iter().any(|l| l.chars().count() > 256) {
                        self.fail(&label_at, "each label must be at most 256 characters");
                        return None;
                    }
                    parts.into_iter().map(|l| Some(l.to_owned())).collect()
                }
            };
            let mut targets = names.into_iter().zip(labels);
            let (first, label) = targets.next()?;
            Some((first, label, targets.collect::<Vec<_>>()))
        });
        let channel_id = self
            .required(params, p, "channelId")
            .and_then(|v| self.uuid(v, &format!("{p}/channelId")));
        let dialect = self.policy.dialect;
        let domain_id = match (params.get("domainId"), dialect.has_domains()) {
            (None | Some(Value::Null), false) => Some(None),
            (None | Some(Value::Null), true) => {
                self.fail(
                    &format!("{p}/domainId"),
                    format!("is required: this deployment's reader ({dialect}) keeps channels in domains; give the channel's domain id (a UUID)"),
                );
                None
            }
            (Some(_), false) => {
                self.fail(
                    &format!("{p}/domainId"),
                    format!("must not be set: this deployment's reader ({dialect}) has no domains"),
                );
                None
            }
            (Some(v), true) => self.uuid(v, &format!("{p}/domainId")).map(Some),
        };
        let subtopic = self.required(params, p, "subtopic").and_then(|v| {
            let at = format!("{p}/subtopic");
            let text = self.string(v, &at, 256)?;
            Subtopic::parse(text, self.policy.subtopic_separator())
                .map_err(|e| self.fail(&at, e))
                .ok()
        });
        let table = match params.get("format") {
            None | Some(Value::Null) => Some(None),
            Some(_) if !dialect.has_message_tables() => {
                self.fail(
                    &format!("{p}/format"),
                    format!("must not be set: this deployment's reader ({dialect}) has one message table"),
                );
                None
            }
            Some(v) => {
                let choices: Vec<(&str, Option<MessageTable>)> =
                    MessageTable::ALL.iter().map(|t| (t.as_str(), Some(*t))).collect();
                self.one_of(v, &format!("{p}/format"), &choices)
            }
        };
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
        let transform = match params.get("transform") {
            None | Some(Value::Null) => Some(None),
            Some(v) => self.one_of(
                v,
                &format!("{p}/transform"),
                &[("none", None), ("delta", Some(Transform::Delta))],
            ),
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
        let (target, label, also) = target?;
        Some(Item {
            target,
            label,
            also,
            domain_id: domain_id?,
            channel_id: channel_id?,
            subtopic: subtopic?,
            table: table?,
            span: ItemSpan {
                from,
                to,
                period: period?,
            },
            decimation: decimation?,
            transform: transform?,
            filename: filename?,
        })
    }

    /// A UUID in its hyphenated form, as the platform writes channel and domain ids.
    fn uuid(&mut self, v: &Value, at: &str) -> Option<Uuid> {
        let text = self.string(v, at, 64)?;
        match Uuid::try_parse(text) {
            Ok(id) if text.len() == 36 => Some(id),
            _ => {
                self.fail(
                    at,
                    format!("must be a UUID such as 0115c85d-ef3e-4de9-9732-d0c5c4f2c482 (found `{text}`)"),
                );
                None
            }
        }
    }

    fn decimation(&mut self, v: &Value, path: &str) -> Option<Decimation> {
        let map = self.object(v, path, &["ds", "dsf", "fill"])?;
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
        let fill = match map.get("fill") {
            None | Some(Value::Null) => Some(Fill::None),
            Some(v) => {
                let options: Vec<(&str, Fill)> = Fill::ALL.iter().map(|f| (f.as_str(), *f)).collect();
                self.one_of(v, &format!("{path}/fill"), &options)
            }
        };
        Some(Decimation {
            ds: ds?,
            dsf: dsf?,
            fill: fill?,
        })
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
        let media: Vec<(&str, Medium)> = crate::domain::media::MEDIA
            .iter()
            .map(|m| (m.name, m.medium))
            .collect();
        let medium = self
            .required(map, path, "medium")
            .and_then(|v| self.one_of(v, &format!("{path}/medium"), &media));
        let title = self
            .required(map, path, "title")
            .and_then(|v| self.line(v, &format!("{path}/title"), 256));
        let text = self
            .required(map, path, "text")
            .and_then(|v| self.string(v, &format!("{path}/text"), 4000));
        let target = match map.get("target") {
            None | Some(Value::Null) => Some(None),
            Some(v) => {
                let at = format!("{path}/target");
                let text = self.line(v, &at, 2048);
                match (text, medium) {
                    (Some(text), Some(medium)) => {
                        match Target::parse(medium, text, Some(&self.policy.webhook_hosts)) {
                            Ok(target) => Some(Some(target)),
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

#[cfg(test)]
mod tests {
    use serde_json::json;

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
    fn a_body_of_thousands_of_unknown_keys_gets_a_bounded_answer() {
        let body: serde_json::Map<String, Value> = (0..20_000).map(|i| (format!("k{i}"), json!(0))).collect();
        let problems =
            ExportRequest::parse(&Value::Object(body), now(), &Policy::default()).expect_err("invalid");
        assert_eq!(problems.len(), super::super::walk::MAX_PROBLEMS + 1);
        let last = problems.last().expect("a summary");
        assert!(last.message.starts_with("and "), "{}", last.message);
        assert!(last.message.ends_with("more problems not listed"));
    }

    #[test]
    fn titles_labels_and_targets_are_one_line() {
        let body = json!({
            "format": {"extension": "csv", "columns": [{"id": "time", "label": "a\rb"}]},
            "type": "oneTime",
            "items": [{"params": {"target": {"value": "t", "label": "x\u{2028}y"}, "channelId": "0115c85d-ef3e-4de9-9732-d0c5c4f2c482", "subtopic": "s", "from": 1, "to": 2}}],
            "notification": {"messages": [{"policy": "onSuccess", "medium": "email", "title": "Report\r\nReply-To: attacker@evil.example", "text": "two\nlines are fine", "target": "a@example.com\n"}]}
        });
        let problems = ExportRequest::parse(&body, now(), &Policy::default()).expect_err("invalid");
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/format/columns/0/label",
                "/items/0/params/target/label",
                "/notification/messages/0/title",
                "/notification/messages/0/target"
            ]
        );
        assert!(problems[2].message.contains("U+000D"), "{}", problems[2].message);
    }

    #[test]
    fn urns_must_have_a_namespace_and_a_specific_string() {
        assert!(SenmlName::parse("urn:cpt:smartdevice:nid:D0CF5EFFFE26FDAB1:onoff").is_ok());
        assert!(SenmlName::parse("temperature").is_ok());
        assert!(SenmlName::parse("urn:x:").is_err());
        assert!(SenmlName::parse("urn::abc").is_err());
        assert!(SenmlName::parse("urn:cpt smartdevice").is_err());
    }
}
