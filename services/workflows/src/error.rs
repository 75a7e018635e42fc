//! The workflows service's errors: the platform's (`ism_platform::error`).
pub use ism_platform::error::Error;
