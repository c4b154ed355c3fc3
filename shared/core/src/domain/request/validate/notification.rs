//! The messages' rules: policy, medium, title, text and target.

use serde_json::Value;

use crate::domain::request::target::Target;
use crate::domain::request::walk::Checker;
use crate::domain::request::{Medium, Message, NotifyPolicy};

impl Checker<'_> {
    pub(super) fn notification(&mut self, v: &Value) -> Option<Vec<Message>> {
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

    pub(super) fn message(&mut self, v: &Value, path: &str) -> Option<Message> {
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
