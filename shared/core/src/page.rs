//! The reader's page, `{"total","offset","limit","messages":[...]}`, parsed in one pass straight
//! into points.
//!
//! This is the export's hot path: a million points are a quarter of a gigabyte of JSON. The page
//! is checked as UTF-8 once, then scanned byte by byte; strings without escapes are borrowed from
//! it (the end of a string is found with `memchr`), field names are matched without building
//! anything, unknown fields are skipped without being parsed, and times are read as exact
//! nanoseconds from their decimal text rather than through a float. Numbers go through the
//! standard library's correctly rounded `f64` parser, so a value is exactly the one the reader
//! wrote. Messages accept camelCase and snake_case field names (`sum` also as `valueSum`), and
//! `null` wherever a field may be absent.

use std::borrow::Cow;

use memchr::memchr2;

use crate::domain::dialect::TimeUnit;
use crate::domain::series::{seconds_to_nanos, Point};

/// One page of the reader's answer: its counters and its points, in the order served.
#[derive(Debug, Default, PartialEq)]
pub struct Page<'a> {
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
    /// How many messages the answer held, those without a usable time included.
    pub messages: u64,
    /// How many of them have no time at all (`null`): skipped, as a message without a time
    /// cannot be placed. A time that is no instant in the unit is not among them.
    pub null_times: u64,
    /// The messages whose time is a representable instant, in the order of the answer.
    pub points: Vec<Point<'a>>,
}

/// Why an answer is not a page: what was expected, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem} at byte {at}")]
pub struct PageError {
    pub at: usize,
    pub problem: &'static str,
}

/// Parses a page whose times are Unix seconds; strings without escapes are borrowed from `bytes`.
pub fn parse_page(bytes: &[u8]) -> Result<Page<'_>, PageError> {
    parse_page_in(bytes, TimeUnit::Seconds)
}

/// Parses a page whose times (`time`, `updateTime`) are in `unit`.
pub fn parse_page_in(bytes: &[u8], unit: TimeUnit) -> Result<Page<'_>, PageError> {
    let text = std::str::from_utf8(bytes).map_err(|e| PageError {
        at: e.valid_up_to(),
        problem: "not UTF-8",
    })?;
    let mut cursor = Cursor {
        text,
        bytes,
        at: 0,
        unit,
    };
    let mut page = Page::default();
    let mut total = None;
    cursor.object(|c, key| {
        match key {
            Key::Known("total") => total = Some(c.count()?),
            Key::Known("offset") => page.offset = c.count()?,
            Key::Known("limit") => page.limit = c.count()?,
            Key::Known("messages") => {
                if !c.null() {
                    c.array(|c| {
                        page.messages += 1;
                        match c.message()? {
                            Placed::Point(point) => page.points.push(point),
                            Placed::NullTime => page.null_times += 1,
                            Placed::NoInstant => {}
                        }
                        Ok(())
                    })?;
                }
            }
            _ => c.skip_value()?,
        }
        Ok(())
    })?;
    cursor.skip_whitespace();
    if cursor.at != bytes.len() {
        return Err(cursor.error("trailing characters after the page"));
    }
    // Paging follows from the total: without it, later pages would be silently missed.
    page.total = total.ok_or_else(|| cursor.error("the page has no total"))?;
    Ok(page)
}

/// What a message's time made of it.
// Returned once per message and matched at once: boxing the point would cost an allocation per
// message on the hot path.
#[allow(clippy::large_enum_variant)]
enum Placed<'a> {
    Point(Point<'a>),
    /// Its time is `null`.
    NullTime,
    /// Its time is no instant in the page's unit.
    NoInstant,
}

/// A field name: borrowed when it has no escapes (every name this parser knows has none).
enum Key<'a> {
    Known(&'a str),
    Escaped,
}

struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    unit: TimeUnit,
}

impl<'a> Cursor<'a> {
    fn error(&self, problem: &'static str) -> PageError {
        PageError { at: self.at, problem }
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8, problem: &'static str) -> Result<(), PageError> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(problem))
        }
    }

    /// The text between two positions that are both at ASCII bytes (so at char boundaries).
    fn slice(&self, from: usize, to: usize) -> Result<&'a str, PageError> {
        self.text.get(from..to).ok_or_else(|| self.error("broken text"))
    }

    /// Consumes `word` if it comes next.
    fn literal(&mut self, word: &[u8]) -> bool {
        self.skip_whitespace();
        let found = self
            .bytes
            .get(self.at..)
            .is_some_and(|rest| rest.starts_with(word));
        if found {
            self.at += word.len();
        }
        found
    }

    fn null(&mut self) -> bool {
        self.literal(b"null")
    }

    /// Calls `field` for each member of an object, with the cursor at the member's value.
    fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, Key<'a>) -> Result<(), PageError>,
    ) -> Result<(), PageError> {
        self.expect(b'{', "expected an object")?;
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(());
        }
        loop {
            let key = match self.string()? {
                Cow::Borrowed(name) => Key::Known(name),
                Cow::Owned(_) => Key::Escaped,
            };
            self.expect(b':', "expected ':' after a field name")?;
            field(self, key)?;
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(self.error("expected ',' or '}' in an object")),
            }
        }
    }

    /// Calls `element` for each element of an array, with the cursor at the element.
    fn array(
        &mut self,
        mut element: impl FnMut(&mut Self) -> Result<(), PageError>,
    ) -> Result<(), PageError> {
        self.expect(b'[', "expected an array")?;
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(());
        }
        loop {
            element(self)?;
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(self.error("expected ',' or ']' in an array")),
            }
        }
    }

    /// A string: borrowed when it has no escapes, decoded otherwise.
    fn string(&mut self) -> Result<Cow<'a, str>, PageError> {
        self.expect(b'"', "expected a string")?;
        let start = self.at;
        let end = start + self.string_run()?;
        if self.bytes.get(end) == Some(&b'"') {
            self.at = end + 1;
            return self.slice(start, end).map(Cow::Borrowed);
        }
        let mut decoded = String::from(self.slice(start, end)?);
        self.at = end;
        loop {
            match self.bytes.get(self.at) {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(Cow::Owned(decoded));
                }
                Some(b'\\') => {
                    self.at += 1;
                    let escaped = self.escape()?;
                    decoded.push(escaped);
                }
                _ => {
                    let run = self.string_run()?;
                    decoded.push_str(self.slice(self.at, self.at + run)?);
                    self.at += run;
                }
            }
        }
    }

    /// How many bytes from the cursor to the next `"` or `\`.
    fn string_run(&self) -> Result<usize, PageError> {
        self.bytes
            .get(self.at..)
            .and_then(|rest| memchr2(b'"', b'\\', rest))
            .ok_or_else(|| self.error("unterminated string"))
    }

    /// The character of an escape, with the cursor just after its backslash.
    fn escape(&mut self) -> Result<char, PageError> {
        let byte = self.bytes.get(self.at).copied();
        self.at += 1;
        Ok(match byte {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let unit = self.hex4()?;
                let code = match unit {
                    0xD800..=0xDBFF => {
                        if !self.bytes.get(self.at..).is_some_and(|r| r.starts_with(b"\\u")) {
                            return Err(self.error("unpaired surrogate in a string"));
                        }
                        self.at += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(self.error("unpaired surrogate in a string"));
                        }
                        0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return Err(self.error("unpaired surrogate in a string")),
                    _ => unit,
                };
                char::from_u32(code).ok_or_else(|| self.error("invalid escape in a string"))?
            }
            _ => return Err(self.error("invalid escape in a string")),
        })
    }

    fn hex4(&mut self) -> Result<u32, PageError> {
        let digits = self
            .bytes
            .get(self.at..self.at + 4)
            .ok_or_else(|| self.error("invalid \\u escape"))?;
        let mut unit = 0;
        for &d in digits {
            let value = (d as char)
                .to_digit(16)
                .ok_or_else(|| self.error("invalid \\u escape"))?;
            unit = unit * 16 + value;
        }
        self.at += 4;
        Ok(unit)
    }

    /// The text of a number (checked by whoever converts it).
    fn number_text(&mut self) -> Result<&'a str, PageError> {
        self.skip_whitespace();
        let start = self.at;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
        }
        if self.at == start {
            return Err(self.error("expected a number"));
        }
        self.slice(start, self.at)
    }

    /// A non-negative integer such as `total`.
    fn count(&mut self) -> Result<u64, PageError> {
        let start = self.at;
        let text = self.number_text()?;
        text.parse().map_err(|_| PageError {
            at: start,
            problem: "expected a non-negative integer",
        })
    }

    fn float(&mut self) -> Result<f64, PageError> {
        let start = self.at;
        let text = self.number_text()?;
        parse_json_float(text).ok_or(PageError {
            at: start,
            problem: "expected a number",
        })
    }

    fn optional_float(&mut self) -> Result<Option<f64>, PageError> {
        if self.null() {
            Ok(None)
        } else {
            self.float().map(Some)
        }
    }

    fn optional_string(&mut self) -> Result<Option<Cow<'a, str>>, PageError> {
        if self.null() {
            Ok(None)
        } else {
            self.string().map(Some)
        }
    }

    /// A string field where absent and `null` both mean empty.
    fn text_field(&mut self) -> Result<Cow<'a, str>, PageError> {
        Ok(self.optional_string()?.unwrap_or_default())
    }

    fn optional_bool(&mut self) -> Result<Option<bool>, PageError> {
        if self.literal(b"true") {
            Ok(Some(true))
        } else if self.literal(b"false") {
            Ok(Some(false))
        } else if self.null() {
            Ok(None)
        } else {
            Err(self.error("expected true, false or null"))
        }
    }

    /// A time in the page's unit, as exact nanoseconds; `None` when not representable (the
    /// caller has checked for `null`).
    fn time(&mut self) -> Result<Option<i64>, PageError> {
        let start = self.at;
        let text = self.number_text()?;
        let exact = match self.unit {
            TimeUnit::Seconds => exact_nanos(text),
            TimeUnit::Nanoseconds => exact_integer(text),
        };
        match exact {
            Some(nanos) => Ok(Some(nanos)),
            None => parse_json_float(text)
                .map(|t| match self.unit {
                    TimeUnit::Seconds => seconds_to_nanos(t),
                    TimeUnit::Nanoseconds => {
                        let t = t.round();
                        (t.is_finite() && t.abs() < 9.2e18).then_some(t as i64)
                    }
                })
                .ok_or(PageError {
                    at: start,
                    problem: "expected a number",
                }),
        }
    }

    /// An `updateTime`, always as Unix seconds (as the file writes it, whatever the unit).
    fn update_time(&mut self) -> Result<Option<f64>, PageError> {
        if self.unit == TimeUnit::Seconds {
            return self.optional_float();
        }
        if self.null() {
            return Ok(None);
        }
        Ok(self.time()?.map(|ns| {
            let sign = if ns < 0 { "-" } else { "" };
            let magnitude = ns.unsigned_abs();
            let (secs, nanos) = (magnitude / 1_000_000_000, magnitude % 1_000_000_000);
            // Through its decimal text, so the value is the one a seconds reader writes.
            format!("{sign}{secs}.{nanos:09}")
                .parse()
                .unwrap_or(ns as f64 / 1e9)
        }))
    }

    /// One SenML message, placed by its time.
    fn message(&mut self) -> Result<Placed<'a>, PageError> {
        let mut point = Point::default();
        let mut time = Some(0);
        let mut null_time = false;
        self.object(|c, key| {
            let Key::Known(name) = key else {
                return c.skip_value();
            };
            match name {
                "channel" => point.channel = c.text_field()?,
                "subtopic" => point.subtopic = c.text_field()?,
                "publisher" => point.publisher = c.text_field()?,
                "protocol" => point.protocol = c.text_field()?,
                "name" => point.name = c.text_field()?,
                "unit" => point.unit = c.text_field()?,
                "time" if c.null() => null_time = true,
                "time" => time = c.time()?,
                "value" => point.value = c.optional_float()?,
                "string_value" | "stringValue" => point.string_value = c.optional_string()?,
                "bool_value" | "boolValue" => point.bool_value = c.optional_bool()?,
                "data_value" | "dataValue" => point.data_value = c.optional_string()?,
                "sum" | "valueSum" | "value_sum" => point.sum = c.optional_float()?,
                "update_time" | "updateTime" => point.update_time = c.update_time()?,
                _ => c.skip_value()?,
            }
            Ok(())
        })?;
        Ok(match time {
            _ if null_time => Placed::NullTime,
            Some(time_ns) => Placed::Point(Point { time_ns, ..point }),
            None => Placed::NoInstant,
        })
    }

    /// Skips any JSON value (nested ones by counting brackets, strings by their quotes).
    fn skip_value(&mut self) -> Result<(), PageError> {
        match self.peek() {
            Some(b'"') => {
                self.at += 1;
                self.skip_string_rest()
            }
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    match self.bytes.get(self.at) {
                        Some(b'{' | b'[') => depth += 1,
                        Some(b'}' | b']') => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Ok(());
                            }
                        }
                        Some(b'"') => {
                            self.at += 1;
                            self.skip_string_rest()?;
                            continue;
                        }
                        Some(_) => {}
                        None => return Err(self.error("unterminated object or array")),
                    }
                    self.at += 1;
                }
            }
            Some(b't' | b'f' | b'n') => {
                if self.literal(b"true") || self.literal(b"false") || self.null() {
                    Ok(())
                } else {
                    Err(self.error("expected a value"))
                }
            }
            _ => self.float().map(drop),
        }
    }

    /// Skips to just after the closing quote of a string whose opening quote is consumed.
    fn skip_string_rest(&mut self) -> Result<(), PageError> {
        loop {
            self.at += self.string_run()?;
            match self.bytes.get(self.at) {
                Some(b'\\') => self.at += 2,
                _ => {
                    self.at += 1;
                    return Ok(());
                }
            }
        }
    }
}

/// A number in JSON's grammar (no `inf`, `nan`, leading `+` or bare `.5`), correctly rounded.
fn parse_json_float(text: &str) -> Option<f64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    digits.as_bytes().first().filter(|b| b.is_ascii_digit())?;
    text.parse().ok()
}

/// Unix seconds written as `-?digits(.digits)?` to exact nanoseconds, rounding past the ninth
/// decimal half away from zero; `None` for other forms (exponents) or out of range.
fn exact_nanos(text: &str) -> Option<i64> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if whole.is_empty() || whole.len() > 11 || (!fraction.is_empty() && fraction.len() > 30) {
        return None;
    }
    let mut seconds: i64 = 0;
    for b in whole.bytes() {
        seconds = seconds * 10 + i64::from(digit(b)?);
    }
    let mut nanos: i64 = 0;
    let mut round_up = false;
    for (i, b) in fraction.bytes().enumerate() {
        let d = i64::from(digit(b)?);
        match i {
            0..=8 => nanos = nanos * 10 + d,
            9 => round_up = d >= 5,
            _ => {}
        }
    }
    for _ in fraction.len()..9 {
        nanos *= 10;
    }
    let magnitude = seconds
        .checked_mul(1_000_000_000)?
        .checked_add(nanos + i64::from(round_up))?;
    Some(if negative { -magnitude } else { magnitude })
}

/// An integer count of nanoseconds written as `-?digits(.digits)?`, exactly, rounding a fraction
/// half away from zero; `None` for other forms (exponents) or out of range.
fn exact_integer(text: &str) -> Option<i64> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if whole.is_empty() || whole.len() > 19 {
        return None;
    }
    let mut magnitude: i64 = 0;
    for b in whole.bytes() {
        magnitude = magnitude.checked_mul(10)?.checked_add(i64::from(digit(b)?))?;
    }
    for b in fraction.bytes() {
        digit(b)?;
    }
    if fraction.as_bytes().first().is_some_and(|&b| b >= b'5') {
        magnitude = magnitude.checked_add(1)?;
    }
    Some(if negative { -magnitude } else { magnitude })
}

fn digit(b: u8) -> Option<u8> {
    b.is_ascii_digit().then(|| b - b'0')
}

/// The points of one page, oldest first, borrowing from the page's bytes, and its counters.
#[derive(yoke::Yokeable)]
pub struct PagePoints<'a> {
    pub points: Vec<Point<'a>>,
    /// The reader's count of the messages the query matches.
    pub total: u64,
    /// The offset the answer starts at.
    pub offset: u64,
    /// The messages the answer held.
    pub messages: u64,
    /// Those of them whose time is `null` (skipped).
    pub null_times: u64,
}

/// A parsed page that owns its bytes, so it can cross threads without copying its strings.
pub type OwnedPage = yoke::Yoke<PagePoints<'static>, Vec<u8>>;

/// Parses a page whose times are in `unit` into its points, oldest first (upstream serves them
/// newest first).
pub fn parse_owned(bytes: Vec<u8>, unit: TimeUnit) -> Result<OwnedPage, PageError> {
    yoke::Yoke::try_attach_to_cart(bytes, |bytes: &[u8]| {
        let page = parse_page_in(bytes, unit)?;
        let mut points = page.points;
        points.reverse();
        // Linear on sorted input: a reader that breaks the order cannot break buckets, and
        // messages of one time come in one order whatever order the reader served them in.
        points.sort_by(|a, b| a.order(b));
        Ok(PagePoints {
            points,
            total: page.total,
            offset: page.offset,
            messages: page.messages,
            null_times: page.null_times,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;
    use serde_json::{json, Value};

    /// The reference: the same contract through serde_json (with correctly rounded floats).
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct WireMessage {
        channel: String,
        subtopic: String,
        publisher: String,
        protocol: String,
        name: String,
        unit: String,
        time: f64,
        value: Option<f64>,
        #[serde(alias = "stringValue")]
        string_value: Option<String>,
        #[serde(alias = "boolValue")]
        bool_value: Option<bool>,
        #[serde(alias = "dataValue")]
        data_value: Option<String>,
        #[serde(alias = "valueSum", alias = "value_sum")]
        sum: Option<f64>,
        #[serde(alias = "updateTime")]
        update_time: Option<f64>,
    }

    #[derive(Debug, Deserialize)]
    struct WirePage {
        total: u64,
        #[serde(default)]
        offset: u64,
        #[serde(default)]
        limit: u64,
        #[serde(default)]
        messages: Vec<WireMessage>,
    }

    fn reference(body: &[u8]) -> (u64, u64, u64, Vec<Point<'static>>) {
        let page: WirePage = serde_json::from_slice(body).expect("the reference parses the page");
        let points = page
            .messages
            .into_iter()
            .filter_map(|m| {
                Some(Point {
                    time_ns: seconds_to_nanos(m.time)?,
                    name: m.name.into(),
                    unit: m.unit.into(),
                    channel: m.channel.into(),
                    subtopic: m.subtopic.into(),
                    publisher: m.publisher.into(),
                    protocol: m.protocol.into(),
                    value: m.value,
                    string_value: m.string_value.map(Cow::Owned),
                    bool_value: m.bool_value,
                    data_value: m.data_value.map(Cow::Owned),
                    sum: m.sum,
                    update_time: m.update_time,
                })
            })
            .collect();
        (page.total, page.offset, page.limit, points)
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z:.-]{0,12}",
            any::<String>(),
            Just("quote \" backslash \\ slash / tab \t nl \n ctl \u{1} é 😀".to_owned()),
        ]
    }

    fn message() -> impl Strategy<Value = Value> {
        (
            (text(), text(), text(), proptest::option::of(text())),
            (0i64..4_000_000_000, 0u32..1_000_000_000, any::<bool>()),
            proptest::option::of(any::<f64>().prop_filter("finite", |v| v.is_finite())),
            proptest::option::of(any::<bool>()),
            any::<bool>(),
            proptest::option::of(-1e12f64..1e12),
        )
            .prop_map(
                |((channel, name, unit, string), (secs, nanos, whole), value, flag, snake, sum)| {
                    let time = if whole {
                        json!(secs)
                    } else {
                        json!(secs as f64 + f64::from(nanos) / 1e9)
                    };
                    let (string_key, bool_key, sum_key) = if snake {
                        ("string_value", "bool_value", "value_sum")
                    } else {
                        ("stringValue", "boolValue", "valueSum")
                    };
                    json!({
                        "channel": channel, "name": name, "unit": unit, "time": time,
                        "value": value, string_key: string, bool_key: flag, sum_key: sum,
                        "extra": {"nested": [1, "x\"]", {"y": null}], "n": -1.5e3},
                        "publisher": "p", "protocol": "mqtt", "subtopic": "a.b",
                    })
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Any page the reader can serve parses exactly as serde_json parses it, compact or pretty.
        #[test]
        fn parses_as_serde_json_does(messages in proptest::collection::vec(message(), 0..20), pretty: bool) {
            let page = json!({"total": messages.len(), "offset": 0, "limit": 1000, "messages": messages});
            let body = if pretty {
                serde_json::to_vec_pretty(&page)
            } else {
                serde_json::to_vec(&page)
            }
            .expect("serialisable");
            let ours = parse_page(&body).expect("a page");
            let (total, offset, limit, points) = reference(&body);
            prop_assert_eq!((ours.total, ours.offset, ours.limit), (total, offset, limit));
            prop_assert_eq!(ours.points.len(), points.len());
            for (a, b) in ours.points.iter().zip(&points) {
                // Times: ours are exact; the reference goes through f64.
                prop_assert!((a.time_ns - b.time_ns).abs() <= 1024, "{} vs {}", a.time_ns, b.time_ns);
                let a = Point { time_ns: 0, ..a.clone() };
                let b = Point { time_ns: 0, ..b.clone() };
                prop_assert_eq!(a, b);
            }
        }

        /// Whatever the bytes, the parser answers without panicking, in either unit.
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_page(&bytes);
            let _ = parse_page_in(&bytes, TimeUnit::Nanoseconds);
        }

        /// A nanosecond time written as an integer, or with a fraction of a nanosecond, is read
        /// exactly (the fraction rounded half away from zero), as the reference of `i128`
        /// arithmetic on its digits says; an `updateTime` comes out in seconds.
        #[test]
        fn nanosecond_times_are_exact(ns in -9_000_000_000_000_000_000i64..9_000_000_000_000_000_000, fraction in proptest::option::of(0u32..1000)) {
            let written = match fraction {
                None => ns.to_string(),
                Some(f) => format!("{ns}.{f:03}"),
            };
            let body = format!(r#"{{"total":2,"messages":[{{"time":{written},"updateTime":{ns}}},{{"time":null,"updateTime":null}}]}}"#);
            let page = parse_page_in(body.as_bytes(), TimeUnit::Nanoseconds).expect("a page");
            prop_assert_eq!((page.points.len(), page.null_times), (1, 1));
            let away = i128::from(fraction.is_some_and(|f| f >= 500));
            let expected = i128::from(ns) + if ns < 0 { -away } else { away };
            prop_assert_eq!(i128::from(page.points[0].time_ns), expected);
            let seconds = page.points[0].update_time.expect("an update time");
            prop_assert!((seconds - ns as f64 / 1e9).abs() <= 1e-6 * (ns as f64 / 1e9).abs().max(1.0));
            prop_assert_eq!(seconds < 0.0, ns < 0);
        }

        /// A valid page with bytes changed into JSON's own punctuation never makes it panic.
        #[test]
        fn never_panics_on_damaged_pages(
            messages in proptest::collection::vec(message(), 1..4),
            damage in proptest::collection::vec((0.0f64..1.0, proptest::sample::select(&b"\"\\{}[],:0-.eEntu \xff"[..])), 1..6),
        ) {
            let mut body = serde_json::to_vec(&json!({"total": 1, "messages": messages})).expect("serialisable");
            for (at, byte) in damage {
                let at = ((body.len() - 1) as f64 * at) as usize;
                body[at] = byte;
            }
            let _ = parse_page(&body);
        }

        /// A valid page cut anywhere is an error, never a panic nor a shorter page.
        #[test]
        fn a_cut_page_is_an_error(messages in proptest::collection::vec(message(), 1..4), cut in 0.0f64..1.0) {
            let body = serde_json::to_vec(&json!({"total": 1, "messages": messages})).expect("serialisable");
            let end = ((body.len() - 1) as f64 * cut) as usize;
            prop_assert!(parse_page(&body[..end]).is_err());
        }
    }

    #[test]
    fn times_are_exact_nanoseconds() {
        let body = br#"{"total":4,"messages":[{"time":1773323199.123456789},{"time":1773323199.1234567895},
            {"time":-1.5},{"time":1.7e9},{"time":1e300},{"time":null}]}"#;
        let times: Vec<i64> = parse_page(body)
            .expect("a page")
            .points
            .iter()
            .map(|p| p.time_ns)
            .collect();
        assert_eq!(
            times,
            [
                1_773_323_199_123_456_789,
                1_773_323_199_123_456_790,
                -1_500_000_000,
                1_700_000_000_000_000_000
            ]
        );
    }

    #[test]
    fn nanosecond_pages_read_integers_exponents_and_refuse_seconds_sized_overflow() {
        let body = br#"{"total":4,"messages":[{"time":1767225600123456789},{"time":1.7672256001234568e18},
            {"time":99999999999999999999},{"time":1767225600}]}"#;
        let page = parse_page_in(body, TimeUnit::Nanoseconds).expect("a page");
        let times: Vec<i64> = page.points.iter().map(|p| p.time_ns).collect();
        // The exponent form went through a double (Magistrala's own float64); the too-large
        // one is no instant (counted, not kept); a seconds-sized one is an instant of 1970.
        assert_eq!(
            times,
            [
                1_767_225_600_123_456_789,
                1_767_225_600_123_456_768,
                1_767_225_600
            ]
        );
        assert_eq!(page.messages, 4);
        // Read as seconds, a nanosecond time is no instant either.
        let as_seconds =
            parse_page(br#"{"total":1,"messages":[{"time":1767225600123456789}]}"#).expect("a page");
        assert!(as_seconds.points.is_empty() && as_seconds.messages == 1);
    }

    #[test]
    fn a_seconds_time_at_the_edge_of_the_range_is_no_instant_never_an_overflow() {
        let page = parse_page(br#"{"total":2,"messages":[{"time":9223372036.9},{"time":-9223372036.9}]}"#)
            .expect("a page");
        assert!(page.points.is_empty());
        assert_eq!((page.messages, page.null_times), (2, 0));
        let page = parse_page_in(
            br#"{"total":1,"messages":[{"time":5,"updateTime":-1}]}"#,
            TimeUnit::Nanoseconds,
        )
        .expect("a page");
        assert_eq!(page.points[0].update_time, Some(-0.000_000_001));
    }

    #[test]
    fn values_are_correctly_rounded() {
        let body = br#"{"total":3,"messages":[{"value":45.98},{"value":0.1},{"value":2.2250738585072011e-308},{"value":1e23}]}"#;
        let values: Vec<f64> = parse_page(body)
            .expect("a page")
            .points
            .iter()
            .filter_map(|p| p.value)
            .collect();
        assert_eq!(values, [45.98, 0.1, 2.225_073_858_507_201e-308, 1e23]);
    }

    #[test]
    fn escapes_are_decoded_and_plain_strings_borrowed() {
        let body = br#"{"total":1,"messages":[{"name":"a\"b\\c\/d\u00e9\ud83d\ude00\n","unit":"Cel"}]}"#;
        let page = parse_page(body).expect("a page");
        assert_eq!(page.points[0].name, "a\"b\\c/dé😀\n");
        assert!(matches!(page.points[0].unit, Cow::Borrowed("Cel")));
    }

    #[test]
    fn bad_pages_say_what_and_where() {
        for (body, problem) in [
            (&br#"[]"#[..], "expected an object"),
            (br#"{"messages":[]}"#, "the page has no total"),
            (br#"{"total":-1}"#, "expected a non-negative integer"),
            (br#"{"total":1} x"#, "trailing characters after the page"),
            (br#"{"total":1,"messages":[{"value":"1"}]}"#, "expected a number"),
            (br#"{"total":1,"messages":[{"value":nan}]}"#, "expected a number"),
            (
                br#"{"total":1,"messages":[{"name":"\ud800"}]}"#,
                "unpaired surrogate in a string",
            ),
            (
                br#"{"total":1,"messages":[{"name":"\x"}]}"#,
                "invalid escape in a string",
            ),
            (b"{\"total\":1,\"messages\":[{\"name\":\"\xff\"}]}", "not UTF-8"),
            (
                br#"{"total":1,"messages":[{"boolValue":1}]}"#,
                "expected true, false or null",
            ),
        ] {
            let error = parse_page(body).expect_err("not a page");
            assert_eq!(error.problem, problem, "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(
            parse_page(br#"{"total":1,"messages":[1]}"#)
                .expect_err("not a page")
                .to_string(),
            "expected an object at byte 23"
        );
    }
}
