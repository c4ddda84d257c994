//! Validation of the catalog's admin writes, against the product service's router in-process
//! (`tower::ServiceExt::oneshot`): no other service and no database. Its pool is lazy and points
//! where nothing listens, so a request that got as far as a query would answer 503, never the
//! 4xx expected here: each answer shows the check refused the request before any query.

#![allow(
    clippy::unwrap_used,
    reason = "a test that fails at an unwrap is doing its job"
)]

use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use souk_common::{Caller, Role};
use souk_testkit::{Internal, Payload, TEST_INTERNAL_SECRET};
use sqlx::postgres::PgPoolOptions;
use tower::ServiceExt;
use uuid::Uuid;

/// Nothing listens on port 1 of loopback.
const NO_DATABASE: &str = "postgres://postgres@127.0.0.1:1/no_database";

fn product_service() -> Router {
    let config = souk_product::Config {
        database: souk_common::db::Database {
            url: NO_DATABASE.to_owned(),
            max_connections: 1,
        },
        internal_secret: TEST_INTERNAL_SECRET.to_owned(),
        currency: "usd".to_owned(),
        reservation_ttl: Duration::from_secs(900),
        // The sweeper's first sweep fails (no database) and the next is an hour away.
        reservation_sweep_interval: Duration::from_secs(3600),
        catalog_cache: false,
    };
    let db = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy(NO_DATABASE)
        .unwrap();
    souk_product::app_on(config, db)
}

fn admin() -> Caller {
    Caller::User {
        id: Uuid::now_v7(),
        role: Role::Admin,
    }
}

fn customer() -> Caller {
    Caller::User {
        id: Uuid::now_v7(),
        role: Role::Customer,
    }
}

/// An answer of the router: status, content type and JSON body (`Null` when not JSON).
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    content_type: String,
    body: Value,
}

impl Answer {
    /// Asserts a problem+json answer with this status and code; returns its body.
    #[track_caller]
    fn problem(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        assert_eq!(self.body["code"], code, "{self:?}");
        &self.body
    }

    /// Asserts 422 `validation_failed`; returns the fields named, in order.
    #[track_caller]
    fn invalid_fields(&self) -> Vec<String> {
        self.problem(422, "validation_failed")["errors"]
            .as_array()
            .expect("validation errors are a list")
            .iter()
            .map(|e| e["field"].as_str().expect("a field name").to_owned())
            .collect()
    }
}

/// Sends one request, as the gateway would for `caller`, to a fresh router.
async fn send(
    method: Method,
    path: &str,
    caller: Option<&Caller>,
    body: Option<Payload>,
) -> Answer {
    let request = Internal::default().in_process("product", method, path, caller, body);
    let response = product_service().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        content_type,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

async fn create(body: Payload) -> Answer {
    send(Method::POST, "/api/v1/products", Some(&admin()), Some(body)).await
}

fn raw_json(text: &str) -> Payload {
    Payload::raw("application/json", text)
}

#[tokio::test]
async fn product_writes_need_a_proven_admin() {
    let shirt = json!({"sku": "A-1", "name": "A", "description": "", "price_cents": 5, "currency": "usd", "stock": 1});
    send(
        Method::POST,
        "/api/v1/products",
        None,
        Some(Payload::json(&shirt)),
    )
    .await
    .problem(401, "unauthorized");
    send(
        Method::POST,
        "/api/v1/products",
        Some(&customer()),
        Some(Payload::json(&shirt)),
    )
    .await
    .problem(403, "forbidden");
    // An admin stated with a proof made with another secret.
    let forged = Internal::new("a-guessed-secret-a-guessed-secret").in_process(
        "product",
        Method::POST,
        "/api/v1/products",
        Some(&admin()),
        Some(Payload::json(&shirt)),
    );
    let response = product_service().oneshot(forged).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn malformed_and_mistyped_product_bodies_are_refused() {
    create(raw_json("{\"sku\": "))
        .await
        .problem(400, "malformed_request");
    let cheap = r#"{"sku":"A","name":"A","description":"","price_cents":"cheap","currency":"usd","stock":1}"#;
    assert_eq!(
        create(raw_json(cheap)).await.invalid_fields(),
        ["price_cents"]
    );
    let float =
        r#"{"sku":"A","name":"A","description":"","price_cents":9.99,"currency":"usd","stock":1}"#;
    assert_eq!(
        create(raw_json(float)).await.invalid_fields(),
        ["price_cents"]
    );
    let missing = r#"{"sku":"A","name":"A","description":"","currency":"usd","stock":1}"#;
    assert_eq!(
        create(raw_json(missing)).await.invalid_fields(),
        ["price_cents"]
    );
    create(Payload::raw("text/plain", "hi"))
        .await
        .problem(415, "unsupported_media_type");
    let big = format!(
        r#"{{"sku":"B","name":"B","description":"{}","price_cents":1,"currency":"usd","stock":1}}"#,
        "x".repeat(1024 * 1024 + 10)
    );
    assert_eq!(
        create(raw_json(&big)).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[tokio::test]
async fn product_fields_are_checked_together() {
    let negative = json!({"sku": "A", "name": "A", "description": "", "price_cents": -5, "currency": "usd", "stock": -1});
    assert_eq!(
        create(Payload::json(&negative)).await.invalid_fields(),
        ["price_cents", "stock"]
    );
    let everything_wrong = json!({
        "sku": "has space", "name": "", "description": "", "price_cents": 100_000_000_001_i64,
        "currency": "eur", "stock": 1_000_000_001, "image_url": "javascript:alert(1)",
    });
    assert_eq!(
        create(Payload::json(&everything_wrong))
            .await
            .invalid_fields(),
        [
            "sku",
            "name",
            "price_cents",
            "currency",
            "stock",
            "image_url"
        ]
    );
    let variants_without_options = json!({
        "sku": "V-1", "name": "V", "description": "", "price_cents": 5, "currency": "usd",
        "stock": 1, "variants": [],
    });
    assert_eq!(
        create(Payload::json(&variants_without_options))
            .await
            .invalid_fields(),
        ["variants"]
    );
}

#[tokio::test]
async fn product_patches_and_stock_are_checked() {
    let path = format!("/api/v1/products/{}", Uuid::now_v7());
    let patch = async |body: Value| {
        send(
            Method::PATCH,
            &path,
            Some(&admin()),
            Some(Payload::json(&body)),
        )
        .await
    };
    assert_eq!(
        patch(json!({"price_cents": -1})).await.invalid_fields(),
        ["price_cents"]
    );
    assert_eq!(
        patch(json!({"name": null})).await.invalid_fields(),
        ["name"]
    );
    assert_eq!(
        patch(json!({"currency": "eur", "stock": -1, "active": null}))
            .await
            .invalid_fields(),
        ["currency", "stock", "active"]
    );
    assert_eq!(
        patch(json!({"options": [{"name": "size", "values": ["S"]}]}))
            .await
            .invalid_fields(),
        ["options"]
    );
    send(
        Method::PATCH,
        "/api/v1/products/not-a-uuid",
        Some(&admin()),
        Some(Payload::json(&json!({"name": "x"}))),
    )
    .await
    .problem(404, "not_found");
    let stock = send(
        Method::PUT,
        &format!("{path}/stock"),
        Some(&admin()),
        Some(Payload::json(&json!({"stock": -1}))),
    )
    .await;
    assert_eq!(stock.invalid_fields(), ["stock"]);
}

#[tokio::test]
async fn category_bodies_are_checked() {
    let category = async |body: Value| {
        send(
            Method::POST,
            "/api/v1/categories",
            Some(&admin()),
            Some(Payload::json(&body)),
        )
        .await
    };
    assert_eq!(
        category(json!({"name": 5, "slug": "x"}))
            .await
            .invalid_fields(),
        ["name"]
    );
    assert_eq!(
        category(json!({"name": "", "slug": "Not A Slug"}))
            .await
            .invalid_fields(),
        ["name", "slug"]
    );
}
