//! The items' rules: channel, subtopic and name, their windows, decimations and transforms.

use serde_json::Value;
use uuid::Uuid;

use crate::domain::granularity::Granularity;
use crate::domain::recurrence::ItemSpan;
use crate::domain::request::walk::Checker;
use crate::domain::request::{
    Aggregate, Decimation, ExportType, Filename, Fill, Item, MessageTable, SenmlName, Subtopic, Transform,
};

impl Checker<'_> {
    pub(super) fn items(&mut self, v: &Value, kind: Option<ExportType>) -> Option<Vec<Item>> {
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

    pub(super) fn item(&mut self, v: &Value, path: &str, kind: Option<ExportType>) -> Option<Item> {
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
                "outputFormat",
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
        // Connhex 1.3.7: `long` writes a wide item a row per (time, target); `wide` (the default)
        // a value column per target. One target's file is a row per time either way.
        let long = match params.get("outputFormat") {
            None | Some(Value::Null) => Some(false),
            Some(v) => self.one_of(
                v,
                &format!("{p}/outputFormat"),
                &[("wide", false), ("long", true)],
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
            long: long?,
        })
    }

    /// A UUID in its hyphenated form, as the platform writes channel and domain ids.
    pub(super) fn uuid(&mut self, v: &Value, at: &str) -> Option<Uuid> {
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

    pub(super) fn decimation(&mut self, v: &Value, path: &str) -> Option<Decimation> {
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
}
