//! `/docs`: the public API's document (`/openapi.json`) as a page, Swagger UI. Its files are
//! embedded in the binary (`utoipa-swagger-ui`, vendored): nothing is loaded from elsewhere.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use utoipa_swagger_ui::{Config, SwaggerUi};

/// The page's own policy: its scripts and styles are its files; Swagger UI sets styles from
/// script and draws icons as `data:` images, and calls only this origin (the document, and
/// the API when "Try it out" is used). Not framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let config = Config::new(["/openapi.json"])
        .display_operation_id(true)
        .filter(true)
        // No badge from validator.swagger.io: the page talks to this origin only.
        .validator_url("none");
    Router::from(SwaggerUi::new("/docs").config(config))
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut res: Response) -> Response {
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    res
}
