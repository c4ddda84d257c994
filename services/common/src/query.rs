//! A query-string extractor whose rejections are problem+json, not axum's plain text.
//!
//! One rule for every endpoint: each parameter may be given at most once (a repeat is 400
//! `malformed_request`: which value was meant is unknowable), and no name or value may hold a
//! control character (422 naming the parameter in `errors[].field`, see `text`). Unknown
//! parameters are ignored. What still fails to deserialise is 400.

use std::collections::HashSet;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::text;

pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse(parts.uri.query().unwrap_or("")).map(Query)
    }
}

/// Checks the rule above, then deserialises.
pub fn parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let mut seen = HashSet::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if let Some(message) = text::refuse(&name, &name).or(text::refuse(&name, &value)) {
            return Err(ApiError::invalid_field(&text::printable(&name), message));
        }
        if !seen.insert(name.clone()) {
            return Err(ApiError::bad_request(format!(
                "query parameter `{name}` is given more than once"
            )));
        }
    }
    serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Page {
        limit: Option<String>,
    }

    #[test]
    fn a_repeated_parameter_is_400_naming_it() {
        let e = parse::<Page>("limit=1&limit=2").unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.code, souk_contract::ErrorCode::MalformedRequest);
        assert!(e.detail.contains("`limit`"), "{}", e.detail);
    }

    #[test]
    fn a_control_character_is_422_naming_the_parameter() {
        for raw in ["limit=1%00", "limit=a%0Ab", "limit=%C2%85", "limit%01=1"] {
            let e = parse::<Page>(raw).unwrap_err();
            assert_eq!(e.status, 422, "{raw}");
            assert!(e.errors[0].field.starts_with("limit"), "{raw}");
        }
    }

    #[test]
    fn unknown_parameters_are_ignored() {
        let p = parse::<Page>("limit=3&other=x").unwrap();
        assert_eq!(p.limit.as_deref(), Some("3"));
    }
}
