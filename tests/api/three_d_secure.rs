//! Payments that need the shopper again (3-D Secure): the checkout answers with what the
//! client needs, the stock is held for the payment window, and the order settles by webhook,
//! by asking Stripe, by the shopper's cancel or by the window's end.

use std::time::Duration;

use serde_json::Value;
use souk::platform::LOCAL_STRIPE_SECRET_KEY;

use crate::checkout::{
    cancel, checkout, product, shopper_with_cart, stock, stock_becomes, wait_for_mail,
};
use crate::helpers::{App, Session, fast_recovery, short_payment_window};
use souk_testkit::eventually;

const THREE_DS: &str = "pm_card_threeDSecure2Required";

/// Completes (or fails) the 3-D Secure challenge as Stripe.js would, with the client secret.
async fn authenticate(app: &App, order: &Value, success: bool) {
    let stripe = app.platform.stripe.as_ref().expect("shop platform");
    let pi = order["payment"]["payment_intent_id"].as_str().unwrap();
    let secret = order["payment"]["client_secret"].as_str().unwrap();
    let res = app
        .http
        .post(format!(
            "{}v1/payment_intents/{pi}/_authenticate?success={success}",
            stripe.url()
        ))
        .bearer_auth(LOCAL_STRIPE_SECRET_KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("client_secret={secret}"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
}

/// The PaymentIntent's status at Stripe.
async fn intent_status(app: &App, order: &Value) -> String {
    let stripe = app.platform.stripe.as_ref().expect("shop platform");
    let pi = order["payment"]["payment_intent_id"].as_str().unwrap();
    let res = app
        .http
        .get(format!("{}v1/payment_intents/{pi}", stripe.url()))
        .bearer_auth(LOCAL_STRIPE_SECRET_KEY)
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    body["status"].as_str().unwrap().to_owned()
}

/// Waits for the order to reach `status`; returns it.
async fn order_becomes(app: &App, who: &Session, order: &Value, status: &str) -> Value {
    let path = format!("/api/v1/orders/{}", order["id"].as_str().unwrap());
    eventually(
        &format!("the order becomes {status}"),
        Duration::from_secs(20),
        async || app.get(&path, Some(&who.token)).await.body,
        |now| now["status"] == status,
    )
    .await
}

/// Stripe's webhooks stop reaching the shop (signed with a secret it does not know).
async fn lose_webhooks(app: &App) {
    let stripe = app.platform.stripe.as_ref().expect("shop platform");
    let url = format!("{}/api/v1/payments/webhook", app.platform.gateway());
    stripe
        .register_webhook(&url, "whsec_not_the_shops")
        .await
        .unwrap();
}

/// A 3-D Secure checkout of 2 teapots out of 5: 201 with the order waiting for the shopper.
async fn waiting_order(app: &App) -> (Session, String, Value) {
    let admin = app.admin().await;
    let teapot = product(app, &admin, 2_000, 5).await;
    let me = shopper_with_cart(app, &teapot, 2).await;
    let res = checkout(app, &me, "3ds-1", THREE_DS).await;
    let order = res.expect(201, None).clone();
    assert_eq!(order["status"], "pending", "{order}");
    assert_eq!(order["payment"]["status"], "requires_action");
    assert!(
        order["payment"]["client_secret"]
            .as_str()
            .unwrap()
            .starts_with(order["payment"]["payment_intent_id"].as_str().unwrap())
    );
    assert_eq!(order["payment"]["next_action"]["type"], "use_stripe_sdk");
    assert_eq!(stock(app, &teapot).await, 3, "held while the shopper pays");
    (me, teapot, order)
}

#[tokio::test]
async fn three_d_secure_success_pays_the_order_by_webhook() {
    let app = App::spawn_shop().await;
    let (me, teapot, order) = waiting_order(&app).await;
    // The stock is held for the payment window (20 min) plus a margin, not the default 15 min.
    let held: bool = sqlx::query_scalar(
        "SELECT expires_at > now() + interval '25 minutes' FROM reservations WHERE order_id = $1::uuid",
    )
    .bind(order["id"].as_str().unwrap())
    .fetch_one(&app.db("product").await)
    .await
    .unwrap();
    assert!(held, "the reservation is extended for the payment window");
    // The cart is still claimed by the waiting checkout.
    checkout(&app, &me, "3ds-other-tab", "pm_card_visa")
        .await
        .expect(409, Some("checkout_in_progress"));
    // The same key replays the waiting order.
    let again = checkout(&app, &me, "3ds-1", THREE_DS).await;
    assert_eq!(again.expect(201, None)["id"], order["id"]);

    authenticate(&app, &order, true).await;
    let paid = order_becomes(&app, &me, &order, "paid").await;
    assert_eq!(paid["payment"]["status"], "succeeded");
    assert!(paid["payment"].get("client_secret").is_none());
    assert_eq!(stock(&app, &teapot).await, 3);
    assert_eq!(wait_for_mail(&app, 1).await.len(), 1);
    let cart = app.get("/api/v1/cart", Some(&me.token)).await;
    assert!(cart.body["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn three_d_secure_failure_fails_the_order_and_gives_everything_back() {
    let app = App::spawn_shop().await;
    let (me, teapot, order) = waiting_order(&app).await;
    authenticate(&app, &order, false).await;
    let failed = order_becomes(&app, &me, &order, "payment_failed").await;
    assert_eq!(failed["payment"]["status"], "failed");
    stock_becomes(&app, &teapot, 5).await;
    // The cart is the shopper's again: another card buys it.
    let res = checkout(&app, &me, "3ds-retry", "pm_card_visa").await;
    assert_eq!(res.expect(201, None)["status"], "paid");
    assert_eq!(stock(&app, &teapot).await, 3);
}

#[tokio::test]
async fn the_cart_cannot_change_while_a_checkout_holds_it() {
    let app = App::spawn_shop().await;
    let (me, teapot, order) = waiting_order(&app).await;
    let token = Some(me.token.as_str());
    let line = format!("/api/v1/cart/items/{teapot}");
    let add = serde_json::json!({"product_id": teapot, "quantity": 1});
    let edits = [
        (
            "add",
            app.post("/api/v1/cart/items", token, add.clone()).await,
        ),
        (
            "quantity",
            app.patch(&line, token, serde_json::json!({"quantity": 1}))
                .await,
        ),
        ("remove", app.delete(&line, token).await),
        ("empty", app.delete("/api/v1/cart", token).await),
        (
            "drop code",
            app.delete("/api/v1/cart/promotion", token).await,
        ),
    ];
    for (what, res) in edits {
        let problem = res.expect(409, Some("checkout_in_progress"));
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains(order["id"].as_str().unwrap()),
            "{what}: {problem}"
        );
    }
    let cart = app.get("/api/v1/cart", token).await;
    assert_eq!(
        cart.expect(200, None)["items"][0]["quantity"],
        2,
        "unchanged"
    );
    // Once the order is cancelled the cart is the shopper's again.
    let id = order["id"].as_str().unwrap();
    cancel(&app, &me, id).await.expect(200, None);
    let added = app.post("/api/v1/cart/items", token, add).await;
    assert_eq!(added.expect(200, None)["items"][0]["quantity"], 3);
}

#[tokio::test]
async fn the_shoppers_cancel_cancels_the_payment_intent_first() {
    let app = App::spawn_shop().await;
    let (me, teapot, order) = waiting_order(&app).await;
    let id = order["id"].as_str().unwrap();
    let res = cancel(&app, &me, id).await;
    let cancelled = res.expect(200, None);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["payment"]["status"], "canceled");
    assert_eq!(intent_status(&app, &order).await, "canceled");
    assert_eq!(stock(&app, &teapot).await, 5);
    let cart = app.get("/api/v1/cart", Some(&me.token)).await;
    assert_eq!(
        cart.body["items"][0]["quantity"], 2,
        "the cart is given back"
    );
}

#[tokio::test]
async fn the_payment_window_ends_by_cancelling_at_stripe_then_releasing() {
    let app = App::spawn_shop_with(short_payment_window).await;
    let (me, teapot, order) = waiting_order(&app).await;
    let expired = order_becomes(&app, &me, &order, "cancelled").await;
    assert_eq!(expired["payment"]["status"], "canceled");
    assert_eq!(intent_status(&app, &order).await, "canceled");
    stock_becomes(&app, &teapot, 5).await;
    let released: String =
        sqlx::query_scalar("SELECT status FROM reservations WHERE order_id = $1::uuid")
            .bind(order["id"].as_str().unwrap())
            .fetch_one(&app.db("product").await)
            .await
            .unwrap();
    assert_eq!(released, "released");
}

#[tokio::test]
async fn a_success_that_arrives_after_the_cancel_is_refunded() {
    // No webhook, and no poll before the shopper cancels: the shop learns of the success
    // only when Stripe refuses to cancel the PaymentIntent.
    let app = App::spawn_shop_with(|c| c.order.payment_poll = Duration::from_secs(3600)).await;
    let (me, teapot, order) = waiting_order(&app).await;
    lose_webhooks(&app).await;
    authenticate(&app, &order, true).await;
    let id = order["id"].as_str().unwrap();
    let res = cancel(&app, &me, id).await;
    let cancelled = res.expect(200, None);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["payment"]["status"], "refunded");
    assert_eq!(cancelled["payment"]["amount_refunded_cents"], 4_000);
    assert_eq!(intent_status(&app, &order).await, "succeeded");
    let refunds: i64 =
        sqlx::query_scalar("SELECT count(*) FROM payments WHERE refund_id IS NOT NULL")
            .fetch_one(&app.db("payment").await)
            .await
            .unwrap();
    assert_eq!(refunds, 1);
    assert_eq!(stock(&app, &teapot).await, 5);
    assert!(
        app.mail().is_empty(),
        "no confirmation for a refunded order"
    );
}

#[tokio::test]
async fn a_lost_webhook_is_settled_by_asking_stripe() {
    let app = App::spawn_shop_with(|c| {
        c.order.payment_poll = Duration::from_secs(1);
        fast_recovery(c);
    })
    .await;
    let (me, teapot, order) = waiting_order(&app).await;
    lose_webhooks(&app).await;
    authenticate(&app, &order, true).await;
    let paid = order_becomes(&app, &me, &order, "paid").await;
    assert_eq!(paid["payment"]["status"], "succeeded");
    assert_eq!(stock(&app, &teapot).await, 3);
    assert_eq!(wait_for_mail(&app, 1).await.len(), 1);
}
