//! The one failure type of the event functions (run-export, notify) and its stable vocabulary
//! for the Lambda runtime's `Diagnostic`: `Retryable` (the runtime's retries and the dead-letter
//! queue can help: a store or scheduler unavailable) or `Permanent` (they cannot). The cause is
//! kept as the error's source, for the log.

use exporter_core::ports::{AccessError, Cause, ScheduleError, StoreError};

/// Why an event function stopped.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Worth retrying: something the function depends on was unavailable.
    #[error("retryable: {0}")]
    Retryable(#[source] Cause),
    /// Retrying cannot help.
    #[error("permanent: {0}")]
    Permanent(#[source] Cause),
}

impl Failure {
    /// A permanent failure described by `message`.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent(message.into().into())
    }

    /// The runtime's name for this kind of failure.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Retryable(_) => "Retryable",
            Self::Permanent(_) => "Permanent",
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::Retryable(Box::new(e)),
            other => Self::Permanent(Box::new(other)),
        }
    }
}

impl From<ScheduleError> for Failure {
    fn from(e: ScheduleError) -> Self {
        Self::Retryable(Box::new(e))
    }
}

impl From<AccessError> for Failure {
    fn from(e: AccessError) -> Self {
        Self::Retryable(Box::new(e))
    }
}

impl From<Failure> for lambda_runtime::Diagnostic {
    fn from(e: Failure) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.error_type().into(),
            error_message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_store_is_retryable_and_a_corrupt_record_is_not() {
        let retry = Failure::from(StoreError::Unavailable("timeout".into()));
        assert_eq!(retry.error_type(), "Retryable");
        assert_eq!(retry.to_string(), "retryable: the store is unavailable");
        assert!(std::error::Error::source(&retry).is_some(), "the cause is kept");
        let permanent = Failure::from(StoreError::Corrupt("export item: pk".into()));
        let diagnostic = lambda_runtime::Diagnostic::from(permanent);
        assert_eq!(diagnostic.error_type, "Permanent");
        assert!(diagnostic.error_message.contains("export item: pk"));
    }
}
