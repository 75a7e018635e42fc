//! The contacts service's errors: the platform's (`ism_platform::error`), with the one
//! condition only contacts raises.
pub use ism_platform::error::Error;

/// FAILED_PRECONDITION on `version`: the Contact changed since the caller read it.
pub fn stale_version(current: i64) -> Error {
    Error::precondition(
        "version",
        format!("the contact changed since it was read (now at version {current})"),
    )
}
