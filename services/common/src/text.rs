//! Control characters in text. A `text` or `jsonb` value may not contain U+0000 (PostgreSQL
//! refuses it, which would surface as a 500), and no other control character (U+0001–U+001F,
//! U+007F–U+009F) belongs in a name, an address or a code either: they break logs, e-mails and
//! pages. Multi-line fields (`description`) may hold line breaks and tabs. Each is refused with
//! 422 naming the field, before it reaches a query; the JSON and query-string extractors apply
//! this to every field of every endpoint.

use serde_json::Value;

use crate::error::{ApiError, FieldError};

pub const CONTROL_MESSAGE: &str =
    "must not contain control characters (U+0000-U+001F, U+007F-U+009F)";
pub const MULTILINE_CONTROL_MESSAGE: &str =
    "must not contain control characters other than line breaks and tabs";

/// Fields whose text may span lines: a line break or a tab is allowed there.
const MULTILINE_FIELDS: &[&str] = &["description"];

/// Whether a JSON document may hold a control character in a string: an escape that can
/// encode one (`\b \f \n \r \t`, `\u0000`-`\u001f`, `\u007f`-`\u009f`), or a raw DEL or C1
/// character (which JSON allows unescaped). Raw U+0000-U+001F are invalid JSON and the parser
/// refuses them. A false positive only costs a second parse; a false negative is impossible.
pub fn json_may_have_control(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                match bytes.get(i + 1) {
                    Some(b'b' | b'f' | b'n' | b'r' | b't') => return true,
                    Some(b'u') => {
                        if let Some(hex) = bytes.get(i + 2..i + 6)
                            && is_control_escape(hex)
                        {
                            return true;
                        }
                    }
                    _ => {}
                }
                i += 2;
            }
            0x7f => return true,
            0xc2 if matches!(bytes.get(i + 1), Some(0x80..=0x9f)) => return true,
            _ => i += 1,
        }
    }
    false
}

fn is_control_escape(hex: &[u8]) -> bool {
    let Ok(hex) = std::str::from_utf8(hex) else {
        return false;
    };
    matches!(u32::from_str_radix(hex, 16), Ok(0..=0x1f | 0x7f..=0x9f))
}

/// The message for a field's text, if the field may not hold it.
pub fn refuse(field: &str, text: &str) -> Option<&'static str> {
    let multiline = MULTILINE_FIELDS.contains(&last_segment(field));
    let bad = |c: char| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t'));
    if !text.chars().any(bad) {
        None
    } else if multiline {
        Some(MULTILINE_CONTROL_MESSAGE)
    } else {
        Some(CONTROL_MESSAGE)
    }
}

fn last_segment(field: &str) -> &str {
    field.rsplit('.').next().unwrap_or(field)
}

/// The 422 for the first string (value or member name) holding a refused character, named
/// like the JSON extractor names fields (`shipping_address.line1`, `items[0].name`).
pub fn control_in_json(value: &Value) -> Option<ApiError> {
    let (field, message) = find(value, "")?;
    let field = if field.is_empty() {
        "body".to_owned()
    } else {
        field
    };
    Some(ApiError::validation(vec![FieldError::new(field, message)]))
}

fn find(value: &Value, at: &str) -> Option<(String, &'static str)> {
    match value {
        Value::String(s) => refuse(at, s).map(|m| (at.to_owned(), m)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find(v, &format!("{at}[{i}]"))),
        Value::Object(members) => members.iter().find_map(|(k, v)| {
            if k.chars().any(char::is_control) {
                let name = printable(k);
                let path = if at.is_empty() {
                    name
                } else {
                    format!("{at}.{name}")
                };
                return Some((path, CONTROL_MESSAGE));
            }
            let path = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            find(v, &path)
        }),
        _ => None,
    }
}

/// A name that can be shown in an error: its control characters escaped (`\u0000`).
pub fn printable(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\u{:04x}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_scan_finds_every_encoding_of_a_control_character() {
        assert!(json_may_have_control(br#"{"name":"a\u0000b"}"#));
        assert!(json_may_have_control(br#"{"name":"a\u001F"}"#));
        assert!(json_may_have_control(br#"{"name":"a\n"}"#));
        assert!(json_may_have_control(br#"{"name":"a\u0085"}"#));
        assert!(json_may_have_control("{\"name\":\"a\u{7f}\"}".as_bytes()));
        assert!(json_may_have_control("{\"name\":\"a\u{85}\"}".as_bytes()));
        // An escaped backslash followed by text, and ordinary non-ASCII, are not.
        assert!(!json_may_have_control(br#"{"name":"a\\u0000b"}"#));
        assert!(!json_may_have_control(br#"{"name":"a\\n"}"#));
        assert!(!json_may_have_control(
            "{\"name\":\"Zoë – ½ \\u00e9\"}".as_bytes()
        ));
        assert!(!json_may_have_control(br#"{"name":"a\u0020\"x"}"#));
    }

    #[test]
    fn names_the_nested_field() {
        let doc: Value =
            serde_json::from_str(r#"{"a": 1, "address": {"lines": ["x", "y\u0000"]}}"#).unwrap();
        let e = control_in_json(&doc).unwrap();
        assert_eq!(e.status, 422);
        assert_eq!(e.errors[0].field, "address.lines[1]");
        let top: Value = serde_json::from_str(r#""\u0000""#).unwrap();
        assert_eq!(control_in_json(&top).unwrap().errors[0].field, "body");
        let key: Value = serde_json::from_str(r#"{"a\u0001": 1}"#).unwrap();
        assert_eq!(control_in_json(&key).unwrap().errors[0].field, "a\\u0001");
    }

    #[test]
    fn descriptions_keep_line_breaks_and_tabs_and_nothing_else() {
        let ok: Value = serde_json::from_str(r#"{"description": "one\r\ntwo\tthree"}"#).unwrap();
        assert!(control_in_json(&ok).is_none());
        let bell: Value = serde_json::from_str(r#"{"description": "ding\u0007"}"#).unwrap();
        assert_eq!(
            control_in_json(&bell).unwrap().errors[0].message,
            MULTILINE_CONTROL_MESSAGE
        );
        let name: Value = serde_json::from_str(r#"{"name": "two\nlines"}"#).unwrap();
        assert_eq!(control_in_json(&name).unwrap().errors[0].field, "name");
        let c1: Value = serde_json::from_str("{\"city\": \"a\u{9b}b\"}").unwrap();
        assert_eq!(control_in_json(&c1).unwrap().errors[0].field, "city");
    }
}
