//! The money path: cart -> checkout -> paid order, with the Stripe emulator and a real SMTP
//! sink behind the payment service.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{App, Resp, Session, fast_recovery};
use souk_testkit::eventually;

const ADDRESS: &str = r#"{"name": "Ann Smith", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}"#;

pub(crate) fn address() -> Value {
    serde_json::from_str(ADDRESS).unwrap()
}

/// An admin-created product; returns its id.
pub(crate) async fn product(app: &App, admin: &Session, price_cents: i64, stock: i64) -> String {
    let sku = format!("SKU-{}", uuid::Uuid::new_v4().simple());
    let body = json!({"sku": sku, "name": "Teapot", "description": "Cast iron", "price_cents": price_cents, "currency": "usd", "stock": stock});
    let res = app.post("/api/v1/products", Some(&admin.token), body).await;
    res.expect(201, None)["id"].as_str().unwrap().to_owned()
}

/// The product's stock as its owner reads it now. Straight from the product service: the
/// gateway may answer a public read from its cache for up to its TTL (a bound tested in
/// `catalog_cache`), and stock also changes in the background (sagas, expiries).
pub(crate) async fn stock(app: &App, product_id: &str) -> i64 {
    let url = format!(
        "{}/api/v1/products/{product_id}",
        app.platform.url("product")
    );
    app.send(app.http.get(url)).await.expect(200, None)["stock"]
        .as_i64()
        .unwrap()
}

/// Waits for the product's stock to read `expected`: stock given back in the background (by a
/// saga's last step after the order shows its final status, or by an expired reservation)
/// shows a moment later.
pub(crate) async fn stock_becomes(app: &App, product_id: &str, expected: i64) {
    eventually(
        &format!("the stock reads {expected}"),
        Duration::from_secs(10),
        async || stock(app, product_id).await,
        |now| *now == expected,
    )
    .await;
}

/// A customer with a saved address.
pub(crate) async fn shopper_with_address(app: &App) -> Session {
    let me = app.customer().await;
    app.patch(
        "/api/v1/users/me",
        Some(&me.token),
        json!({"shipping_address": address()}),
    )
    .await
    .expect(200, None);
    me
}

/// A customer with a saved address and `quantity` of the product in the cart.
pub(crate) async fn shopper_with_cart(app: &App, product_id: &str, quantity: i64) -> Session {
    let me = shopper_with_address(app).await;
    app.post(
        "/api/v1/cart/items",
        Some(&me.token),
        json!({"product_id": product_id, "quantity": quantity}),
    )
    .await
    .expect(200, None);
    me
}

pub(crate) async fn checkout(app: &App, who: &Session, key: &str, payment_method: &str) -> Resp {
    let req = app
        .http
        .post(app.url("/api/v1/checkout"))
        .bearer_auth(&who.token)
        .header("idempotency-key", key)
        .json(&json!({"payment_method": payment_method}));
    app.send(req).await
}

/// The shopper's (or an admin's) cancel of an order.
pub(crate) async fn cancel(app: &App, who: &Session, order_id: &str) -> Resp {
    let path = format!("/api/v1/orders/{order_id}/cancel");
    app.post(&path, Some(&who.token), json!({})).await
}

/// Waits until the SMTP sink holds at least `count` messages; returns them all.
pub(crate) async fn wait_for_mail(app: &App, count: usize) -> Vec<String> {
    let what = format!("{count} message(s) at the SMTP sink");
    eventually(
        &what,
        Duration::from_secs(10),
        async || app.mail(),
        |mail| mail.len() >= count,
    )
    .await
}

/// Waits until recovery has finished every order's saga (none is left half-way).
pub(crate) async fn wait_until_settled(app: &App) {
    let orders = app.db("order").await;
    let unfinished = async || -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM orders WHERE saga_state <> 'done'")
            .fetch_one(&orders)
            .await
            .unwrap()
    };
    eventually(
        "no order left unfinished",
        Duration::from_secs(30),
        unfinished,
        |count| *count == 0,
    )
    .await;
}

/// Checks every shopper out at once (one key, a Visa card each) and asserts that `paid` of them
/// got 201 and every other a 409 with `refused_code`; returns the answers in shoppers' order.
/// How many charges the payment service has made (or tried).
pub(crate) async fn charges(app: &App) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM payments")
        .fetch_one(&app.db("payment").await)
        .await
        .unwrap()
}

pub(crate) async fn race_to_checkout(
    app: &App,
    shoppers: &[Session],
    key: &str,
    paid: usize,
    refused_code: &str,
) -> Vec<Resp> {
    let results = futures::future::join_all(
        shoppers
            .iter()
            .map(|s| checkout(app, s, key, "pm_card_visa")),
    )
    .await;
    let created = results.iter().filter(|r| r.status == 201).count();
    let refused = results
        .iter()
        .filter(|r| r.status == 409 && r.body["code"] == refused_code)
        .count();
    assert_eq!(
        (created, refused),
        (paid, shoppers.len() - paid),
        "statuses: {:?}",
        results
            .iter()
            .map(|r| (r.status.as_u16(), r.body["code"].clone()))
            .collect::<Vec<_>>()
    );
    results
}

#[tokio::test]
async fn full_journey_to_a_paid_order() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 2_500, 10).await;
    let me = shopper_with_cart(&app, &teapot, 2).await;

    let res = checkout(&app, &me, "journey-1", "pm_card_visa").await;
    let order = res.expect(201, None).clone();
    assert_eq!(order["status"], "paid");
    assert_eq!(order["user_id"], me.id.as_str());
    assert_eq!(order["items"][0]["quantity"], 2);
    assert_eq!(order["items"][0]["unit_price_cents"], 2_500);
    assert_eq!(order["items"][0]["line_total_cents"], 5_000);
    assert_eq!(order["total_cents"], 5_000);
    assert_eq!(order["currency"], "usd");
    assert_eq!(order["shipping_address"]["city"], "Springfield");
    assert_eq!(order["payment"]["provider"], "stripe");
    assert_eq!(order["payment"]["status"], "succeeded");
    assert!(
        order["payment"]["payment_intent_id"]
            .as_str()
            .unwrap()
            .starts_with("pi_")
    );

    assert_eq!(stock(&app, &teapot).await, 8);
    let cart = app.get("/api/v1/cart", Some(&me.token)).await;
    assert_eq!(cart.expect(200, None)["items"].as_array().unwrap().len(), 0);

    let mail = wait_for_mail(&app, 1).await;
    assert_eq!(mail.len(), 1, "exactly one confirmation");
    assert!(mail[0].contains(&me.email), "sent to the shopper");
    assert!(mail[0].contains("50.00"), "shows the total: {}", mail[0]);

    let history = app.get("/api/v1/orders", Some(&me.token)).await;
    assert_eq!(history.expect(200, None)["items"][0]["id"], order["id"]);
    let id = order["id"].as_str().unwrap();
    app.get(&format!("/api/v1/orders/{id}"), Some(&me.token))
        .await
        .expect(200, None);
    let stranger = app.customer().await;
    app.get(&format!("/api/v1/orders/{id}"), Some(&stranger.token))
        .await
        .expect(404, Some("not_found"));
    app.get(&format!("/api/v1/orders/{id}"), Some(&admin.token))
        .await
        .expect(200, None);
}

/// The payment service refuses (422) to queue a confirmation to an address it cannot use: the
/// charge has gone through, so the order still completes and the shopper gets 201 paid.
#[tokio::test]
async fn a_paid_order_completes_when_its_confirmation_is_refused() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 2_500, 10).await;
    let me = shopper_with_cart(&app, &teapot, 2).await;
    // The user service refuses such an address now; older rows may still hold one.
    let users = app.db("user").await;
    sqlx::query("UPDATE users SET email = $2 WHERE id = $1::uuid")
        .bind(&me.id)
        .bind(format!(
            "ctl-{}@exa\u{7}mple.com",
            uuid::Uuid::new_v4().simple()
        ))
        .execute(&users)
        .await
        .unwrap();

    let res = checkout(&app, &me, "refused-mail-1", "pm_card_visa").await;
    let order = res.expect(201, None).clone();
    assert_eq!(order["status"], "paid");
    assert_eq!(order["payment"]["status"], "succeeded");
    assert_eq!(order["total_cents"], 5_000);
    assert_eq!(stock(&app, &teapot).await, 8);
    let cart = app.get("/api/v1/cart", Some(&me.token)).await;
    assert_eq!(cart.expect(200, None)["items"].as_array().unwrap().len(), 0);

    let orders = app.db("order").await;
    let saga: String = sqlx::query_scalar("SELECT saga_state FROM orders WHERE id = $1::uuid")
        .bind(order["id"].as_str().unwrap())
        .fetch_one(&orders)
        .await
        .unwrap();
    assert_eq!(saga, "done", "the order is not left half-completed");
    assert_eq!(charges(&app).await, 1, "charged once");
    // Replaying the request answers the same paid order, never a second charge.
    let again = checkout(&app, &me, "refused-mail-1", "pm_card_visa").await;
    assert_eq!(again.expect(201, None)["id"], order["id"]);
}

#[tokio::test]
async fn a_declined_card_is_402_and_returns_the_stock() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 1_000, 3).await;
    let me = shopper_with_cart(&app, &teapot, 2).await;
    let res = checkout(&app, &me, "declined-1", "pm_card_chargeDeclined").await;
    let body = res.expect(402, Some("payment_failed"));
    assert_eq!(body["order"]["status"], "payment_failed");
    assert_eq!(body["order"]["payment"]["status"], "failed");
    assert_eq!(stock(&app, &teapot).await, 3);
    // The cart is kept so the shopper can try another card.
    let cart = app.get("/api/v1/cart", Some(&me.token)).await;
    assert_eq!(cart.body["items"].as_array().unwrap().len(), 1);
    // Replaying the same request gives the same answer.
    let again = checkout(&app, &me, "declined-1", "pm_card_chargeDeclined").await;
    assert_eq!(
        again.expect(402, Some("payment_failed"))["order"]["id"],
        body["order"]["id"]
    );
    assert!(app.mail().is_empty());
}

#[tokio::test]
async fn the_same_key_replays_and_a_different_body_is_409() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 1_234, 5).await;
    let me = shopper_with_cart(&app, &teapot, 1).await;
    let first = checkout(&app, &me, "replay-1", "pm_card_visa")
        .await
        .expect(201, None)
        .clone();
    let second = checkout(&app, &me, "replay-1", "pm_card_visa")
        .await
        .expect(201, None)
        .clone();
    assert_eq!(first["id"], second["id"]);
    assert_eq!(
        first["payment"]["payment_intent_id"],
        second["payment"]["payment_intent_id"]
    );
    checkout(&app, &me, "replay-1", "pm_card_mastercard")
        .await
        .expect(409, Some("idempotency_key_reused"));
    let orders = app.get("/api/v1/orders", Some(&me.token)).await;
    assert_eq!(orders.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(charges(&app).await, 1, "one charge");
    assert_eq!(stock(&app, &teapot).await, 4);
    // Concurrent requests with one fresh key create one order.
    app.post(
        "/api/v1/cart/items",
        Some(&me.token),
        json!({"product_id": teapot, "quantity": 1}),
    )
    .await
    .expect(200, None);
    let (a, b) = tokio::join!(
        checkout(&app, &me, "replay-2", "pm_card_visa"),
        checkout(&app, &me, "replay-2", "pm_card_visa")
    );
    assert_eq!(a.expect(201, None)["id"], b.expect(201, None)["id"]);
    assert_eq!(stock(&app, &teapot).await, 3);
}

#[tokio::test]
async fn fifty_shoppers_for_five_teapots() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 999, 5).await;
    let mut shoppers = Vec::new();
    for _ in 0..50 {
        shoppers.push(shopper_with_cart(&app, &teapot, 1).await);
    }
    race_to_checkout(&app, &shoppers, "race", 5, "insufficient_stock").await;
    assert_eq!(stock(&app, &teapot).await, 0);
    assert_eq!(
        charges(&app).await,
        5,
        "nothing charged for the refused ones"
    );
}

#[tokio::test]
async fn a_crash_after_the_charge_is_recovered_to_paid_with_one_charge() {
    let app = App::spawn_shop_with(|c| {
        c.order.fault = Some(souk_order::FaultPoint::AfterCharge);
        fast_recovery(c);
    })
    .await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 4_200, 2).await;
    let me = shopper_with_cart(&app, &teapot, 1).await;
    let res = checkout(&app, &me, "crash-1", "pm_card_visa").await;
    assert!(
        res.status.is_server_error(),
        "the injected crash fails the request: {:?}",
        res.body
    );
    let status_and_cart = async || {
        let orders = app.get("/api/v1/orders", Some(&me.token)).await;
        let cart = app.get("/api/v1/cart", Some(&me.token)).await;
        (
            orders.body["items"][0]["status"].clone(),
            cart.body["items"].clone(),
        )
    };
    eventually(
        "the order recovered to paid and the cart emptied",
        Duration::from_secs(10),
        status_and_cart,
        |(status, cart)| status == "paid" && cart.as_array().is_some_and(Vec::is_empty),
    )
    .await;
    assert_eq!(stock(&app, &teapot).await, 1);
    assert_eq!(charges(&app).await, 1);
    assert_eq!(wait_for_mail(&app, 1).await.len(), 1);
    // The client's retry with the same key sees the recovered order.
    let again = checkout(&app, &me, "crash-1", "pm_card_visa").await;
    assert_eq!(again.expect(201, None)["status"], "paid");
}

#[tokio::test]
async fn cancelling_a_paid_order_refunds_it_and_returns_the_stock() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 1_500, 4).await;
    let me = shopper_with_cart(&app, &teapot, 3).await;
    let order = checkout(&app, &me, "cancel-1", "pm_card_visa")
        .await
        .expect(201, None)
        .clone();
    assert_eq!(stock(&app, &teapot).await, 1);
    let id = order["id"].as_str().unwrap();
    let stranger = app.customer().await;
    cancel(&app, &stranger, id)
        .await
        .expect(404, Some("not_found"));
    let res = cancel(&app, &me, id).await;
    let body = res.expect(200, None);
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["payment"]["status"], "refunded");
    assert_eq!(stock(&app, &teapot).await, 4);
    cancel(&app, &me, id)
        .await
        .expect(409, Some("illegal_transition"));
}

#[tokio::test]
async fn checkout_refuses_bad_requests_and_changes_nothing() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 700, 2).await;
    let me = app.customer().await;
    checkout(&app, &me, "empty-1", "pm_card_visa")
        .await
        .expect(409, Some("cart_empty"));
    app.post(
        "/api/v1/cart/items",
        Some(&me.token),
        json!({"product_id": teapot, "quantity": 1}),
    )
    .await
    .expect(200, None);
    // No address given and none in the profile.
    let res = checkout(&app, &me, "noaddr-1", "pm_card_visa").await;
    assert_eq!(
        res.expect(422, Some("validation_failed"))["errors"][0]["field"],
        "shipping_address"
    );
    let res = app
        .send(
            app.http
                .post(app.url("/api/v1/checkout"))
                .bearer_auth(&me.token)
                .json(&json!({"payment_method": "pm_card_visa"})),
        )
        .await;
    res.expect(400, Some("idempotency_key_required"));
    let long_key = "k".repeat(256);
    checkout(&app, &me, &long_key, "pm_card_visa")
        .await
        .expect(400, Some("idempotency_key_invalid"));
    let res = app
        .send(
            app.http
                .post(app.url("/api/v1/checkout"))
                .bearer_auth(&me.token)
                .header("idempotency-key", "x")
                .json(&json!({"payment_method": 5})),
        )
        .await;
    res.expect(422, Some("validation_failed"));
    assert_eq!(stock(&app, &teapot).await, 2);
    assert_eq!(
        app.get("/api/v1/orders", Some(&me.token)).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // An address in the request is enough.
    let req = app
        .http
        .post(app.url("/api/v1/checkout"))
        .bearer_auth(&me.token)
        .header("idempotency-key", "with-address")
        .json(&json!({"payment_method": "pm_card_visa", "shipping_address": address()}));
    assert_eq!(
        app.send(req).await.expect(201, None)["shipping_address"]["country"],
        "US"
    );
}

#[tokio::test]
async fn admins_move_orders_along_the_lifecycle_only() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 300, 5).await;
    let me = shopper_with_cart(&app, &teapot, 1).await;
    let order = checkout(&app, &me, "life-1", "pm_card_visa")
        .await
        .expect(201, None)
        .clone();
    let path = format!("/api/v1/admin/orders/{}", order["id"].as_str().unwrap());
    app.patch(&path, Some(&me.token), json!({"status": "shipped"}))
        .await
        .expect(403, Some("forbidden"));
    app.patch(&path, Some(&admin.token), json!({"status": "delivered"}))
        .await
        .expect(409, Some("illegal_transition"));
    app.patch(&path, Some(&admin.token), json!({"status": "lost"}))
        .await
        .expect(422, Some("validation_failed"));
    assert_eq!(
        app.patch(&path, Some(&admin.token), json!({"status": "shipped"}))
            .await
            .expect(200, None)["status"],
        "shipped"
    );
    let cancel = format!("/api/v1/orders/{}/cancel", order["id"].as_str().unwrap());
    app.post(&cancel, Some(&me.token), json!({}))
        .await
        .expect(409, Some("illegal_transition"));
    assert_eq!(
        app.patch(&path, Some(&admin.token), json!({"status": "delivered"}))
            .await
            .expect(200, None)["status"],
        "delivered"
    );
    let list = app
        .get("/api/v1/admin/orders?status=delivered", Some(&admin.token))
        .await;
    assert_eq!(list.expect(200, None)["items"].as_array().unwrap().len(), 1);
    app.get("/api/v1/admin/orders?status=weird", Some(&admin.token))
        .await
        .expect(422, Some("validation_failed"));
    app.get("/api/v1/admin/orders", Some(&me.token))
        .await
        .expect(403, Some("forbidden"));
}
