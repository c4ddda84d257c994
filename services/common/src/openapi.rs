//! The public API's OpenAPI document is generated from the code. Each service describes its
//! handlers (`#[utoipa::path]`) and their bodies (`#[derive(ToSchema)]`) in its own
//! `openapi()`; the runner merges them (`souk::openapi`). This module holds what they share:
//! the document's frame (`base`: info, tags, the bearer scheme), the problem documents and the
//! error responses every service answers with (as components that operations reference, e.g.
//! `(status = 422, response = ValidationFailed)`), `part`, which tags a service's operations, and
//! `finish`, which adds what the shared extractors and the gateway itself answer on every
//! operation.

use axum::http::StatusCode;
use serde_json::{Value, json};
use souk_contract::ErrorCode;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Components, Header, OpenApi, RefOr, Response, Schema};

use crate::error::{ApiError, PROBLEM_JSON};

/// The API's conventions, shown first in the document and on its page.
const INTRO: &str = include_str!("openapi_intro.md");

/// The tags, one per service, in the order the page lists them.
pub const TAGS: [(&str, &str); 6] = [
    (
        "user",
        "Accounts, sign-in, tokens, profiles and admin user management (user service).",
    ),
    (
        "product",
        "Catalog: products and categories (product service).",
    ),
    (
        "cart",
        "The signed-in user's cart, priced live (cart service).",
    ),
    (
        "order",
        "Checkout, order history, cancellation, promotions and admin order management (order service).",
    ),
    ("payment", "Stripe webhooks (payment service)."),
    (
        "gateway",
        "Served by the gateway itself: keys, this document, health and metrics.",
    ),
];

fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a well-formed OpenAPI fragment")
}

/// The document's frame and the components every part shares; `merge` the services' parts
/// into it, then `finish` it.
pub fn base() -> OpenApi {
    let mut doc: OpenApi = from_json(json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Souk public API",
            "version": "1.0.0",
            "summary": "Shop, cart, checkout and orders.",
            "description": INTRO.trim_end(),
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" }
        },
        "servers": [{ "url": "/", "description": "The gateway that served this document." }],
        "paths": {},
        "tags": TAGS.iter().map(|(name, description)| json!({"name": name, "description": description})).collect::<Vec<_>>(),
    }));
    doc.components = Some(components());
    doc
}

fn components() -> Components {
    let mut components = Components::new();
    components.security_schemes.insert(
        "bearer".to_owned(),
        from_json(json!({
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from `register`, `login` or `refresh`: a JWT signed with EdDSA (Ed25519), `iss: souk`, `aud: souk-api`, `sub`: the user id, `role`, `exp` (default lifetime 15 minutes). Verification keys: `/.well-known/jwks.json`."
        })),
    );
    for (name, header) in headers() {
        components.headers.insert(name.to_owned(), RefOr::T(header));
    }
    components
        .schemas
        .insert("Problem".to_owned(), RefOr::T(problem_schema()));
    components.schemas.insert(
        "ValidationProblem".to_owned(),
        <ValidationProblem as utoipa::PartialSchema>::schema(),
    );
    let (name, schema) = field_error_schema();
    components.schemas.insert(name, schema);
    for (name, response) in shared_responses() {
        components
            .responses
            .insert(name.to_owned(), RefOr::T(response));
    }
    components
}

fn field_error_schema() -> (String, RefOr<Schema>) {
    use utoipa::ToSchema;
    (
        crate::FieldError::name().into_owned(),
        <crate::FieldError as utoipa::PartialSchema>::schema(),
    )
}

fn headers() -> [(&'static str, Header); 3] {
    [
        (
            "XRequestId",
            from_json(json!({
                "description": "The request's id: the client's `x-request-id` echoed, else a new UUID v7. Present on every response; quote it when reporting a problem.",
                "schema": { "type": "string" }
            })),
        ),
        (
            "RetryAfter",
            from_json(json!({
                "description": "Seconds to wait before retrying (at least 1).",
                "schema": { "type": "integer", "minimum": 1 }
            })),
        ),
        (
            "ETag",
            from_json(json!({
                "description": "A strong validator of this representation; send it back as `If-None-Match` to get 304 while it is unchanged.",
                "schema": { "type": "string" }
            })),
        ),
    ]
}

/// `Problem`: the body of every error (`ApiError::body`); `code` lists every `ErrorCode`.
fn problem_schema() -> Schema {
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
    from_json(json!({
        "type": "object",
        "description": "RFC 9457 problem details (`application/problem+json`). `code` is the stable, machine-readable reason; `type` is derived from it. Some problems carry extra members (`errors`, `order`, `product_ids`); clients must ignore members they do not know. Never contains stack traces or SQL.",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {
                "type": "string",
                "format": "uri",
                "description": "`https://souk.dev/problems/<code with hyphens>`.",
                "examples": ["https://souk.dev/problems/out-of-stock"]
            },
            "title": { "type": "string", "description": "The HTTP reason phrase.", "examples": ["Conflict"] },
            "status": { "type": "integer", "minimum": 400, "maximum": 599, "examples": [409] },
            "detail": { "type": "string", "description": "Human-readable explanation of this occurrence." },
            "code": {
                "type": "string",
                "description": "The reason, for a program to act on (souk-contract's `ErrorCode`). Codes marked internal there answer calls between services and reach a client only when a service passes on what another said.",
                "enum": codes,
                "examples": ["insufficient_stock"]
            }
        },
        "additionalProperties": true
    }))
}

/// The `Problem` schema as a type, for a response of its own description or example:
/// `(status = 409, description = "...", content_type = "application/problem+json", body = Problem)`.
pub struct Problem;
impl utoipa::PartialSchema for Problem {
    fn schema() -> RefOr<Schema> {
        RefOr::T(problem_schema())
    }
}
impl utoipa::ToSchema for Problem {}

/// The `ValidationProblem` schema (a 422 with `errors`) as a type, like `Problem`.
pub struct ValidationProblem;
impl utoipa::PartialSchema for ValidationProblem {
    fn schema() -> RefOr<Schema> {
        from_json(json!({
            "description": "A 422 problem: one `errors` entry per invalid field.",
            "allOf": [
                { "$ref": "#/components/schemas/Problem" },
                {
                    "type": "object",
                    "required": ["errors"],
                    "properties": {
                        "errors": {
                            "type": "array",
                            "minItems": 1,
                            "items": { "$ref": "#/components/schemas/FieldError" }
                        }
                    }
                }
            ]
        }))
    }
}
impl utoipa::ToSchema for ValidationProblem {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            "Problem".to_owned(),
            <Problem as utoipa::PartialSchema>::schema(),
        ));
        let (name, schema) = field_error_schema();
        schemas.push((name, schema));
    }
}

/// A problem schema with members of its own: `allOf` `Problem` and an object of `properties`
/// (of which `required` are required). For problems such as `StockProblem`.
pub fn problem_with(description: &str, properties: Value, required: &[&str]) -> RefOr<Schema> {
    let mut own = json!({ "type": "object", "properties": properties });
    if !required.is_empty() {
        own["required"] = json!(required);
    }
    from_json(json!({
        "description": description,
        "allOf": [{ "$ref": "#/components/schemas/Problem" }, own]
    }))
}

/// An error response of one operation's own: `description`, and what `ApiError` really renders
/// for `error` as its example, in a `Problem` body (`ValidationProblem` when it names fields),
/// with `x-request-id` (and `Retry-After` when the error carries one).
pub fn problem(description: &str, error: ApiError) -> Response {
    let schema = if error.errors.is_empty() {
        "Problem"
    } else {
        "ValidationProblem"
    };
    problem_as(description, error, schema)
}

/// `problem` with a body schema of its own (one made with `problem_with`).
pub fn problem_as(description: &str, error: ApiError, schema: &str) -> Response {
    let mut headers = json!({ "x-request-id": { "$ref": "#/components/headers/XRequestId" } });
    if error.retry_after_secs.is_some() {
        headers["Retry-After"] = json!({ "$ref": "#/components/headers/RetryAfter" });
    }
    from_json(json!({
        "description": description,
        "headers": headers,
        "content": {
            PROBLEM_JSON: {
                "schema": { "$ref": format!("#/components/schemas/{schema}") },
                "example": error.body()
            }
        }
    }))
}

/// Declares the error responses of a service's own, each a `ToResponse` that an operation
/// inlines where it lists it (`(status = 409, response = inline(SkuTaken))`):
///
/// ```ignore
/// souk_common::problem_responses! {
///     /// 409 to a SKU in use.
///     SkuTaken => problem("`sku_taken`: ...", ApiError::conflict(ErrorCode::SkuTaken, "...."));
/// }
/// ```
#[macro_export]
macro_rules! problem_responses {
    ($( $(#[$doc:meta])* $name:ident => $response:expr; )+) => {
        $(
            $(#[$doc])*
            pub struct $name;
            impl<'r> utoipa::ToResponse<'r> for $name {
                fn response() -> (&'r str, utoipa::openapi::RefOr<utoipa::openapi::Response>) {
                    (stringify!($name), utoipa::openapi::RefOr::T($response))
                }
            }
        )+
    };
}

macro_rules! shared_responses {
    ($( $name:ident => $description:literal, $error:expr; )+) => {
        $(
            #[doc = $description]
            pub struct $name;
            impl<'r> utoipa::ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    (stringify!($name), RefOr::Ref(utoipa::openapi::Ref::from_response_name(stringify!($name))))
                }
            }
        )+
        fn shared_responses() -> Vec<(&'static str, Response)> {
            vec![$((stringify!($name), problem($description, $error)),)+]
        }
    };
}

// The error responses every service shares, as components; each example is what `ApiError`
// renders for the error beside it.
shared_responses! {
    BadRequest => "`malformed_request`: the body is not well-formed JSON (or could not be read).",
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::MalformedRequest, "malformed JSON: EOF while parsing an object");
    Unauthorized => "`unauthorized`: no access token, a malformed `Authorization` header, or a token that is invalid, expired, or whose account no longer exists.",
        ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, "send a valid access token: Authorization: Bearer <token>");
    InvalidToken => "`unauthorized`: only when an `Authorization` header is sent and its token is invalid or expired (a token is optional here, but one that is sent must be valid).",
        ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, "the access token is invalid or expired");
    Forbidden => "`forbidden`: the caller is not an admin.",
        ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, "this endpoint is for admins");
    NotFound => "`not_found`: no such resource (an id that is not a UUID is 404 too).",
        ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such product");
    PayloadTooLarge => "`payload_too_large`: the body is over 1 MiB (1,048,576 bytes).",
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge, "the request body is larger than 1 MiB");
    UnsupportedMediaType => "`unsupported_media_type`: the body is not sent as `Content-Type: application/json` (or another `application/*+json`).",
        ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, ErrorCode::UnsupportedMediaType, "send the body as Content-Type: application/json");
    ValidationFailed => "`validation_failed`: a field is missing, has the wrong JSON type, or has an invalid value; each is named in `errors[].field`.",
        ApiError::invalid_field("password", "must be at least 8 characters");
    InvalidQuery => "`validation_failed`: an invalid query parameter (`limit` outside 1-100, a `cursor` this endpoint did not issue, a bad filter, a parameter given twice, a NUL character), named in `errors[].field`.",
        ApiError::invalid_field("limit", "must be an integer from 1 to 100");
    TooManyRequests => "`rate_limited`: too many requests from this client (per user when signed in, else per address; token bucket, defaults 50/s with bursts of 100, per gateway replica). Wait `Retry-After` seconds.",
        ApiError::too_many_requests(1, "too many requests");
    BadGateway => "`bad_gateway`: the service behind the gateway failed to answer (connection broken).",
        ApiError::new(StatusCode::BAD_GATEWAY, ErrorCode::BadGateway, "the order service failed to answer");
    ServiceUnavailable => "`service_unavailable`: the service behind the gateway (or one it depends on) cannot be reached, or tokens cannot be verified yet; retry shortly; or its database is restarting or unreachable (then with `Retry-After`).",
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::ServiceUnavailable, "the cart service is unavailable, try again shortly").with_retry_after(1);
    GatewayTimeout => "`upstream_timeout`: the service did not answer in time (default 10 s; 30 s for `/api/v1/checkout` and `/api/v1/orders/...`).",
        ApiError::new(StatusCode::GATEWAY_TIMEOUT, ErrorCode::UpstreamTimeout, "the order service did not answer in time");
    InternalError => "`internal_error`: an unexpected fault; the detail is generic (never a stack trace or SQL).",
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::InternalError, "an unexpected error occurred");
    MalformedQuery => "`malformed_request`: the query string could not be parsed, or a parameter is given more than once.",
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::MalformedRequest, "query parameter `limit` is given more than once");
}

/// 304 to a conditional read (`If-None-Match`): no body.
pub struct NotModified;
impl<'r> utoipa::ToResponse<'r> for NotModified {
    fn response() -> (&'r str, RefOr<Response>) {
        (
            "NotModified",
            from_json(json!({
                "description": "Unchanged since the `ETag` sent in `If-None-Match`: no body.",
                "headers": {
                    "x-request-id": { "$ref": "#/components/headers/XRequestId" },
                    "ETag": { "$ref": "#/components/headers/ETag" }
                }
            })),
        )
    }
}

/// What the gateway answers on any operation it proxies, whatever the service: its rate
/// limit, and a service that fails, cannot be reached or is slow (and 500 for a fault).
const GATEWAY_RESPONSES: [(&str, &str); 5] = [
    ("429", "TooManyRequests"),
    ("500", "InternalError"),
    ("502", "BadGateway"),
    ("503", "ServiceUnavailable"),
    ("504", "GatewayTimeout"),
];

/// Completes a merged document: every operation under `/api/v1` answers the gateway's own
/// responses and what the shared extractors answer (`common_responses`), every response names
/// `x-request-id`, and the components hold `NotModified`. An operation that documents one of
/// these statuses itself keeps its own.
pub fn finish(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Components::new);
    let (name, not_modified) = <NotModified as utoipa::ToResponse>::response();
    components.responses.insert(name.to_owned(), not_modified);
    for (path, item) in doc.paths.paths.iter_mut() {
        let proxied = path.starts_with("/api/v1/");
        for operation in operations(item) {
            let mut defaults = common_responses(operation);
            if proxied {
                defaults.extend(GATEWAY_RESPONSES);
            }
            for (status, response) in defaults {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| {
                        RefOr::Ref(utoipa::openapi::Ref::from_response_name(response))
                    });
            }
            for response in operation.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    response
                        .headers
                        .entry("x-request-id".to_owned())
                        .or_insert_with(request_id_header);
                }
            }
        }
    }
}

/// What the shared extractors answer, by what the operation takes: a bearer token checked by
/// the gateway (401; `InvalidToken` where the token is optional; 403 where it must carry the
/// admin role), a JSON body read by `souk_common::Json` from a client with a token (400, 413,
/// 415), query parameters read by `souk_common::Query` (400 for a repeated one, 422 for a bad
/// value), an id in the path (404). Stripe's webhook (`security: []`) reads its body itself.
fn common_responses(operation: &Operation) -> Vec<(&'static str, &'static str)> {
    let mut defaults = Vec::new();
    let security = operation.security.as_deref().unwrap_or_default();
    let with_token = !security.is_empty();
    if with_token {
        let optional = security.contains(&SecurityRequirement::default());
        defaults.push((
            "401",
            if optional {
                "InvalidToken"
            } else {
                "Unauthorized"
            },
        ));
    }
    // `security(("bearer" = ["admin"]))`: the role the token must carry (`AdminUser`).
    let admin = SecurityRequirement::new("bearer", ["admin"]);
    if security.contains(&admin) {
        defaults.push(("403", "Forbidden"));
    }
    if operation.request_body.is_some() && with_token {
        defaults.extend([
            ("400", "BadRequest"),
            ("413", "PayloadTooLarge"),
            ("415", "UnsupportedMediaType"),
        ]);
    }
    let takes_query = takes(operation, ParameterIn::Query);
    if takes_query && operation.request_body.is_none() {
        defaults.extend([("400", "MalformedQuery"), ("422", "InvalidQuery")]);
    }
    // An id in the path that names nothing (or is not a UUID) is 404 (`parse_id`).
    if takes(operation, ParameterIn::Path) {
        defaults.push(("404", "NotFound"));
    }
    defaults
}

fn takes(operation: &Operation, place: ParameterIn) -> bool {
    operation.parameters.iter().flatten().any(
        |parameter| matches!(parameter, RefOr::T(parameter) if parameter.parameter_in == place),
    )
}

fn request_id_header() -> RefOr<Header> {
    RefOr::Ref(utoipa::openapi::Ref::new("#/components/headers/XRequestId"))
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// One service's part of the document: its operations, each tagged `tag` (the service's name,
/// or `gateway`; utoipa's default, the handler's module path, means nothing to a reader).
pub fn part(tag: &str, mut doc: OpenApi) -> OpenApi {
    for item in doc.paths.paths.values_mut() {
        for operation in operations(item) {
            operation.tags = Some(vec![tag.to_owned()]);
        }
    }
    doc
}

/// An OpenAPI document as the JSON a server answers with.
pub fn to_json(doc: &OpenApi) -> String {
    serde_json::to_string(doc).expect("an OpenAPI document serialises")
}
