//! One cart, one purchase: concurrent checkouts of the same cart with different
//! Idempotency-Keys (a double click, two tabs) buy it once.

use serde_json::json;

use crate::checkout::{checkout, product, shopper_with_cart, stock};
use crate::helpers::App;

async fn payments(app: &App) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM payments WHERE status = 'succeeded'")
        .fetch_one(&app.db("payment").await)
        .await
        .unwrap()
}

#[tokio::test]
async fn concurrent_checkouts_of_one_cart_buy_it_once() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    const ROUNDS: i64 = 8;
    const CLICKS: usize = 4;
    const PER_CART: i64 = 2;
    let initial = 100;
    let teapot = product(&app, &admin, 1_250, initial).await;
    let me = shopper_with_cart(&app, &teapot, PER_CART).await;
    for round in 0..ROUNDS {
        if round > 0 {
            app.post(
                "/api/v1/cart/items",
                Some(&me.token),
                json!({"product_id": teapot, "quantity": PER_CART}),
            )
            .await
            .expect(200, None);
        }
        let keys: Vec<String> = (0..CLICKS).map(|i| format!("r{round}-click{i}")).collect();
        let results =
            futures::future::join_all(keys.iter().map(|k| checkout(&app, &me, k, "pm_card_visa")))
                .await;
        let mut paid = 0;
        for r in &results {
            match r.status.as_u16() {
                201 => {
                    assert_eq!(r.body["status"], "paid", "{}", r.body);
                    assert_eq!(r.body["items"][0]["quantity"], PER_CART);
                    paid += 1;
                }
                409 => assert!(
                    r.body["code"] == "checkout_in_progress" || r.body["code"] == "cart_empty",
                    "round {round}: {}",
                    r.body
                ),
                other => panic!("round {round}: unexpected {other}: {}", r.body),
            }
        }
        assert_eq!(paid, 1, "round {round}: exactly one checkout buys the cart");
        let cart = app.get("/api/v1/cart", Some(&me.token)).await;
        assert!(cart.body["items"].as_array().unwrap().is_empty());
        checkout(&app, &me, &format!("r{round}-late"), "pm_card_visa")
            .await
            .expect(409, Some("cart_empty"));
    }
    assert_eq!(stock(&app, &teapot).await, initial - ROUNDS * PER_CART);
    assert_eq!(payments(&app).await, ROUNDS);
    let orders = app.get("/api/v1/orders?limit=100", Some(&me.token)).await;
    let bought: i64 = orders.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["status"] == "paid")
        .map(|o| o["items"][0]["quantity"].as_i64().unwrap())
        .sum();
    assert_eq!(
        bought,
        ROUNDS * PER_CART,
        "paid quantity never exceeds the carts"
    );
}

#[tokio::test]
async fn a_checkout_that_fails_before_charging_gives_the_cart_back() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 900, 1).await;
    let me = shopper_with_cart(&app, &teapot, 1).await;
    // Someone else buys the last teapot while it sits in this cart.
    let other = shopper_with_cart(&app, &teapot, 1).await;
    checkout(&app, &other, "first", "pm_card_visa")
        .await
        .expect(201, None);
    checkout(&app, &me, "too-late", "pm_card_visa")
        .await
        .expect(409, Some("insufficient_stock"));
    // A declined card, too: the cart stays, and is not held by the failed checkout.
    app.put(
        &format!("/api/v1/products/{teapot}/stock"),
        Some(&admin.token),
        json!({"stock": 1}),
    )
    .await
    .expect(200, None);
    checkout(&app, &me, "declined", "pm_card_chargeDeclined")
        .await
        .expect(402, Some("payment_failed"));
    let cart = app.get("/api/v1/cart", Some(&me.token)).await;
    assert_eq!(cart.body["items"][0]["quantity"], 1);
    let paid = checkout(&app, &me, "retry", "pm_card_visa").await;
    assert_eq!(paid.expect(201, None)["status"], "paid");
    assert_eq!(stock(&app, &teapot).await, 0);
}
