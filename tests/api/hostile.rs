//! Hostile text: every string field of every endpoint that takes one, given a NUL (which
//! PostgreSQL cannot store) or another control character, answers 422 naming the field (a
//! description keeps its line breaks and tabs); query parameters too. A repeated query
//! parameter is 400 `malformed_request`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{App, Resp};

const NUL_TEXT: &str = "bad\u{0}text";
/// A line break, refused in one-line fields; a bell, refused even in a description; a C1 control.
const OTHER_CONTROLS: [&str; 3] = ["two\nlines", "ding\u{7}", "csi\u{9b}2J"];
const SOME_ID: &str = "0193a1f2-7c4e-7d3a-9b1e-2f5c8d9e0a1b";

/// Paths (`shipping_address.line1`, `variants[0].sku`) of every string in a body.
fn string_fields(value: &Value, at: &str, out: &mut Vec<String>) {
    match value {
        Value::String(_) => out.push(at.to_owned()),
        Value::Object(members) => {
            for (name, v) in members {
                let path = if at.is_empty() {
                    name.clone()
                } else {
                    format!("{at}.{name}")
                };
                string_fields(v, &path, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                string_fields(v, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn with_text(body: &Value, path: &str, text: &str) -> Value {
    let mut body = body.clone();
    let mut at = &mut body;
    for part in path.split('.') {
        let mut pieces = part.split('[');
        at = &mut at[pieces.next().unwrap()];
        for index in pieces {
            at = &mut at[index.trim_end_matches(']').parse::<usize>().unwrap()];
        }
    }
    *at = Value::String(text.to_owned());
    body
}

#[track_caller]
fn expect_field(res: &Resp, what: &str, field: &str) {
    assert_eq!(
        res.status.as_u16(),
        422,
        "{what}: a control character in `{field}` must be 422; body: {}",
        res.body
    );
    assert_eq!(
        res.body["code"], "validation_failed",
        "{what}: {}",
        res.body
    );
    assert_eq!(
        res.body["errors"][0]["field"], field,
        "{what}: {}",
        res.body
    );
}

#[tokio::test]
async fn a_control_character_in_any_body_string_is_422_naming_the_field() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let shopper = app.customer().await;
    let product = app
        .post(
            "/api/v1/products",
            Some(&admin.token),
            json!({"sku": "NUL-1", "name": "Kettle", "description": "Steel",
                   "price_cents": 1000, "currency": "usd", "stock": 5}),
        )
        .await;
    let product_id = product.expect(201, None)["id"].as_str().unwrap().to_owned();
    let tee = app
        .post(
            "/api/v1/products",
            Some(&admin.token),
            json!({"sku": "NUL-TEE", "name": "Tee", "description": "", "currency": "usd",
                   "options": [{"name": "size", "values": ["S", "M"]}],
                   "variants": [{"sku": "NUL-TEE-S", "option_values": {"size": "S"},
                                 "price_cents": 100, "stock": 1}]}),
        )
        .await;
    let tee = tee.expect(201, None).clone();
    let (tee_id, tee_s) = (
        tee["id"].as_str().unwrap().to_owned(),
        tee["variants"][0]["id"].as_str().unwrap().to_owned(),
    );
    let address = json!({"name": "Ann", "line1": "1 Main St", "line2": "Flat 2", "city": "Springfield",
                         "state": "IL", "postal_code": "12345", "country": "US"});
    let cases: Vec<(Method, String, Option<&str>, Value)> = vec![
        (
            Method::POST,
            "/api/v1/auth/register".into(),
            None,
            json!({"email": "new-user@example.com", "password": "correct-horse-1", "name": "New"}),
        ),
        (
            Method::POST,
            "/api/v1/auth/login".into(),
            None,
            json!({"email": shopper.email, "password": "correct-horse-1"}),
        ),
        (
            Method::POST,
            "/api/v1/auth/refresh".into(),
            None,
            json!({"refresh_token": shopper.refresh}),
        ),
        (
            Method::POST,
            "/api/v1/auth/logout".into(),
            Some(&shopper.token),
            json!({"refresh_token": shopper.refresh}),
        ),
        (
            Method::PATCH,
            "/api/v1/users/me".into(),
            Some(&shopper.token),
            json!({"name": "Ann", "shipping_address": address}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/admin/users/{}", shopper.id),
            Some(&admin.token),
            json!({"role": "customer"}),
        ),
        (
            Method::POST,
            "/api/v1/products".into(),
            Some(&admin.token),
            json!({"sku": "NUL-2", "name": "Pot", "description": "Clay", "price_cents": 500,
                "currency": "usd", "stock": 1}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/products/{product_id}"),
            Some(&admin.token),
            json!({"sku": "NUL-3", "name": "Pot", "description": "Clay", "currency": "usd"}),
        ),
        (
            Method::POST,
            "/api/v1/products".into(),
            Some(&admin.token),
            json!({"sku": "NUL-4", "name": "Cap", "description": "Wool", "currency": "usd",
                "options": [{"name": "colour", "values": ["red", "blue"]}],
                "variants": [{"sku": "NUL-4-R", "option_values": {"colour": "red"},
                              "price_cents": 500, "stock": 1}]}),
        ),
        (
            Method::POST,
            format!("/api/v1/products/{tee_id}/variants"),
            Some(&admin.token),
            json!({"sku": "NUL-TEE-M", "option_values": {"size": "M"}, "price_cents": 100, "stock": 1}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/products/{tee_id}/variants/{tee_s}"),
            Some(&admin.token),
            json!({"sku": "NUL-TEE-S2", "option_values": {"size": "S"}}),
        ),
        (
            Method::POST,
            "/api/v1/categories".into(),
            Some(&admin.token),
            json!({"name": "Kitchen", "slug": "kitchen"}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/categories/{SOME_ID}"),
            Some(&admin.token),
            json!({"name": "Kitchen", "slug": "kitchen"}),
        ),
        (
            Method::POST,
            "/api/v1/cart/items".into(),
            Some(&shopper.token),
            json!({"product_id": product_id, "quantity": 1}),
        ),
        (
            Method::POST,
            "/api/v1/cart/items".into(),
            Some(&shopper.token),
            json!({"product_id": tee_id, "variant_id": tee_s, "quantity": 1}),
        ),
        (
            Method::POST,
            "/api/v1/checkout".into(),
            Some(&shopper.token),
            json!({"payment_method": "pm_card_visa", "shipping_address": address}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/admin/orders/{SOME_ID}"),
            Some(&admin.token),
            json!({"status": "shipped"}),
        ),
    ];
    for (method, path, token, body) in cases {
        let mut fields = Vec::new();
        string_fields(&body, "", &mut fields);
        for field in fields {
            let multiline = field == "description";
            for (i, text) in [NUL_TEXT].iter().chain(&OTHER_CONTROLS).enumerate() {
                if multiline && text.contains('\n') {
                    continue;
                }
                let mut req = app
                    .http
                    .request(method.clone(), app.url(&path))
                    .header("idempotency-key", format!("ctl-{field}-{i}"))
                    .json(&with_text(&body, &field, text));
                if let Some(token) = token {
                    req = req.bearer_auth(token);
                }
                let res = app.send(req).await;
                expect_field(&res, &format!("{method} {path} {text:?}"), &field);
            }
        }
    }
    // Nothing was changed by any of them: the shopper still signs in with the same name.
    let me = app.get("/api/v1/users/me", Some(&shopper.token)).await;
    assert_eq!(me.expect(200, None)["name"], "Shopper");
}

#[tokio::test]
async fn a_control_character_in_a_query_string_is_422_and_a_repeat_400() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let shopper = app.customer().await;
    let cases: [(&str, Option<&str>, &[&str]); 4] = [
        (
            "/api/v1/products",
            None,
            &[
                "category",
                "q",
                "min_price",
                "max_price",
                "sort",
                "limit",
                "cursor",
            ],
        ),
        (
            "/api/v1/admin/users",
            Some(&admin.token),
            &["limit", "cursor"],
        ),
        ("/api/v1/orders", Some(&shopper.token), &["limit", "cursor"]),
        (
            "/api/v1/admin/orders",
            Some(&admin.token),
            &["status", "limit", "cursor"],
        ),
    ];
    for (path, token, params) in cases {
        for param in params {
            for control in ["%00", "%0A", "%1B", "%C2%9B"] {
                let res = app.get(&format!("{path}?{param}=a{control}b"), token).await;
                expect_field(&res, path, param);
            }
            let repeated = app.get(&format!("{path}?{param}=1&{param}=2"), token).await;
            assert_eq!(
                repeated.status.as_u16(),
                400,
                "{path}?{param} twice: {}",
                repeated.body
            );
            assert_eq!(repeated.body["code"], "malformed_request");
            assert!(
                repeated.body["detail"].as_str().unwrap().contains(param),
                "{}",
                repeated.body
            );
        }
    }
}

#[tokio::test]
async fn a_description_keeps_its_line_breaks_and_tabs() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let text = "Hand-thrown.\r\nTwo sizes:\tsmall, large.\nDishwasher safe.";
    let product = app
        .post(
            "/api/v1/products",
            Some(&admin.token),
            json!({"sku": "LINES-1", "name": "Bowl", "description": text,
                   "price_cents": 1200, "currency": "usd", "stock": 3}),
        )
        .await;
    let id = product.expect(201, None)["id"].as_str().unwrap().to_owned();
    let shown = app.get(&format!("/api/v1/products/{id}"), None).await;
    assert_eq!(shown.expect(200, None)["description"], text);
}
