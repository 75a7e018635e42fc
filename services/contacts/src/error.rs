//! The contacts service's errors and their gRPC codes.
use ism_platform::paging::FieldError;
use ism_platform::status;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("contact not found")]
    ContactNotFound,
    #[error("contact field not found")]
    FieldNotFound,
    #[error("tag not found")]
    TagNotFound,
    #[error("segment not found")]
    SegmentNotFound,
    #[error("import not found")]
    ImportNotFound,
    /// The caller read an older version than the current one.
    #[error("version: the contact changed since it was read (now at version {current})")]
    StaleVersion { current: i64 },
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The request is well-formed but the current state does not allow it.
    #[error("{0}")]
    Precondition(String),
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
            Error::ContactNotFound
            | Error::FieldNotFound
            | Error::TagNotFound
            | Error::SegmentNotFound
            | Error::ImportNotFound => Status::not_found(e.to_string()),
            Error::StaleVersion { .. } | Error::Precondition(_) => {
                Status::failed_precondition(e.to_string())
            }
            Error::AlreadyExists(_) => Status::already_exists(e.to_string()),
            Error::Unexpected(e) => status::unexpected(&e),
        }
    }
}
