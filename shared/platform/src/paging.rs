//! Keyset pagination shared by every list RPC: page sizes and opaque page tokens.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::FieldError;

/// Largest page a list RPC returns.
pub const MAX_PAGE_SIZE: i32 = 100;
/// Page size when the caller leaves it 0.
pub const DEFAULT_PAGE_SIZE: i32 = 50;

/// The page size to use: 0 means the default; outside 1..=100 is an error.
pub fn page_size(requested: i32) -> Result<i64, FieldError> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE as i64),
        1..=MAX_PAGE_SIZE => Ok(requested as i64),
        _ => Err(FieldError::new(
            "page_size",
            format!("must be between 1 and {MAX_PAGE_SIZE} (or 0 for {DEFAULT_PAGE_SIZE})"),
        )),
    }
}

/// The keyset position in `token`, or `None` for the first page.
pub fn decode_token<K: DeserializeOwned>(token: &str) -> Result<Option<K>, FieldError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || FieldError::new("page_token", "not a token returned by this RPC");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|_| invalid())
}

/// An opaque token for the page after the one ending at `key`.
pub fn encode_token<K: Serialize>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

/// Splits a fetched `page_size + 1` rows into the page and the next token.
pub fn finish<T, K: Serialize>(
    mut rows: Vec<T>,
    page_size: i64,
    key: impl Fn(&T) -> K,
) -> (Vec<T>, String) {
    if rows.len() as i64 > page_size {
        rows.truncate(page_size as usize);
        let token = rows
            .last()
            .map(|r| encode_token(&key(r)))
            .unwrap_or_default();
        (rows, token)
    } else {
        (rows, String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_defaults_and_bounds() {
        assert_eq!(page_size(0), Ok(50));
        assert_eq!(page_size(100), Ok(100));
        assert_eq!(page_size(101).unwrap_err().field, "page_size");
        assert_eq!(page_size(-1).unwrap_err().field, "page_size");
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_a_field_error() {
        let token = encode_token(&("2026-01-01T00:00:00Z", 7));
        let back: Option<(String, i32)> = decode_token(&token).unwrap();
        assert_eq!(back, Some(("2026-01-01T00:00:00Z".to_owned(), 7)));
        assert_eq!(decode_token::<i32>("").unwrap(), None);
        assert_eq!(decode_token::<i32>("!!").unwrap_err().field, "page_token");
    }

    #[test]
    fn finish_cuts_the_extra_row_into_a_token() {
        let (page, token) = finish(vec![1, 2, 3], 2, |r| *r);
        assert_eq!(page, vec![1, 2]);
        assert_eq!(decode_token::<i32>(&token).unwrap(), Some(2));
        let (page, token) = finish(vec![1, 2], 2, |r| *r);
        assert_eq!(page.len(), 2);
        assert!(token.is_empty());
    }
}
