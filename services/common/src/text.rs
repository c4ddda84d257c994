//! Text PostgreSQL cannot store. A `text` or `jsonb` value may not contain U+0000, so a client's
//! NUL must be refused (422, naming the field) before it reaches a query, or the database's
//! refusal would surface as a 500. The JSON and query-string extractors apply this to every
//! field of every endpoint.

use serde_json::Value;

use crate::error::{ApiError, FieldError};

pub const NUL_MESSAGE: &str = "must not contain the NUL character (U+0000)";

/// Whether a JSON document contains an escaped NUL (`\u0000`) in any string. In valid JSON a
/// NUL can only appear escaped; `\\u0000` (an escaped backslash, then text) is not one.
pub fn json_has_nul(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) == Some(&b'u') && bytes.get(i + 2..i + 6) == Some(b"0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// The 422 for the first string (value or member name) holding a NUL, named like the JSON
/// extractor names fields (`shipping_address.line1`, `items[0].name`).
pub fn nul_in_json(value: &Value) -> Option<ApiError> {
    let field = nul_path(value, "")?;
    let field = if field.is_empty() {
        "body".to_owned()
    } else {
        field
    };
    Some(ApiError::validation(vec![FieldError::new(
        field,
        NUL_MESSAGE,
    )]))
}

fn nul_path(value: &Value, at: &str) -> Option<String> {
    match value {
        Value::String(s) if s.contains('\0') => Some(at.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_path(v, &format!("{at}[{i}]"))),
        Value::Object(members) => members.iter().find_map(|(k, v)| {
            let path = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            if k.contains('\0') {
                Some(path.replace('\0', "\\u0000"))
            } else {
                nul_path(v, &path)
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_escaped_nul_but_not_an_escaped_backslash() {
        assert!(json_has_nul(br#"{"name":"a\u0000b"}"#));
        assert!(!json_has_nul(br#"{"name":"a\\u0000b"}"#));
        assert!(json_has_nul(br#"{"name":"a\\\u0000b"}"#));
        assert!(!json_has_nul(br#"{"name":"a\u0001"}"#));
    }

    #[test]
    fn names_the_nested_field() {
        let doc: Value =
            serde_json::from_str(r#"{"a": 1, "address": {"lines": ["x", "y\u0000"]}}"#).unwrap();
        let e = nul_in_json(&doc).unwrap();
        assert_eq!(e.status, 422);
        assert_eq!(e.errors[0].field, "address.lines[1]");
        let top: Value = serde_json::from_str(r#""\u0000""#).unwrap();
        assert_eq!(nul_in_json(&top).unwrap().errors[0].field, "body");
    }
}
