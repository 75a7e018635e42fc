//! The two gRPC answers every service's error enum shares: a field violation and an
//! unexpected failure (logged with its cause chain, answered opaquely).
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::paging::FieldError;

/// INVALID_ARGUMENT naming the field, with a `BadRequest` detail for rich clients.
pub fn invalid(error: &FieldError) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        error.to_string(),
        ErrorDetails::with_bad_request_violation(error.field, error.reason.clone()),
    )
}

/// INTERNAL without internals; the cause chain goes to the log.
pub fn unexpected(error: &anyhow::Error) -> Status {
    tracing::error!(error = %format!("{error:#}"), "unexpected error");
    Status::internal("internal error; see the server log")
}
