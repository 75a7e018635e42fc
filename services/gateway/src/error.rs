//! The gateway's errors: the platform's (`ism_platform::error`), with the one condition
//! only the gateway raises.
pub use ism_platform::error::Error;

/// FAILED_PRECONDITION on `credentials`: the provider refused what we asked while
/// connecting a channel.
pub fn provider_refused(reason: String) -> Error {
    Error::precondition("credentials", reason)
}
