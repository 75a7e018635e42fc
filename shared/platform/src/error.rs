//! The one error type of every service. Each kind of failure is answered with the same
//! gRPC code and the same detail type whichever service raises it, and event handlers
//! map the same errors to a retry or a dead letter in one place.
//!
//! - bad input: INVALID_ARGUMENT with a `google.rpc.BadRequest` naming every violation;
//! - missing, or another Workspace's: NOT_FOUND;
//! - a value that must be unique and is taken: ALREADY_EXISTS with a `BadRequest` naming
//!   the field. Postgres' unique violations are mapped here, once: a unique index that
//!   keeps a caller's value unique is named `<table>_<field>_key` (Postgres' own name for
//!   a UNIQUE constraint), and its violation names `<field>`; any other unique index
//!   guards against a concurrent writer, and its violation is ABORTED (retry);
//! - a state that forbids the call: FAILED_PRECONDITION with a `PreconditionFailure`;
//! - the database or a peer down or busy (pool exhaustion included): UNAVAILABLE, which
//!   clients retry;
//! - anything else: INTERNAL without internals, carrying a reference that the one log
//!   line of its cause chain carries too.
use std::borrow::Cow;
use std::fmt;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::events::HandlerError;

/// A request field that failed validation, by its path (`profile.email`,
/// `rows[3].phone`), and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: Cow<'static, str>,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same violation in the message at `parent` (`rows[3]` and `phone` give
    /// `rows[3].phone`).
    pub fn within(self, parent: &str) -> Self {
        Self {
            field: format!("{parent}.{}", self.field).into(),
            reason: self.reason,
        }
    }
}

/// Every violation found in one request, so that a caller fixes them all in one round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(Vec<FieldError>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    /// The value `checked` holds, or `None` with its violations recorded.
    pub fn check<T, E: Into<Violations>>(&mut self, checked: Result<T, E>) -> Option<T> {
        checked.map_err(|e| self.0.extend(e.into().0)).ok()
    }

    pub fn push(&mut self, violation: FieldError) {
        self.0.push(violation);
    }

    /// Records the violations of the message at `parent` under its path.
    pub fn extend_within(&mut self, parent: &str, violations: Violations) {
        self.0
            .extend(violations.0.into_iter().map(|v| v.within(parent)));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a violation names `field`.
    pub fn names(&self, field: &str) -> bool {
        self.0.iter().any(|v| v.field == field)
    }

    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.0.iter()
    }

    /// `Ok(())` when nothing was recorded, else every violation.
    pub fn into_result(self) -> Result<(), Violations> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }

    /// `Ok(())` when nothing was recorded, else INVALID_ARGUMENT with every violation.
    pub fn finish(self) -> Result<(), Error> {
        Ok(self.into_result()?)
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, violation) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{violation}")?;
        }
        Ok(())
    }
}

/// A tuple of checks of one request's fields, each a `Result` whose error is a
/// [`FieldError`] or [`Violations`]: [`Checks::all`] gives every value, or every
/// violation among them at once.
///
/// ```
/// use ism_platform::error::{Checks, FieldError};
/// let checked = (
///     Err::<u8, _>(FieldError::new("name", "is required")),
///     Ok::<_, FieldError>(3),
///     Err::<u8, _>(FieldError::new("email", "is not an email address")),
/// )
///     .all();
/// assert_eq!(checked.unwrap_err().to_string(), "name: is required; email: is not an email address");
/// ```
pub trait Checks {
    type Values;
    fn all(self) -> Result<Self::Values, Violations>;
}

macro_rules! checks {
    ($($value:ident $error:ident),+) => {
        impl<$($value, $error: Into<Violations>),+> Checks for ($(Result<$value, $error>,)+) {
            type Values = ($($value,)+);

            #[allow(non_snake_case)]
            fn all(self) -> Result<Self::Values, Violations> {
                let ($($value,)+) = self;
                let mut violations = Violations::new();
                $(let $value = violations.check($value);)+
                match ($($value,)+) {
                    ($(Some($value),)+) => Ok(($($value,)+)),
                    _ => Err(violations),
                }
            }
        }
    };
}

checks!(A EA, B EB);
checks!(A EA, B EB, C EC);
checks!(A EA, B EB, C EC, D ED);
checks!(A EA, B EB, C EC, D ED, E EE);
checks!(A EA, B EB, C EC, D ED, E EE, F EF);
checks!(A EA, B EB, C EC, D ED, E EE, F EF, G EG);
checks!(A EA, B EB, C EC, D ED, E EE, F EF, G EG, H EH);

impl From<FieldError> for Violations {
    fn from(violation: FieldError) -> Self {
        Self(vec![violation])
    }
}

/// What went wrong in a call or an event handler; see the module for each gRPC answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(Violations),
    /// Names what was not found (`contact`, `channel`).
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    AlreadyExists(FieldError),
    /// Names the field or resource whose state forbids the call.
    #[error("{0}")]
    Precondition(FieldError),
    /// A race lost to a concurrent change; retrying succeeds.
    #[error("{0}")]
    Aborted(Cow<'static, str>),
    /// The database or a service this one depends on is down or busy; retrying later
    /// succeeds.
    #[error("{0}")]
    Unavailable(Cow<'static, str>),
    #[error("{0}")]
    PermissionDenied(Cow<'static, str>),
    #[error("{0}")]
    Unauthenticated(Cow<'static, str>),
    #[error(transparent)]
    Unexpected(anyhow::Error),
}

impl Error {
    /// INVALID_ARGUMENT naming one field.
    pub fn invalid(field: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        Error::Invalid(FieldError::new(field, reason).into())
    }

    /// FAILED_PRECONDITION on `subject`.
    pub fn precondition(subject: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        Error::Precondition(FieldError::new(subject, reason))
    }

    /// What a peer service's refusal means for this service's caller, code by code:
    /// `peer` names the service and `what` the thing the call read. An outage or a
    /// timeout stays UNAVAILABLE (retry), a missing thing NOT_FOUND, a race ABORTED and a
    /// refused state FAILED_PRECONDITION; a refused service token or a request the peer
    /// finds malformed is this service's fault, never the caller's, so INTERNAL.
    pub fn from_peer(peer: &str, what: &'static str, status: &Status) -> Self {
        let message = status.message();
        match status.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Cancelled => Error::Unavailable(format!("{peer}: {message}").into()),
            Code::NotFound => Error::NotFound(what),
            Code::Aborted => Error::Aborted(format!("{peer}: {message}").into()),
            Code::FailedPrecondition => Error::precondition(what, format!("{peer}: {message}")),
            code => Error::Unexpected(anyhow::anyhow!(
                "{peer} answered {code:?} reading {what}: {message}"
            )),
        }
    }

    /// The error a failed statement stands for: see the module. `None` for a failure
    /// that says nothing about the caller's input or the database's availability.
    fn of_database(e: &sqlx::Error) -> Option<Self> {
        match e {
            sqlx::Error::PoolTimedOut => Some(Error::Unavailable(
                "the database is busy; retry shortly".into(),
            )),
            sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => Some(
                Error::Unavailable("the database is unreachable; retry shortly".into()),
            ),
            sqlx::Error::Database(db) => {
                let code = db.code()?;
                match code.as_ref() {
                    "23505" => Some(unique_violation(db.constraint(), db.table())),
                    // Text Postgres cannot hold: the statement failed, nothing changed.
                    "22021" | "22P05" => Some(Error::invalid(
                        "request",
                        "text must not contain NUL (U+0000) characters",
                    )),
                    "40001" | "40P01" => Some(Error::Aborted(
                        "a concurrent change got in the way; retry".into(),
                    )),
                    // Connection exceptions, shutdowns, too many connections.
                    c if c.starts_with("08") || c.starts_with("57P") || c == "53300" => Some(
                        Error::Unavailable("the database is unavailable; retry shortly".into()),
                    ),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// The answer to a unique violation of `index` on `table`: see the module.
fn unique_violation(index: Option<&str>, table: Option<&str>) -> Error {
    let field = index.zip(table).and_then(|(index, table)| {
        index
            .strip_prefix(table)?
            .strip_prefix('_')?
            .strip_suffix("_key")
            .map(str::to_owned)
    });
    match field {
        Some(field) => {
            Error::AlreadyExists(FieldError::new(field, "is already taken in this Workspace"))
        }
        None => Error::Aborted("a concurrent change got in the way; retry".into()),
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::of_database(&e).unwrap_or_else(|| Error::Unexpected(e.into()))
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        let known = e
            .chain()
            .find_map(|cause| cause.downcast_ref::<sqlx::Error>())
            .and_then(Error::of_database);
        known.unwrap_or(Error::Unexpected(e))
    }
}

impl From<FieldError> for Error {
    fn from(violation: FieldError) -> Self {
        Error::Invalid(violation.into())
    }
}

impl From<Violations> for Error {
    fn from(violations: Violations) -> Self {
        Error::Invalid(violations)
    }
}

/// A handler's `?` on a bad field answers INVALID_ARGUMENT, as through [`Error`].
impl From<FieldError> for Status {
    fn from(violation: FieldError) -> Self {
        Error::from(violation).into()
    }
}

impl From<Violations> for Status {
    fn from(violations: Violations) -> Self {
        Error::from(violations).into()
    }
}

fn bad_request(violations: &Violations) -> ErrorDetails {
    let mut details = ErrorDetails::new();
    for v in violations.iter() {
        details.add_bad_request_violation(v.field.clone(), v.reason.clone());
    }
    details
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::Invalid(violations) => {
                Status::with_error_details(Code::InvalidArgument, message, bad_request(&violations))
            }
            Error::NotFound(_) => Status::not_found(message),
            Error::AlreadyExists(field) => {
                Status::with_error_details(Code::AlreadyExists, message, bad_request(&field.into()))
            }
            Error::Precondition(field) => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_precondition_failure_violation(
                    "STATE",
                    field.field,
                    field.reason,
                ),
            ),
            Error::Aborted(_) => Status::aborted(message),
            Error::Unavailable(_) => Status::unavailable(message),
            Error::PermissionDenied(_) => Status::permission_denied(message),
            Error::Unauthenticated(_) => Status::unauthenticated(message),
            Error::Unexpected(e) => {
                let reference = uuid::Uuid::now_v7().to_string();
                tracing::error!(%reference, error = %format!("{e:#}"), "unexpected error");
                Status::with_error_details(
                    Code::Internal,
                    format!("internal error; reference {reference} in the server log"),
                    ErrorDetails::with_request_info(reference, ""),
                )
            }
        }
    }
}

impl From<Error> for HandlerError {
    fn from(e: Error) -> Self {
        match e {
            Error::Unexpected(e) => HandlerError::Transient(e),
            Error::Unavailable(_) | Error::Aborted(_) => {
                HandlerError::Transient(anyhow::anyhow!("{e}"))
            }
            other => HandlerError::Permanent(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt;

    use super::*;

    #[test]
    fn every_violation_of_a_request_is_answered_at_once() {
        let mut violations = Violations::new();
        assert_eq!(violations.check(Ok::<_, FieldError>(3)), Some(3));
        violations.push(FieldError::new("name", "is required"));
        let mut row = Violations::new();
        row.push(FieldError::new("phone", "not a phone number"));
        violations.extend_within("rows[3]", row);
        let status = Status::from(violations.finish().unwrap_err());

        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "name: is required; rows[3].phone: not a phone number"
        );
        let fields: Vec<String> = status
            .get_details_bad_request()
            .unwrap()
            .field_violations
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["name", "rows[3].phone"]);
    }

    #[test]
    fn a_pool_timeout_is_unavailable_for_callers_and_a_retry_for_handlers() {
        let status = Status::from(Error::from(sqlx::Error::PoolTimedOut));
        assert_eq!(status.code(), Code::Unavailable);
        let wrapped = anyhow::Error::from(sqlx::Error::PoolTimedOut).context("listing tags");
        assert!(matches!(Error::from(wrapped), Error::Unavailable(_)));
        assert!(matches!(
            HandlerError::from(Error::from(sqlx::Error::PoolTimedOut)),
            HandlerError::Transient(_)
        ));
    }

    #[test]
    fn a_unique_index_named_for_its_field_names_the_field_and_others_are_races() {
        let taken = unique_violation(Some("tags_name_key"), Some("tags"));
        assert!(matches!(&taken, Error::AlreadyExists(f) if f.field == "name"));
        let status = Status::from(taken);
        assert_eq!(status.code(), Code::AlreadyExists);
        let details = status.get_details_bad_request().unwrap();
        assert_eq!(details.field_violations[0].field, "name");
        let race = unique_violation(Some("conversations_one_active"), Some("conversations"));
        assert_eq!(Status::from(race).code(), Code::Aborted);
    }

    #[test]
    fn an_unexpected_error_is_opaque_and_carries_its_reference() {
        let status = Status::from(Error::Unexpected(anyhow::anyhow!("secret detail")));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret"));
        let reference = status.get_details_request_info().unwrap().request_id;
        assert!(status.message().contains(&reference));
    }

    #[test]
    fn a_peers_answer_keeps_its_meaning() {
        let from = |code| Error::from_peer("contacts", "contact", &Status::new(code, "no"));
        assert!(matches!(from(Code::Unavailable), Error::Unavailable(m) if m == "contacts: no"));
        assert!(matches!(
            from(Code::DeadlineExceeded),
            Error::Unavailable(_)
        ));
        assert!(matches!(from(Code::NotFound), Error::NotFound("contact")));
        assert!(matches!(from(Code::Aborted), Error::Aborted(_)));
        assert!(matches!(
            from(Code::FailedPrecondition),
            Error::Precondition(_)
        ));
        assert!(matches!(from(Code::PermissionDenied), Error::Unexpected(_)));
        assert!(matches!(from(Code::InvalidArgument), Error::Unexpected(_)));
    }

    #[test]
    fn a_precondition_carries_a_precondition_failure() {
        let status = Status::from(Error::precondition("status", "the conversation is closed"));
        assert_eq!(status.code(), Code::FailedPrecondition);
        let failure = status.get_details_precondition_failure().unwrap();
        assert_eq!(failure.violations[0].subject, "status");
    }
}
