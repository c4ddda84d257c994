//! One error type for every handler, rendered as RFC 9457 `application/problem+json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use souk_contract::ErrorCode;

pub type ApiResult<T> = Result<T, ApiError>;

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    /// The offending field: a JSON path for body fields (`email`, `shipping_address.country`,
    /// `items[0].quantity`), `body` when the body as a whole has the wrong type, or the query
    /// parameter's name.
    #[schema(examples("email"))]
    pub field: String,
    #[schema(examples("must be a valid e-mail address"))]
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A problem document. `extra` carries members such as `order` on a declined checkout.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub retry_after_secs: Option<u64>,
    pub extra: Option<Box<(&'static str, serde_json::Value)>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after_secs: None,
            extra: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::MalformedRequest, detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, detail)
    }
    pub fn conflict(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            "the request body is larger than 1 MiB",
        )
    }
    pub fn too_many_requests(retry_after_secs: u64, detail: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            detail,
        );
        e.retry_after_secs = Some(retry_after_secs.max(1));
        e
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServiceUnavailable,
            detail,
        )
    }
    /// 422 with one entry per invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ValidationFailed,
            detail,
        );
        e.errors = errors;
        e
    }
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }
    /// Logs the cause with the request's span and answers a generic 500: no internals leak.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalError,
            "an unexpected error occurred",
        )
    }
    /// Asks the client to wait `secs` seconds (`Retry-After`) before trying again.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }
    pub fn with_extra(mut self, member: &'static str, value: serde_json::Value) -> Self {
        self.extra = Some(Box::new((member, value)));
        self
    }

    pub fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }

    pub fn body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({
            "type": format!("https://souk.dev/problems/{}", self.code.as_str().replace('_', "-")),
            "title": self.title(),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if !self.errors.is_empty() {
            body["errors"] = serde_json::to_value(&self.errors).unwrap_or_default();
        }
        if let Some(extra) = &self.extra {
            let (member, value) = extra.as_ref();
            body[*member] = value.clone();
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut res = (self.status, body).into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after_secs {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// How long a client should wait after the database was unreachable: a restart or failover
/// takes seconds, and the pool reconnects on the next request.
pub const DATABASE_RETRY_AFTER_SECS: u64 = 2;

impl From<sqlx::Error> for ApiError {
    /// Fallback mapping; handlers map their own unique constraints to precise codes first.
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => Self::not_found("no such resource"),
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::conflict(
                ErrorCode::Conflict,
                "a resource with these values already exists",
            ),
            _ if is_unavailable(&e) => {
                tracing::warn!(error = %e, "database unavailable");
                let mut unavailable =
                    Self::unavailable("the database is unavailable, try again shortly");
                unavailable.retry_after_secs = Some(DATABASE_RETRY_AFTER_SECS);
                unavailable
            }
            _ => Self::internal(e),
        }
    }
}

/// Whether the error says the database cannot be reached right now (and a retry may succeed),
/// rather than that the statement is wrong: a reset or refused connection, a host name that
/// does not resolve, a pool with no free connection, or the server shutting down or starting
/// (SQLSTATE class 08 connection exceptions, 57P0x operator intervention, 53300 too many
/// connections).
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || code.starts_with("57P") || code == "53300"
        }),
        _ => false,
    }
}

/// The name of the unique constraint a database error violated, if any.
pub fn unique_violation(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => db.constraint(),
        _ => None,
    }
}

/// Parses an id taken from a path; anything that is not a UUID names no resource, so 404.
pub fn parse_id(raw: &str, what: &str) -> Result<uuid::Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("no such {what}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_503_with_retry_after() {
        for kind in [
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::ConnectionRefused,
            std::io::ErrorKind::UnexpectedEof,
            // What a host name that does not resolve looks like to sqlx.
            std::io::ErrorKind::NotFound,
        ] {
            let e = ApiError::from(sqlx::Error::Io(std::io::Error::from(kind)));
            assert_eq!(e.status, 503, "{kind:?}");
            assert_eq!(e.retry_after_secs, Some(DATABASE_RETRY_AFTER_SECS));
        }
        let e = ApiError::from(sqlx::Error::PoolTimedOut);
        assert_eq!(e.status, 503);
        assert!(e.retry_after_secs.is_some());
    }

    #[test]
    fn a_wrong_statement_is_still_500() {
        let e = ApiError::from(sqlx::Error::ColumnNotFound("x".into()));
        assert_eq!(e.status, 500);
    }
}
