//! The shoppers goose plays: browsing the catalog, filling a cart, and buying.
//!
//! Every request is named after its endpoint template, so the report groups them per endpoint.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use goose::goose::GooseResponse;
use goose::prelude::*;
use rand::Rng;
use serde_json::{Value, json};

use crate::seed::{ADJECTIVES, MATERIALS, NOUNS, Seeded};

/// What seeding made, shared by every goose user.
pub static DATA: OnceLock<Seeded> = OnceLock::new();
/// Each signed-in goose user takes the next shopper, so no two share a cart.
static NEXT_SHOPPER: AtomicUsize = AtomicUsize::new(0);

fn data() -> &'static Seeded {
    DATA.get().expect("seeded before the attack starts")
}

fn random_product() -> &'static str {
    let products = &data().products;
    &products[rand::thread_rng().gen_range(0..products.len())].id
}

/// A signed-in goose user's shopper.
struct Session {
    token: String,
}

fn token(user: &GooseUser) -> String {
    user.get_session_data_unchecked::<Session>().token.clone()
}

pub fn browse() -> Result<Scenario, GooseError> {
    Ok(scenario!("browse")
        .register_transaction(transaction!(list).set_name("list").set_weight(2)?)
        .register_transaction(transaction!(search).set_name("search").set_weight(2)?)
        .register_transaction(transaction!(filtered).set_name("filtered").set_weight(2)?)
        .register_transaction(
            transaction!(product_page)
                .set_name("product")
                .set_weight(4)?,
        ))
}

pub fn cart() -> Result<Scenario, GooseError> {
    Ok(scenario!("cart")
        .register_transaction(transaction!(sign_in).set_on_start())
        .register_transaction(transaction!(cart_round).set_name("cart round")))
}

pub fn checkout() -> Result<Scenario, GooseError> {
    Ok(scenario!("checkout")
        .register_transaction(transaction!(sign_in).set_on_start())
        .register_transaction(transaction!(buy).set_name("journey")))
}

async fn get(
    user: &mut GooseUser,
    path: &str,
    name: &str,
) -> Result<GooseResponse, Box<TransactionError>> {
    let request = GooseRequest::builder()
        .method(GooseMethod::Get)
        .path(path)
        .name(name)
        .build();
    user.request(request).await
}

/// A request with the shopper's token and an optional JSON body.
async fn send(
    user: &mut GooseUser,
    method: GooseMethod,
    path: &str,
    name: &str,
    body: Option<Value>,
    expect: u16,
) -> Result<GooseResponse, Box<TransactionError>> {
    let mut builder = user
        .get_request_builder(&method, path)?
        .bearer_auth(token(user));
    if let Some(body) = body {
        builder = builder.json(&body);
    }
    let request = GooseRequest::builder()
        .method(method)
        .path(path)
        .name(name)
        .expect_status_code(expect)
        .set_request_builder(builder)
        .build();
    user.request(request).await
}

async fn list(user: &mut GooseUser) -> TransactionResult {
    get(user, "/api/v1/products?limit=20", "GET /products").await?;
    Ok(())
}

async fn search(user: &mut GooseUser) -> TransactionResult {
    let words: Vec<&str> = ADJECTIVES
        .iter()
        .chain(&MATERIALS)
        .chain(&NOUNS)
        .copied()
        .collect();
    let q = words[rand::thread_rng().gen_range(0..words.len())];
    get(
        user,
        &format!("/api/v1/products?q={q}&limit=20"),
        "GET /products?q=",
    )
    .await?;
    Ok(())
}

async fn filtered(user: &mut GooseUser) -> TransactionResult {
    let (path, name) = {
        let mut rng = rand::thread_rng();
        let categories = &data().categories;
        let category = &categories[rng.gen_range(0..categories.len())];
        let min = rng.gen_range(0..40_000);
        let sort = ["price_asc", "price_desc", "newest"][rng.gen_range(0..3)];
        (
            format!(
                "/api/v1/products?category={category}&min_price={min}&max_price={}&sort={sort}&limit=20",
                min + 10_000
            ),
            "GET /products?category&price&sort",
        )
    };
    get(user, &path, name).await?;
    Ok(())
}

async fn product_page(user: &mut GooseUser) -> TransactionResult {
    let path = format!("/api/v1/products/{}", random_product());
    get(user, &path, "GET /products/{id}").await?;
    Ok(())
}

async fn sign_in(user: &mut GooseUser) -> TransactionResult {
    let shoppers = &data().shoppers;
    let i = NEXT_SHOPPER.fetch_add(1, Ordering::Relaxed);
    if i >= shoppers.len() {
        panic!(
            "more signed-in goose users than seeded shoppers ({}): lower --users or raise SOUK_LOAD_USERS",
            shoppers.len()
        );
    }
    user.set_session_data(Session {
        token: shoppers[i].access_token.clone(),
    });
    // Start from an empty cart whatever an earlier run left in it.
    send(
        user,
        GooseMethod::Delete,
        "/api/v1/cart",
        "DELETE /cart",
        None,
        204,
    )
    .await?;
    Ok(())
}

/// Add a product, change its quantity, look at the cart, empty it (so carts stay small).
async fn cart_round(user: &mut GooseUser) -> TransactionResult {
    let product = random_product();
    send(
        user,
        GooseMethod::Post,
        "/api/v1/cart/items",
        "POST /cart/items",
        Some(json!({"product_id": product, "quantity": 1})),
        200,
    )
    .await?;
    send(
        user,
        GooseMethod::Patch,
        &format!("/api/v1/cart/items/{product}"),
        "PATCH /cart/items/{id}",
        Some(json!({"quantity": 3})),
        200,
    )
    .await?;
    get_cart(user).await?;
    send(
        user,
        GooseMethod::Delete,
        "/api/v1/cart",
        "DELETE /cart",
        None,
        204,
    )
    .await?;
    Ok(())
}

async fn get_cart(user: &mut GooseUser) -> TransactionResult {
    send(
        user,
        GooseMethod::Get,
        "/api/v1/cart",
        "GET /cart",
        None,
        200,
    )
    .await?;
    Ok(())
}

/// The whole journey: look at a product, put it in the cart, pay, and check the order is paid.
async fn buy(user: &mut GooseUser) -> TransactionResult {
    let product = random_product();
    get(
        user,
        &format!("/api/v1/products/{product}"),
        "GET /products/{id}",
    )
    .await?;
    send(
        user,
        GooseMethod::Post,
        "/api/v1/cart/items",
        "POST /cart/items",
        Some(json!({"product_id": product, "quantity": 1})),
        200,
    )
    .await?;
    let body = json!({
        "payment_method": "pm_card_visa",
        "shipping_address": {
            "name": "Load Shopper", "line1": "1 Bench Street", "city": "Springfield",
            "postal_code": "12345", "country": "US"
        }
    });
    let builder = user
        .get_request_builder(&GooseMethod::Post, "/api/v1/checkout")?
        .bearer_auth(token(user))
        .header("idempotency-key", uuid::Uuid::new_v4().to_string())
        .json(&body);
    let request = GooseRequest::builder()
        .method(GooseMethod::Post)
        .path("/api/v1/checkout")
        .name("POST /checkout")
        .expect_status_code(201)
        .set_request_builder(builder)
        .build();
    let mut goose = user.request(request).await?;
    // A 201 must also be a paid order, or the journey failed.
    if let Ok(response) = goose.response
        && response.status().as_u16() == 201
    {
        let order: Value = response.json().await.unwrap_or(Value::Null);
        if order["status"] != "paid" {
            let detail = format!("order not paid: status {}", order["status"]);
            return user.set_failure(&detail, &mut goose.request, None, Some(&detail));
        }
    }
    Ok(())
}
