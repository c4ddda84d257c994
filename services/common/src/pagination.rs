//! `?limit=` and `?cursor=` as API.md defines them. Cursors are opaque to clients: base64url of
//! a small JSON document that only the issuing service reads.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

/// Query parameters as strings, so a malformed value is our 422, not a framework rejection.
#[derive(Debug, Default, serde::Deserialize)]
pub struct PageQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit.as_deref() {
            None | Some("") => Ok(DEFAULT_LIMIT),
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(ApiError::invalid_field(
                    "limit",
                    format!("must be an integer from 1 to {MAX_LIMIT}"),
                )),
            },
        }
    }

    pub fn cursor<T: DeserializeOwned>(&self) -> Result<Option<T>, ApiError> {
        match self.cursor.as_deref() {
            None | Some("") => Ok(None),
            Some(raw) => decode_cursor(raw).map(Some),
        }
    }
}

pub fn encode_cursor<T: Serialize>(value: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

pub fn decode_cursor<T: DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    let invalid = || ApiError::invalid_field("cursor", "is not a cursor this endpoint issued");
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
    serde_json::from_slice(&bytes).map_err(|_| invalid())
}

/// `{"items": [...], "next_cursor": ...}`.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row only says another page exists.
    pub fn from_rows<C: Serialize>(
        mut rows: Vec<T>,
        limit: i64,
        cursor_of: impl Fn(&T) -> C,
    ) -> Self {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| encode_cursor(&cursor_of(r)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cursors() {
        let q = PageQuery {
            limit: Some("0".into()),
            cursor: None,
        };
        assert_eq!(q.limit().unwrap_err().status, 422);
        let q = PageQuery {
            limit: Some("abc".into()),
            cursor: Some("!!".into()),
        };
        assert!(q.limit().is_err());
        assert_eq!(q.cursor::<i64>().unwrap_err().status, 422);
        let c = encode_cursor(&(5, "x"));
        assert_eq!(
            decode_cursor::<(i64, String)>(&c).unwrap(),
            (5, "x".to_owned())
        );
        let page = Page::from_rows(vec![1, 2, 3], 2, |r| *r);
        assert_eq!(page.items, vec![1, 2]);
        assert_eq!(
            decode_cursor::<i32>(page.next_cursor.as_deref().unwrap()).unwrap(),
            2
        );
    }
}
