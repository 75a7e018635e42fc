//! Conversions between request fields and domain values that every service needs.
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::FieldError;

/// A protobuf timestamp of `at`.
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// The time of a protobuf timestamp, if it is a valid one.
pub fn from_timestamp(ts: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}

/// `value` unless it holds U+0000, which Postgres text and JSON cannot store: refused
/// with an error naming `field`, before it can fail a statement (and whatever shares it).
pub fn storable<'a>(field: &'static str, value: &'a str) -> Result<&'a str, FieldError> {
    if value.contains('\0') {
        return Err(FieldError::new(field, "must not contain NUL characters"));
    }
    Ok(value)
}

/// `value` as a UUID, or an error naming `field`.
pub fn uuid(field: &'static str, value: &str) -> Result<Uuid, FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, "is required"));
    }
    value
        .parse()
        .map_err(|_| FieldError::new(field, "must be a UUID"))
}
