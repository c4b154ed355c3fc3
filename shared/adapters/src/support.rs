//! Small pieces the adapters share: a secret that never reaches a log, and the retry policy
//! (exponential backoff with full jitter) of the reader client and notify's deliveries.

use std::fmt;
use std::time::Duration;

/// A secret kept out of logs and debug output.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How hard to try a request before giving up.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 6,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(10),
        }
    }
}

impl Retry {
    /// Full jitter: a random wait up to `min(cap, base x 2^attempt)`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.cap);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// The longest wait any peer's `Retry-After` can impose.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A wait a peer asked for, in seconds (a `Retry-After` header, Telegram's `retry_after`):
/// `None` for anything that is not a finite, non-negative number; at most an hour. Never panics,
/// whatever the peer sent.
pub fn wait_of(seconds: f64) -> Option<Duration> {
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(seconds.min(MAX_RETRY_AFTER.as_secs_f64())).ok()
}

/// A `Retry-After` header in seconds (an HTTP date is ignored: the backoff applies).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(wait_of)
}

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("reading the answer failed")]
    Transport(#[source] reqwest::Error),
}

/// A response's body, decompressed, refused past `max` bytes: a small compressed answer (a gzip
/// bomb) can never make memory grow without bound.
pub async fn capped_body(mut response: reqwest::Response, max: usize) -> Result<bytes::Bytes, BodyError> {
    // Sized once when the peer says how much comes: a page is a few hundred kilobytes, and a
    // peer's word is not taken for more than a mebibyte (nor `max`).
    let expected = response
        .content_length()
        .unwrap_or(0)
        .min(max.min(1 << 20) as u64) as usize;
    let mut body = bytes::BytesMut::with_capacity(expected);
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// A peer's answer as text for an error message: the first `max` bytes' worth at most.
pub async fn capped_text(response: reqwest::Response, max: usize) -> String {
    match capped_body(response, max).await {
        Ok(body) => String::from_utf8_lossy(&body).into_owned(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_wait_a_peer_asks_for_is_bounded_and_never_panics() {
        assert_eq!(wait_of(2.5), Some(Duration::from_millis(2500)));
        assert_eq!(wait_of(0.0), Some(Duration::ZERO));
        assert_eq!(wait_of(1e300), Some(MAX_RETRY_AFTER));
        assert_eq!(wait_of(f64::MAX), Some(MAX_RETRY_AFTER));
        for hostile in [-1.0, -0.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(wait_of(hostile), None, "{hostile}");
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (value, expected) in [
            ("7", Some(Duration::from_secs(7))),
            ("99999999999999999999999", Some(MAX_RETRY_AFTER)),
            ("-3", None),
            ("NaN", None),
            ("Wed, 21 Oct 2026 07:28:00 GMT", None),
        ] {
            headers.insert(
                reqwest::header::RETRY_AFTER,
                value.parse().expect("a header value"),
            );
            assert_eq!(retry_after(&headers), expected, "{value}");
        }
    }
}
