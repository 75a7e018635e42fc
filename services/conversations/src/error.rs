//! The conversations service's errors and their gRPC codes.
use ism_platform::paging::FieldError;
use ism_platform::status;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
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
            Error::NotFound(what) => Status::not_found(format!("{what} not found")),
            Error::Unexpected(e) => status::unexpected(&e),
        }
    }
}

impl From<Error> for ism_platform::events::HandlerError {
    fn from(e: Error) -> Self {
        match e {
            // A database hiccup; the event is retried.
            Error::Unexpected(e) => Self::Transient(e),
            other => Self::Permanent(other.to_string()),
        }
    }
}
