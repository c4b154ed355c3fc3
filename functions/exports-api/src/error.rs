//! The one place where the API's failures become status codes and JSON bodies (spec section 2).
//! Causes go to the log, never into a response.

use lambda_http::{Body, Response};
use serde_json::json;

use exporter_core::domain::Problem;
use exporter_core::ports::{AccessError, Cause, LaunchError, ScheduleError, StoreError};

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Invalid request")]
    Invalid(Vec<Problem>),
    #[error("Missing user identity id")]
    MissingIdentity,
    #[error("Missing permission {0}")]
    Forbidden(&'static str),
    #[error("Channel access denied")]
    ChannelDenied(Vec<Problem>),
    #[error("Not found")]
    NotFound,
    #[error("No finished file yet")]
    NoFileYet,
    #[error("The files of the latest job have expired")]
    Expired,
    #[error("The link has expired")]
    LinkExpired,
    #[error("Method not allowed")]
    MethodNotAllowed(&'static str),
    #[error("Request body too large")]
    TooLarge(usize),
    #[error("Maximum number of queued exports reached")]
    QuotaReached,
    /// The export's state does not allow the change (a one-time export edited, a paused one
    /// paused): what to do instead.
    #[error("Conflict")]
    Conflict(String),
    /// `If-Match` names another version than the stored one (or another change came first).
    #[error("The export has changed since it was read")]
    Stale(String),
    #[error("Service temporarily unavailable")]
    Unavailable(#[source] Cause),
    #[error("Internal error")]
    Internal(#[source] Cause),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::QuotaReached => Self::QuotaReached,
            StoreError::NotFound => Self::NotFound,
            StoreError::Unavailable(_) => Self::Unavailable(Box::new(e)),
            StoreError::AlreadyExists | StoreError::Corrupt(_) => Self::Internal(Box::new(e)),
        }
    }
}

impl From<ScheduleError> for ApiError {
    fn from(e: ScheduleError) -> Self {
        Self::Unavailable(Box::new(e))
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::NoCredential => Self::ChannelDenied(vec![Problem::new("", e.to_string())]),
            AccessError::Unavailable(_) => Self::Unavailable(Box::new(e)),
        }
    }
}

impl From<LaunchError> for ApiError {
    fn from(e: LaunchError) -> Self {
        Self::Unavailable(Box::new(e))
    }
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            Self::Invalid(_) | Self::MissingIdentity => 400,
            Self::Forbidden(_) | Self::ChannelDenied(_) => 403,
            Self::NotFound | Self::NoFileYet => 404,
            Self::Expired | Self::LinkExpired => 410,
            Self::MethodNotAllowed(_) => 405,
            Self::TooLarge(_) => 413,
            Self::QuotaReached => 429,
            Self::Conflict(_) => 409,
            Self::Stale(_) => 412,
            Self::Internal(_) => 500,
            Self::Unavailable(_) => 503,
        }
    }

    /// The response: `{"error", "details": [{"path", "message"}]}`.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        if status >= 500 {
            let cause = std::error::Error::source(&self)
                .map(|c| c.to_string())
                .unwrap_or_default();
            tracing::error!(status, error = %self, cause, "request failed");
        }
        let details: Vec<Problem> = match &self {
            Self::Invalid(problems) | Self::ChannelDenied(problems) => problems.clone(),
            Self::Forbidden(action) => {
                vec![Problem::new(
                    "",
                    format!("the token lacks the permission `{action}`"),
                )]
            }
            Self::TooLarge(limit) => vec![Problem::new(
                "",
                format!("the body must be at most {limit} bytes"),
            )],
            Self::MethodNotAllowed(allowed) => vec![Problem::new("", format!("allowed methods: {allowed}"))],
            Self::Conflict(why) => vec![Problem::new("", why.clone())],
            Self::Stale(etag) => vec![Problem::new(
                "",
                format!(
                    "the stored version is {etag}: read the export again, and send its `ETag` as `If-Match`"
                ),
            )],
            _ => Vec::new(),
        };
        let body = json!({"error": self.to_string(), "details": details});
        let mut response = crate::json_response(status, &body);
        if let Self::Stale(etag) = &self {
            if let Ok(value) = etag.parse() {
                response.headers_mut().insert("etag", value);
            }
        }
        if let Self::MethodNotAllowed(allowed) = self {
            if let Ok(value) = allowed.parse() {
                response.headers_mut().insert("allow", value);
            }
        }
        response
    }
}
