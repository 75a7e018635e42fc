//! The conversations service's errors and their gRPC codes.
use ism_platform::paging::FieldError;
use ism_platform::status;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The request is well formed but the resource's state forbids it; names the field.
    #[error("{}: {}", .0.field, .0.reason)]
    FailedPrecondition(FieldError),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique name is taken; names the field.
    #[error("{}: {}", .0.field, .0.reason)]
    AlreadyExists(FieldError),
    /// A race lost to a concurrent change; retrying succeeds.
    #[error("{0}")]
    Aborted(&'static str),
    /// A service this one depends on did not answer.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl Error {
    /// FAILED_PRECONDITION on `field`.
    pub fn precondition(field: &'static str, reason: impl Into<String>) -> Self {
        Error::FailedPrecondition(FieldError::new(field, reason))
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Unexpected(e.into())
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(field) => status::invalid(&field),
            Error::FailedPrecondition(field) => Status::with_error_details(
                Code::FailedPrecondition,
                field.to_string(),
                ErrorDetails::with_precondition_failure_violation(
                    "STATE",
                    field.field,
                    field.reason.clone(),
                ),
            ),
            Error::NotFound(what) => Status::not_found(format!("{what} not found")),
            Error::AlreadyExists(field) => Status::with_error_details(
                Code::AlreadyExists,
                field.to_string(),
                ErrorDetails::with_bad_request_violation(field.field, field.reason.clone()),
            ),
            Error::Aborted(why) => Status::aborted(why),
            Error::Unavailable(why) => Status::unavailable(why),
            Error::Unexpected(e) => status::unexpected(&e),
        }
    }
}

impl From<Error> for ism_platform::events::HandlerError {
    fn from(e: Error) -> Self {
        match e {
            // A database or peer hiccup; the event is retried.
            Error::Unexpected(e) => Self::Transient(e),
            Error::Unavailable(why) => Self::Transient(anyhow::anyhow!(why)),
            Error::Aborted(why) => Self::Transient(anyhow::anyhow!(why)),
            other => Self::Permanent(other.to_string()),
        }
    }
}
