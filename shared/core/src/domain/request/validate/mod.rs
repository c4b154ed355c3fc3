//! The request's rules, over the walker of `walk.rs`: formats, columns, timezones, items and
//! their windows, decimations, messages and their targets. Every problem is reported at once,
//! each at its JSON pointer. Nothing here reads a clock: the caller passes the creation time
//! used as the default `periodStart`.

mod format;
mod items;
mod notification;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::walk::Checker;
use super::{ColumnId, ExportRequest, ExportType, Item, Policy, Problem, Schedule, Tag};
use crate::domain::duration::IsoDuration;
use crate::domain::recurrence::Recurrence;

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
        const FIELDS: [&str; 7] = [
            "format",
            "type",
            "items",
            "periodicity",
            "periodStart",
            "notification",
            "tags",
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
        let tags = match map.get("tags") {
            None | Some(Value::Null) => Some(Vec::new()),
            Some(v) => self.tags(v),
        };

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
        let mut format = format?;
        let items = items?;
        // Without `columns`, a file of one series has time, name, value and unit; a wide one
        // (a value column per target) time and value.
        let columns_given = map
            .get("format")
            .and_then(|f| f.get("columns"))
            .is_some_and(|c| !c.is_null());
        if !columns_given && items.iter().any(|i| i.is_wide() && !format.is_long(i)) {
            format
                .columns
                .retain(|c| matches!(c.id, ColumnId::Time | ColumnId::Value));
        }
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
        // describes one point (its name, unit, publisher...) has no single place in it. A long
        // one (a row per time and target) has a place for everything.
        let wide_file = |item: &Item| item.is_wide() && !format.is_long(item);
        if let Some(wide) = items.iter().position(wide_file) {
            for (at, column) in format.columns.iter().enumerate() {
                if !matches!(
                    column.id,
                    ColumnId::Time | ColumnId::UtcOffset | ColumnId::Value | ColumnId::Count
                ) {
                    self.fail(
                        &format!("/format/columns/{at}/id"),
                        format!(
                            "`{}` has no place in the wide file of /items/{wide} (several targets): such a file holds only `time`, `utcOffset`, `value` and `count` (a column each per target); set that item's `params.outputFormat` to `long` (a row per time and target) or give its targets items of their own to keep `{}`",
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
            tags: tags?,
        })
    }

    /// `tags`: at most [`Tag::MAX`] `{"label", "value"}` pairs, each label once; labels of
    /// letters, digits and `-_.`; values of printable characters but `,`.
    pub(super) fn tags(&mut self, v: &Value) -> Option<Vec<Tag>> {
        let list = self.array(v, "/tags", 0, Tag::MAX)?;
        let mut tags: Vec<Tag> = Vec::with_capacity(list.len());
        let mut ok = true;
        for (i, entry) in list.iter().enumerate() {
            let path = format!("/tags/{i}");
            let Some(map) = self.object(entry, &path, &["label", "value"]) else {
                ok = false;
                continue;
            };
            let label = self.required(map, &path, "label").and_then(|v| {
                let at = format!("{path}/label");
                let text = self.string(v, &at, Tag::MAX_CHARS)?;
                if text.is_empty()
                    || !text
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                {
                    self.fail(&at, "must be 1 to 128 letters, digits, `-`, `_` or `.`");
                    return None;
                }
                if tags.iter().any(|t| t.label == text) {
                    self.fail(
                        &at,
                        format!("`{text}` is already a tag's label: each label at most once"),
                    );
                    return None;
                }
                Some(text.to_owned())
            });
            let value = self.required(map, &path, "value").and_then(|v| {
                let at = format!("{path}/value");
                let text = self.line(v, &at, Tag::MAX_CHARS)?;
                if text.is_empty() || text.contains(',') {
                    self.fail(&at, "must be 1 to 128 characters without `,`");
                    return None;
                }
                Some(text.to_owned())
            });
            match (label, value) {
                (Some(label), Some(value)) => tags.push(Tag { label, value }),
                _ => ok = false,
            }
        }
        ok.then_some(tags)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::request::SenmlName;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000, 0).expect("in range")
    }

    #[test]
    fn accepts_snake_and_camel_case_column_ids() {
        assert_eq!(ColumnId::parse("stringValue"), Some(ColumnId::StringValue));
        assert_eq!(ColumnId::parse("string_value"), Some(ColumnId::StringValue));
        assert_eq!(ColumnId::parse("stringvalue"), None);
        assert_eq!(ColumnId::parse("update_time"), Some(ColumnId::UpdateTime));
        assert_eq!(ColumnId::parse("T_IME"), None);
        assert_eq!(ColumnId::parse("_count"), None);
        assert_eq!(ColumnId::parse("Value_"), None);
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
    fn local_times_are_a_parquet_option_and_the_typed_formats_are_named() {
        let body = |extension: &str, local: Value| {
            json!({
                "format": {"extension": extension, "localTime": local},
                "type": "oneTime",
                "items": [{"params": {"target": {"value": "t"}, "channelId": "0115c85d-ef3e-4de9-9732-d0c5c4f2c482", "subtopic": "s", "from": 1, "to": 2}}],
                "notification": {"messages": []}
            })
        };
        let mut pdf = body("pdf", Value::Null);
        pdf["format"]["pdf"] = json!({"pageSize": "letter", "orientation": "landscape"});
        let request = ExportRequest::parse(&pdf, now(), &Policy::default()).expect("valid");
        assert_eq!(request.format.pdf.size.as_str(), "letter");
        assert!(request.format.pdf.landscape);
        assert_eq!(
            request.to_json()["format"]["pdf"],
            json!({"pageSize": "letter", "orientation": "landscape"})
        );
        for (extension, pages, path) in [
            ("csv", json!({"orientation": "landscape"}), "/format/pdf"),
            ("pdf", json!({"pageSize": "A3"}), "/format/pdf/pageSize"),
            ("pdf", json!({"margins": 1}), "/format/pdf/margins"),
        ] {
            let mut bad = body(extension, Value::Null);
            bad["format"]["pdf"] = pages;
            let problems = ExportRequest::parse(&bad, now(), &Policy::default()).expect_err("invalid");
            assert!(problems.iter().any(|p| p.path == path), "{path}: {problems:?}");
        }
        for extension in ["json", "ndjson", "parquet", "pdf"] {
            let request = ExportRequest::parse(&body(extension, Value::Null), now(), &Policy::default())
                .expect("valid");
            assert_eq!(request.format.extension.as_str(), extension);
            assert!(!request.format.local_time);
        }
        let request =
            ExportRequest::parse(&body("parquet", json!(true)), now(), &Policy::default()).expect("valid");
        assert!(request.format.local_time);
        assert_eq!(request.to_json()["format"]["localTime"], json!(true));
        for (extension, local, said) in [
            ("csv", json!(true), "applies to `parquet` files only"),
            ("parquet", json!("yes"), "must be a boolean"),
            ("docx", json!(false), "must be one of"),
        ] {
            let problems = ExportRequest::parse(&body(extension, local), now(), &Policy::default())
                .expect_err("invalid");
            assert!(
                problems
                    .iter()
                    .any(|p| p.path.starts_with("/format/") && p.message.contains(said)),
                "{extension}: {problems:?}"
            );
        }
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
