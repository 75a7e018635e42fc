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

/// INTERNAL without internals; the cause chain goes to the log. The one input Postgres
/// refuses that no service checks field by field, text holding U+0000, is answered
/// INVALID_ARGUMENT instead: the statement failed, so nothing changed.
pub fn unexpected(error: &anyhow::Error) -> Status {
    if holds_nul(error) {
        return invalid(&FieldError::new(
            "request",
            "text must not contain NUL (U+0000) characters",
        ));
    }
    tracing::error!(error = %format!("{error:#}"), "unexpected error");
    Status::internal("internal error; see the server log")
}

/// Whether Postgres refused text for holding U+0000: as text (SQLSTATE 22021) or as a
/// JSON escape (22P05).
fn holds_nul(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .and_then(|e| e.as_database_error())
            .and_then(|e| e.code())
            .is_some_and(|code| code == "22021" || code == "22P05")
    })
}
