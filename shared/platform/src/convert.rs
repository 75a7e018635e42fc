//! Conversions between request fields and domain values that every service needs.
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{FieldError, Violations};

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

/// The first `chars` characters of `value` when it holds more; `None` when it fits.
pub fn cut(value: &str, chars: usize) -> Option<&str> {
    value
        .char_indices()
        .nth(chars)
        .map(|(end, _)| &value[..end])
}

/// `value` as an error message or a log line may quote it: its first 32 characters,
/// quoted and escaped, with `…` when there were more. A refusal quoting a whole bad
/// value would be as large as the value.
pub fn quoted(value: &str) -> String {
    match cut(value, 32) {
        Some(head) => format!("{head:?}…"),
        None => format!("{value:?}"),
    }
}

/// `reason` cut to its first 200 characters: a parser's error (serde's "invalid type:
/// string ...") may carry the whole bad value.
pub fn clipped(reason: String) -> String {
    match cut(&reason, 200) {
        Some(head) => format!("{head}…"),
        None => reason,
    }
}

/// `value` unless it holds U+0000, which Postgres text and JSON cannot store: refused
/// with an error naming `field`, before it can fail a statement (and whatever shares it).
pub fn storable<'a>(field: &'static str, value: &'a str) -> Result<&'a str, FieldError> {
    if value.contains('\0') {
        return Err(FieldError::new(field, "must not contain NUL characters"));
    }
    Ok(value)
}

/// At most `max` `values` as UUIDs; each one that is not a UUID is a violation naming it
/// by index (`field[2]`), and so is a list longer than `max`.
pub fn uuids(field: &str, values: &[String], max: usize, violations: &mut Violations) -> Vec<Uuid> {
    if values.len() > max {
        violations.push(FieldError::new(field.to_owned(), format!("at most {max}")));
    }
    let mut ids = Vec::new();
    for (i, value) in values.iter().enumerate() {
        match Uuid::parse_str(value) {
            Ok(id) => ids.push(id),
            Err(_) => violations.push(FieldError::new(format!("{field}[{i}]"), "must be a UUID")),
        }
    }
    ids
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
