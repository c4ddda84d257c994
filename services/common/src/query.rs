//! A query-string extractor whose rejections are problem+json, not axum's plain text.
//!
//! One rule for every endpoint: each parameter may be given at most once, and no value may hold
//! NUL (PostgreSQL cannot store it); either is 422 naming the parameter in `errors[].field`.
//! Unknown parameters are ignored. What still fails to deserialise is 400.

use std::collections::HashSet;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::text::NUL_MESSAGE;

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

pub const REPEATED_MESSAGE: &str = "must be given at most once";

/// Checks the rule above, then deserialises.
pub fn parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let mut seen = HashSet::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if name.contains('\0') || value.contains('\0') {
            return Err(ApiError::invalid_field(&printable(&name), NUL_MESSAGE));
        }
        if !seen.insert(name.clone()) {
            return Err(ApiError::invalid_field(&name, REPEATED_MESSAGE));
        }
    }
    serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))
}

fn printable(name: &str) -> String {
    name.replace('\0', "\\u0000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Page {
        limit: Option<String>,
    }

    #[test]
    fn a_repeated_parameter_is_422_naming_it() {
        let e = parse::<Page>("limit=1&limit=2").unwrap_err();
        assert_eq!(e.status, 422);
        assert_eq!(e.errors[0].field, "limit");
    }

    #[test]
    fn nul_is_422_naming_the_parameter() {
        let e = parse::<Page>("limit=1%00").unwrap_err();
        assert_eq!(e.status, 422);
        assert_eq!(e.errors[0].field, "limit");
    }

    #[test]
    fn unknown_parameters_are_ignored() {
        let p = parse::<Page>("limit=3&other=x").unwrap();
        assert_eq!(p.limit.as_deref(), Some("3"));
    }
}
