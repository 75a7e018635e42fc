//! The workspaces service's errors and their gRPC codes.
use ism_platform::paging::FieldError;
use ism_platform::status;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique name or email is taken.
    #[error("{0}")]
    AlreadyExists(FieldError),
    /// The request is well formed but the Workspace's state forbids it (the last owner).
    #[error("{0}")]
    FailedPrecondition(FieldError),
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Unexpected(e.into())
    }
}

fn with_field(code: Code, field: &FieldError) -> Status {
    Status::with_error_details(
        code,
        field.to_string(),
        ErrorDetails::with_bad_request_violation(field.field, field.reason.clone()),
    )
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(field) => status::invalid(&field),
            Error::NotFound(what) => Status::not_found(format!("{what} not found")),
            Error::AlreadyExists(field) => with_field(Code::AlreadyExists, &field),
            Error::FailedPrecondition(field) => with_field(Code::FailedPrecondition, &field),
            Error::PermissionDenied(why) => Status::permission_denied(why),
            Error::Unauthenticated(why) => Status::unauthenticated(why),
            Error::Unexpected(e) => status::unexpected(&e),
        }
    }
}
