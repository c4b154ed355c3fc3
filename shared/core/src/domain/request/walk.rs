//! The generic half of the request validator: a walker over the JSON that collects every
//! problem with its JSON pointer (objects with their known fields and "did you mean" for near
//! misses, required fields, strings, arrays, choices, durations, Unix seconds). The request's
//! own rules are in `validate/`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{Policy, Problem};
use crate::domain::duration::IsoDuration;

/// The latest Unix time accepted: 9999-12-31T23:59:59Z.
const MAX_UNIX: f64 = 253_402_300_799.0;

/// Reads Unix seconds; `0` means unset.
pub(super) fn unix_from_f64(secs: f64) -> Option<Option<DateTime<Utc>>> {
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
pub(super) fn join(base: &str, key: &str) -> String {
    format!("{base}/{}", key.replace('~', "~0").replace('/', "~1"))
}

pub(super) fn type_name(v: &Value) -> &'static str {
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

/// Walks one request, collecting its problems.
pub(super) struct Checker<'p> {
    problems: Vec<Problem>,
    /// Problems found past [`MAX_PROBLEMS`], only counted.
    more: usize,
    pub(super) policy: &'p Policy,
}

/// The most problems an answer lists: a hostile body of thousands of unknown keys gets a bounded
/// answer, not one as large as itself.
pub const MAX_PROBLEMS: usize = 100;

impl<'p> Checker<'p> {
    pub(super) fn new(policy: &'p Policy) -> Self {
        Self {
            problems: Vec::new(),
            more: 0,
            policy,
        }
    }

    /// The problems found: at most [`MAX_PROBLEMS`], and a last one counting the rest.
    pub(super) fn into_problems(mut self) -> Vec<Problem> {
        if self.more > 0 {
            self.problems.push(Problem::new(
                "",
                format!("and {} more problems not listed", self.more),
            ));
        }
        self.problems
    }

    pub(super) fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    pub(super) fn fail(&mut self, path: &str, message: impl Into<String>) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem::new(path, message));
        } else {
            self.more += 1;
        }
    }

    pub(super) fn object<'v>(
        &mut self,
        v: &'v Value,
        path: &str,
        fields: &[&str],
    ) -> Option<&'v Map<String, Value>> {
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

    pub(super) fn required<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<&'v Value> {
        match map.get(key) {
            None | Some(Value::Null) => {
                self.fail(&join(path, key), "is required");
                None
            }
            Some(v) => Some(v),
        }
    }

    pub(super) fn string<'v>(&mut self, v: &'v Value, path: &str, max_chars: usize) -> Option<&'v str> {
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

    /// A string on one line: no control characters but tab (CR and LF would split a mail
    /// header or a CSV record; the rest have no place in a title, label or address).
    pub(super) fn line<'v>(&mut self, v: &'v Value, path: &str, max_chars: usize) -> Option<&'v str> {
        let text = self.string(v, path, max_chars)?;
        match text
            .chars()
            .find(|c| (c.is_control() && *c != '\t') || is_format_breaker(*c))
        {
            None => Some(text),
            Some(c) => {
                self.fail(
                    path,
                    format!(
                        "must be one line without control characters (found U+{:04X})",
                        u32::from(c)
                    ),
                );
                None
            }
        }
    }

    pub(super) fn array<'v>(
        &mut self,
        v: &'v Value,
        path: &str,
        min: usize,
        max: usize,
    ) -> Option<&'v [Value]> {
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

    pub(super) fn one_of<T: Copy>(&mut self, v: &Value, path: &str, options: &[(&str, T)]) -> Option<T> {
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

    /// An optional boolean: `default` when absent or null.
    pub(super) fn flag(&mut self, v: Option<&Value>, path: &str, default: bool) -> Option<bool> {
        match v {
            None | Some(Value::Null) => Some(default),
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                self.fail(path, format!("must be a boolean, found {}", type_name(other)));
                None
            }
        }
    }

    pub(super) fn duration(&mut self, v: &Value, path: &str) -> Option<IsoDuration> {
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
    pub(super) fn unix(&mut self, v: Option<&Value>, path: &str) -> Option<Option<DateTime<Utc>>> {
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
}

/// Line and paragraph separators: line breaks to some readers, though not control characters.
fn is_format_breaker(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}')
}
