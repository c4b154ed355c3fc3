//! The request printed back in its normalised wire form (what the API answers): canonical column
//! ids, the timezone as `{"name": ...}`, `periodStart` filled in, unset (`0`) times and absent
//! options left out.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Number, Value};

use super::{ExportRequest, Fill, Item, Message, NotifyPolicy, Schedule};

impl ExportRequest {
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
                "escapeFormulas": self.format.escape_formulas,
                "csvBom": self.format.csv_bom,
                "csvDecimalSeparator": if self.format.csv_decimal_comma { "," } else { "." },
                "template": self.format.template.as_str(),
            }),
        );
        if let Some(Value::Object(format)) = out.get_mut("format") {
            if let Some(name) = &self.format.filename {
                format.insert("filename".into(), json!(name.as_str()));
            }
            if self.format.local_time {
                format.insert("localTime".into(), json!(true));
            }
            if self.format.extension == super::Extension::Pdf {
                format.insert(
                    "pdf".into(),
                    json!({"pageSize": self.format.pdf.size.as_str(),
                        "orientation": if self.format.pdf.landscape { "landscape" } else { "portrait" }}),
                );
            }
        }
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
        out.insert(
            "tags".into(),
            Value::Array(
                self.tags
                    .iter()
                    .map(|t| json!({"label": t.label, "value": t.value}))
                    .collect(),
            ),
        );
        Value::Object(out)
    }
}

fn item_json(item: &Item) -> Value {
    let mut target = Map::new();
    let (value, label) = joined_targets(item);
    target.insert("value".into(), json!(value));
    if let Some(label) = label {
        target.insert("label".into(), json!(label));
    }
    let mut params = Map::new();
    params.insert("target".into(), Value::Object(target));
    if let Some(domain) = item.domain_id {
        params.insert("domainId".into(), json!(domain.to_string()));
    }
    params.insert("channelId".into(), json!(item.channel_id.to_string()));
    params.insert("subtopic".into(), json!(item.subtopic.as_str()));
    if let Some(table) = item.table {
        params.insert("format".into(), json!(table.as_str()));
    }
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
        let mut decimation = json!({"ds": d.ds.to_string(), "dsf": d.dsf.as_str()});
        if d.fill != Fill::None {
            decimation["fill"] = json!(d.fill.as_str());
        }
        params.insert("decimation".into(), decimation);
    }
    if let Some(t) = item.transform {
        params.insert("transform".into(), json!(t.as_str()));
    }
    if item.long {
        params.insert("outputFormat".into(), json!("long"));
    }
    let mut out = Map::new();
    out.insert("params".into(), Value::Object(params));
    if let Some(name) = &item.filename {
        out.insert("filename".into(), json!(name.as_str()));
    }
    Value::Object(out)
}

/// An item's `target.value` and `target.label` as the request gives them: a wide item's names
/// and labels comma-separated (labels only when the targets have them).
pub fn joined_targets(item: &Item) -> (String, Option<String>) {
    let targets = item.targets();
    let names: Vec<&str> = targets.iter().map(|(name, _)| name.as_str()).collect();
    let labels: Option<Vec<&str>> = targets.iter().map(|(_, label)| *label).collect();
    (names.join(","), labels.map(|l| l.join(",")))
}

fn message_json(m: &Message) -> Value {
    let mut out = json!({
        "policy": match m.policy { NotifyPolicy::OnSuccess => "onSuccess", NotifyPolicy::OnFailure => "onFailure" },
        "medium": m.medium.as_str(),
        "title": m.title,
        "text": m.text,
    });
    if let (Some(target), Value::Object(map)) = (&m.target, &mut out) {
        map.insert("target".into(), json!(target.as_str()));
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
