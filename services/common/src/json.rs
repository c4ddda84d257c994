//! A JSON extractor whose rejections are problem+json: 400 for malformed JSON, 422 (naming the
//! field) for a value of the wrong type or a missing field, 413 for a body over the limit.
//! Unknown fields are ignored, as API.md says. Every request body is a JSON object.

use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};
use crate::text;
use souk_contract::ErrorCode;

pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "send the body as Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large()
            } else {
                ApiError::bad_request("the request body could not be read")
            }
        })?;
        parse(&bytes).map(Json)
    }
}

/// Deserialises a JSON body with the same error mapping as the extractor. A string holding a
/// control character is 422 naming its field (see `text`); the scan for one is a pass over the
/// bytes, and only a body that may have one is parsed a second time to find where.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would read a struct from an array of its fields in order (and name the Rust type
    // when rejecting a scalar); an API body is an object, its fields found by name.
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
        return Err(ApiError::validation(vec![FieldError::new(
            "body",
            "must be a JSON object",
        )]));
    }
    if text::json_may_have_control(bytes)
        && let Ok(doc) = serde_json::from_slice::<serde_json::Value>(bytes)
        && let Some(e) = text::control_in_json(&doc)
    {
        return Err(e);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = strip_position(&inner);
                let field = match message.strip_prefix("missing field `") {
                    Some(rest) => {
                        let name = rest.trim_end_matches('`');
                        if field == "." {
                            name.to_owned()
                        } else {
                            format!("{field}.{name}")
                        }
                    }
                    None if field == "." => "body".to_owned(),
                    None => field,
                };
                ApiError::validation(vec![FieldError::new(field, message)])
            }
            _ => ApiError::bad_request(format!("malformed JSON: {inner}")),
        }
    })
}

/// serde_json appends " at line 1 column 17", which says nothing useful to an API client.
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

fn is_json(req: &Request) -> bool {
    let Some(ct) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(
        dead_code,
        reason = "read by serde only: the tests check what is refused"
    )]
    struct Body {
        quantity: i64,
        name: String,
    }

    #[test]
    fn malformed_json_is_400() {
        let e = parse::<Body>(b"{\"quantity\": ").unwrap_err();
        assert_eq!(e.status, 400);
    }

    #[test]
    fn wrong_type_is_422_naming_the_field() {
        let e = parse::<Body>(br#"{"quantity": "two", "name": "x"}"#).unwrap_err();
        assert_eq!(e.status, 422);
        assert_eq!(e.errors[0].field, "quantity");
    }

    #[test]
    fn nul_in_a_string_is_422_naming_the_field() {
        let e = parse::<Body>(br#"{"quantity": 2, "name": "a\u0000"}"#).unwrap_err();
        assert_eq!(e.status, 422);
        assert_eq!(e.errors[0].field, "name");
    }

    #[test]
    fn missing_field_is_422_and_unknown_fields_are_ignored() {
        let e = parse::<Body>(br#"{"quantity": 2}"#).unwrap_err();
        assert_eq!(e.status, 422);
        assert_eq!(e.errors[0].field, "name");
        let ok = parse::<Body>(br#"{"quantity": 2, "name": "x", "extra": true}"#).unwrap();
        assert_eq!(ok.quantity, 2);
    }

    #[test]
    fn a_body_that_is_not_an_object_is_422() {
        // serde reads a struct from an array of its fields in order: `["a@b.c","pw"]` logged in.
        for body in [
            &br#"[2, "x"]"#[..],
            b" \n[2, \"x\"]",
            b"2",
            b"\"x\"",
            b"null",
        ] {
            let e = parse::<Body>(body).unwrap_err();
            assert_eq!(e.status, 422, "{}", String::from_utf8_lossy(body));
            assert_eq!(e.errors[0].field, "body");
            assert_eq!(e.errors[0].message, "must be a JSON object");
        }
        assert_eq!(parse::<Body>(b"[2, ").unwrap_err().status, 400);
        assert_eq!(
            parse::<Body>(b" {\"quantity\": 2, \"name\": \"x\"}")
                .unwrap()
                .quantity,
            2
        );
    }
}
