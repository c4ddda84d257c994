//! Promotion codes: admin endpoints, the cart's discount, and redemption at checkout that holds
//! under concurrency (a single-use code, `usage_limit`, `per_customer_limit`) and is given back
//! exactly once by an order that fails, is cancelled, or dies half-way.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};

use crate::checkout::{
    cancel, charges, checkout, product, race_to_checkout, shopper_with_cart, stock, wait_for_mail,
    wait_until_settled,
};
use crate::helpers::{App, Resp, Session, fast_recovery, short_payment_window};

/// Creates a promotion (201); returns it.
async fn promotion(app: &App, admin: &Session, body: Value) -> Value {
    app.post("/api/v1/promotions", Some(&admin.token), body)
        .await
        .expect(201, None)
        .clone()
}

async fn single_use_codes(
    app: &App,
    admin: &Session,
    promotion: &Value,
    count: i64,
) -> Vec<String> {
    let id = promotion["id"].as_str().unwrap();
    let res = app
        .post(
            &format!("/api/v1/promotions/{id}/codes"),
            Some(&admin.token),
            json!({ "count": count }),
        )
        .await;
    res.expect(201, None)["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

async fn reload(app: &App, admin: &Session, promotion: &Value) -> Value {
    let id = promotion["id"].as_str().unwrap();
    app.get(&format!("/api/v1/promotions/{id}"), Some(&admin.token))
        .await
        .expect(200, None)
        .clone()
}

async fn apply(app: &App, who: &Session, code: &str) -> Resp {
    app.put(
        "/api/v1/cart/promotion",
        Some(&who.token),
        json!({ "code": code }),
    )
    .await
}

/// The amount of the one payment of `order`.
async fn charged(app: &App, order: &str) -> i64 {
    sqlx::query_scalar("SELECT amount_cents FROM payments WHERE order_id = $1::uuid")
        .bind(order)
        .fetch_one(&app.db("payment").await)
        .await
        .unwrap()
}

#[tokio::test]
async fn admin_endpoints_validate_and_are_for_admins_only() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let shopper = app.customer().await;
    let created = promotion(
        &app,
        &admin,
        json!({"code": "Summer-25", "kind": "percent", "value": 25, "usage_limit": 10}),
    )
    .await;
    assert_eq!(created["code"], "Summer-25");
    assert_eq!(created["redemptions"], 0);
    assert_eq!(created["active"], true);

    // Codes are unique whatever their case.
    app.post(
        "/api/v1/promotions",
        Some(&admin.token),
        json!({"code": "SUMMER-25", "kind": "amount", "value": 500}),
    )
    .await
    .expect(409, Some("code_taken"));
    let now = Utc::now();
    for (body, field) in [
        (
            json!({"code": "PCT-0", "kind": "percent", "value": 0}),
            "value",
        ),
        (
            json!({"code": "PCT-101", "kind": "percent", "value": 101}),
            "value",
        ),
        (
            json!({"code": "AMT-0", "kind": "amount", "value": 0}),
            "value",
        ),
        (
            json!({"code": "KIND-1", "kind": "bogo", "value": 5}),
            "kind",
        ),
        (
            json!({"code": "has space", "kind": "amount", "value": 5}),
            "code",
        ),
        (
            json!({"code": "WIN1", "kind": "amount", "value": 5,
                   "starts_at": now, "ends_at": now - chrono::Duration::hours(1)}),
            "ends_at",
        ),
        (
            json!({"code": "LIM1", "kind": "amount", "value": 5, "usage_limit": 0}),
            "usage_limit",
        ),
        (
            json!({"code": "LIM2", "kind": "amount", "value": 5, "per_customer_limit": -1}),
            "per_customer_limit",
        ),
    ] {
        let res = app
            .post("/api/v1/promotions", Some(&admin.token), body)
            .await;
        let problem = res.expect(422, Some("validation_failed"));
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    // A float where cents are expected is the wrong type: 422 too.
    app.post(
        "/api/v1/promotions",
        Some(&admin.token),
        json!({"code": "FLOAT", "kind": "amount", "value": 1.5}),
    )
    .await
    .expect(422, None);

    let id = created["id"].as_str().unwrap();
    let codes_path = format!("/api/v1/promotions/{id}/codes");
    for count in [0, 10_001] {
        app.post(&codes_path, Some(&admin.token), json!({ "count": count }))
            .await
            .expect(422, Some("validation_failed"));
    }
    let codes = single_use_codes(&app, &admin, &created, 50).await;
    assert_eq!(codes.len(), 50);
    let mut unique = codes.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 50);
    for code in &codes {
        assert!(code.len() >= 10, "{code}");
        assert!(
            code.chars()
                .all(|c| c.is_ascii_alphanumeric() && !"0O1IL".contains(c)),
            "no ambiguous characters: {code}"
        );
    }
    // A generated code cannot become another promotion's code either.
    app.post(
        "/api/v1/promotions",
        Some(&admin.token),
        json!({"code": codes[0].to_lowercase(), "kind": "amount", "value": 100}),
    )
    .await
    .expect(409, Some("code_taken"));
    assert_eq!(reload(&app, &admin, &created).await["single_use_codes"], 50);

    let changed = app
        .patch(
            &format!("/api/v1/promotions/{id}"),
            Some(&admin.token),
            json!({"active": false, "usage_limit": null, "ends_at": now + chrono::Duration::days(1)}),
        )
        .await;
    let changed = changed.expect(200, None);
    assert_eq!(changed["active"], false);
    assert_eq!(changed["usage_limit"], Value::Null);
    assert!(changed["ends_at"].is_string());
    app.patch(
        &format!("/api/v1/promotions/{id}"),
        Some(&admin.token),
        json!({"usage_limit": 0}),
    )
    .await
    .expect(422, Some("validation_failed"));

    promotion(
        &app,
        &admin,
        json!({"code": "SECOND", "kind": "amount", "value": 100}),
    )
    .await;
    let page = app
        .get("/api/v1/promotions?limit=1", Some(&admin.token))
        .await;
    let page = page.expect(200, None);
    assert_eq!(page["items"][0]["code"], "SECOND", "newest first");
    let cursor = page["next_cursor"].as_str().expect("a second page");
    let next = app
        .get(
            &format!("/api/v1/promotions?limit=1&cursor={cursor}"),
            Some(&admin.token),
        )
        .await;
    assert_eq!(next.expect(200, None)["items"][0]["code"], "Summer-25");
    app.get("/api/v1/promotions/not-an-id", Some(&admin.token))
        .await
        .expect(404, None);

    // Customers may not touch any of it; nobody signed out may either.
    app.get("/api/v1/promotions", Some(&shopper.token))
        .await
        .expect(403, Some("forbidden"));
    app.get(&format!("/api/v1/promotions/{id}"), Some(&shopper.token))
        .await
        .expect(403, Some("forbidden"));
    app.post(
        "/api/v1/promotions",
        Some(&shopper.token),
        json!({"code": "MINE", "kind": "percent", "value": 100}),
    )
    .await
    .expect(403, Some("forbidden"));
    app.post(&codes_path, Some(&shopper.token), json!({"count": 1}))
        .await
        .expect(403, Some("forbidden"));
    app.patch(
        &format!("/api/v1/promotions/{id}"),
        Some(&shopper.token),
        json!({"active": true}),
    )
    .await
    .expect(403, Some("forbidden"));
    app.get("/api/v1/promotions", None).await.expect(401, None);
}

#[tokio::test]
async fn the_cart_shows_the_discount_and_codes_ignore_case() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 2_000, 10).await;
    let me = shopper_with_cart(&app, &teapot, 1).await;
    promotion(
        &app,
        &admin,
        json!({"code": "Save10", "kind": "percent", "value": 10}),
    )
    .await;
    promotion(
        &app,
        &admin,
        json!({"code": "BIGSPEND", "kind": "amount", "value": 1000, "min_subtotal_cents": 5000}),
    )
    .await;
    promotion(
        &app,
        &admin,
        json!({"code": "LATER", "kind": "amount", "value": 100,
               "starts_at": Utc::now() + chrono::Duration::days(1)}),
    )
    .await;
    let other = product(&app, &admin, 500, 10).await;
    promotion(
        &app,
        &admin,
        json!({"code": "OTHERONLY", "kind": "percent", "value": 50, "product_ids": [other]}),
    )
    .await;

    let cart = apply(&app, &me, "  sAvE10 ").await;
    let cart = cart.expect(200, None);
    assert_eq!(cart["promotion"]["code"], "Save10");
    assert_eq!(cart["promotion"]["kind"], "percent");
    assert_eq!(cart["promotion"]["value"], 10);
    assert_eq!(cart["promotion"]["applicable"], true);
    assert_eq!(cart["discount_cents"], 200);
    assert_eq!(cart["total_cents"], 1_800);
    let shown = app.get("/api/v1/cart", Some(&me.token)).await;
    assert_eq!(shown.expect(200, None)["discount_cents"], 200);

    apply(&app, &me, "NOPE")
        .await
        .expect(404, Some("promotion_not_found"));
    for (code, reason) in [
        ("bigspend", "min_subtotal"),
        ("later", "not_started"),
        ("otheronly", "no_eligible_items"),
    ] {
        let res = apply(&app, &me, code).await;
        assert_eq!(
            res.expect(422, Some("promotion_not_applicable"))["reason"],
            reason
        );
    }
    // A refused code leaves the applied one alone.
    let shown = app.get("/api/v1/cart", Some(&me.token)).await;
    assert_eq!(shown.body["promotion"]["code"], "Save10");
    apply(&app, &me, "")
        .await
        .expect(422, Some("validation_failed"));

    // A cart that changes is priced again: the code stays, the discount follows the cart.
    app.patch(
        &format!("/api/v1/cart/items/{teapot}"),
        Some(&me.token),
        json!({"quantity": 3}),
    )
    .await
    .expect(200, None);
    let shown = app.get("/api/v1/cart", Some(&me.token)).await;
    assert_eq!(shown.body["discount_cents"], 600);
    // Now over the minimum.
    let big = apply(&app, &me, "BIGSPEND").await;
    assert_eq!(big.expect(200, None)["discount_cents"], 1_000);

    // A code that stops applying stays shown, as not applicable, with no discount.
    app.patch(
        &format!("/api/v1/cart/items/{teapot}"),
        Some(&me.token),
        json!({"quantity": 1}),
    )
    .await
    .expect(200, None);
    let shown = app.get("/api/v1/cart", Some(&me.token)).await;
    let shown = shown.expect(200, None);
    assert_eq!(shown["promotion"]["applicable"], false);
    assert_eq!(shown["promotion"]["reason"], "min_subtotal");
    assert_eq!(shown["discount_cents"], 0);
    assert_eq!(shown["total_cents"], 2_000);

    let removed = app.delete("/api/v1/cart/promotion", Some(&me.token)).await;
    let removed = removed.expect(200, None);
    assert_eq!(removed["promotion"], Value::Null);
    assert_eq!(removed["discount_cents"], 0);
}

#[tokio::test]
async fn thirty_three_percent_of_three_lines_is_rounded_once_and_shared_exactly() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let a = product(&app, &admin, 1_999, 10).await;
    let b = product(&app, &admin, 333, 10).await;
    let c = product(&app, &admin, 101, 10).await;
    let me = shopper_with_cart(&app, &a, 1).await;
    for (id, quantity) in [(&b, 2), (&c, 3)] {
        app.post(
            "/api/v1/cart/items",
            Some(&me.token),
            json!({"product_id": id, "quantity": quantity}),
        )
        .await
        .expect(200, None);
    }
    let promo = promotion(
        &app,
        &admin,
        json!({"code": "THIRD", "kind": "percent", "value": 33}),
    )
    .await;
    // 2968 * 33 % = 979.44 -> 979, shared 659.37 / 219.68 / 99.95 by largest remainder.
    let cart = apply(&app, &me, "third").await;
    assert_eq!(cart.expect(200, None)["discount_cents"], 979);
    let order = checkout(&app, &me, "thirds", "pm_card_visa").await;
    let order = order.expect(201, None).clone();
    assert_eq!(order["status"], "paid");
    assert_eq!(order["promotion_code"], "THIRD");
    assert_eq!(order["subtotal_cents"], 2_968);
    assert_eq!(order["discount_cents"], 979);
    assert_eq!(order["total_cents"], 1_989);
    let share = |id: &str| {
        order["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["product_id"] == id)
            .unwrap()["discount_cents"]
            .as_i64()
            .unwrap()
    };
    assert_eq!((share(&a), share(&b), share(&c)), (659, 220, 100));
    let id = order["id"].as_str().unwrap();
    assert_eq!(
        charged(&app, id).await,
        1_989,
        "Stripe charged the discounted total"
    );
    // A retry with the same key is the same order and redeems nothing more.
    let again = checkout(&app, &me, "thirds", "pm_card_visa").await;
    assert_eq!(again.expect(201, None)["id"], order["id"]);
    assert_eq!(reload(&app, &admin, &promo).await["redemptions"], 1);
    // The code was spent with the cart.
    let cart = app.get("/api/v1/cart", Some(&me.token)).await;
    assert_eq!(cart.body["promotion"], Value::Null);
    // Cancelling refunds what was charged: the lines' totals after their shares.
    let cancelled = cancel(&app, &me, id).await;
    let cancelled = cancelled.expect(200, None);
    assert_eq!(cancelled["payment"]["amount_refunded_cents"], 1_989);
    assert_eq!(reload(&app, &admin, &promo).await["redemptions"], 0);
}

#[tokio::test]
async fn a_promotion_for_some_products_leaves_the_other_lines_alone() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let cheap = product(&app, &admin, 700, 10).await;
    let other = product(&app, &admin, 900, 10).await;
    let me = shopper_with_cart(&app, &cheap, 2).await;
    app.post(
        "/api/v1/cart/items",
        Some(&me.token),
        json!({"product_id": other, "quantity": 1}),
    )
    .await
    .expect(200, None);
    // An amount larger than the eligible lines takes them to zero, never below.
    promotion(
        &app,
        &admin,
        json!({"code": "CHEAPFREE", "kind": "amount", "value": 100000, "product_ids": [cheap]}),
    )
    .await;
    apply(&app, &me, "CHEAPFREE").await.expect(200, None);
    let order = checkout(&app, &me, "some", "pm_card_visa").await;
    let order = order.expect(201, None);
    assert_eq!(order["discount_cents"], 1_400);
    assert_eq!(order["total_cents"], 900);
    for line in order["items"].as_array().unwrap() {
        let expected = if line["product_id"] == cheap.as_str() {
            1_400
        } else {
            0
        };
        assert_eq!(line["discount_cents"], expected, "{line}");
    }
}

#[tokio::test]
async fn forty_shoppers_one_single_use_code_one_redemption() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    const SHOPPERS: usize = 40;
    let teapot = product(&app, &admin, 1_000, 100).await;
    let promo = promotion(
        &app,
        &admin,
        json!({"code": "LAUNCH-SECRET", "kind": "percent", "value": 20}),
    )
    .await;
    let code = single_use_codes(&app, &admin, &promo, 1).await.remove(0);
    let mut shoppers = Vec::new();
    for _ in 0..SHOPPERS {
        let s = shopper_with_cart(&app, &teapot, 1).await;
        // Everyone sees the code apply: nobody has used it yet.
        apply(&app, &s, &code.to_lowercase())
            .await
            .expect(200, None);
        shoppers.push(s);
    }
    let started = Instant::now();
    let results = race_to_checkout(&app, &shoppers, "one-code", 1, "promotion_unavailable").await;
    assert!(started.elapsed() < Duration::from_secs(30));
    let paid: Vec<&Value> = results
        .iter()
        .filter(|r| r.status == 201)
        .map(|r| &r.body)
        .collect();
    assert_eq!(paid[0]["discount_cents"], 200);
    assert_eq!(paid[0]["total_cents"], 800);
    // Nothing reserved or charged for the refused: stock and payments count the one order.
    assert_eq!(stock(&app, &teapot).await, 99);
    assert_eq!(charges(&app).await, 1, "one PaymentIntent only");
    let promo = reload(&app, &admin, &promo).await;
    assert_eq!(promo["redemptions"], 1);
    assert_eq!(promo["single_use_codes_used"], 1);
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&app.db("order").await)
        .await
        .unwrap();
    assert_eq!(orders, 1, "the refused checkouts left no order behind");
    // A refused shopper keeps the cart and can buy without the code.
    let loser = shoppers
        .iter()
        .zip(&results)
        .find(|(_, r)| r.status == 409)
        .unwrap()
        .0;
    let cart = app.get("/api/v1/cart", Some(&loser.token)).await;
    assert_eq!(cart.body["promotion"]["reason"], "exhausted");
    app.delete("/api/v1/cart/promotion", Some(&loser.token))
        .await
        .expect(200, None);
    let bought = checkout(&app, loser, "without-code", "pm_card_visa").await;
    assert_eq!(bought.expect(201, None)["discount_cents"], 0);
}

#[tokio::test]
async fn usage_limit_holds_under_concurrency() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 1_000, 100).await;
    let promo = promotion(
        &app,
        &admin,
        json!({"code": "FIRST3", "kind": "amount", "value": 250, "usage_limit": 3}),
    )
    .await;
    let mut shoppers = Vec::new();
    for _ in 0..12 {
        let s = shopper_with_cart(&app, &teapot, 1).await;
        apply(&app, &s, "first3").await.expect(200, None);
        shoppers.push(s);
    }
    race_to_checkout(&app, &shoppers, "limited", 3, "promotion_unavailable").await;
    assert_eq!(stock(&app, &teapot).await, 97);
    assert_eq!(charges(&app).await, 3);
    assert_eq!(reload(&app, &admin, &promo).await["redemptions"], 3);
}

#[tokio::test]
async fn one_shopper_with_a_limit_of_one_gets_it_once() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 1_000, 100).await;
    let promo = promotion(
        &app,
        &admin,
        json!({"code": "ONCE", "kind": "percent", "value": 50, "per_customer_limit": 1}),
    )
    .await;
    let me = shopper_with_cart(&app, &teapot, 1).await;
    apply(&app, &me, "once").await.expect(200, None);
    // Two tabs at once: one checkout gets the cart (and the code), the other is turned away.
    let (a, b) = tokio::join!(
        checkout(&app, &me, "tab-a", "pm_card_visa"),
        checkout(&app, &me, "tab-b", "pm_card_visa")
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{} / {}", a.body, b.body);
    let won = if a.status == 201 { &a.body } else { &b.body };
    assert_eq!(won["discount_cents"], 500);
    // The next order may not use it again: refused in the cart...
    app.post(
        "/api/v1/cart/items",
        Some(&me.token),
        json!({"product_id": teapot, "quantity": 1}),
    )
    .await
    .expect(200, None);
    let res = apply(&app, &me, "ONCE").await;
    assert_eq!(
        res.expect(422, Some("promotion_not_applicable"))["reason"],
        "customer_limit"
    );
    // ...and at checkout, when a stale tab had stored it before the first order was paid.
    sqlx::query("INSERT INTO cart_promotions (user_id, code) VALUES ($1::uuid, 'ONCE')")
        .bind(&me.id)
        .execute(&app.db("cart").await)
        .await
        .unwrap();
    let before = stock(&app, &teapot).await;
    let res = checkout(&app, &me, "stale-tab", "pm_card_visa").await;
    assert_eq!(
        res.expect(409, Some("promotion_unavailable"))["reason"],
        "customer_limit"
    );
    assert_eq!(stock(&app, &teapot).await, before, "nothing reserved");
    assert_eq!(charges(&app).await, 1);
    assert_eq!(reload(&app, &admin, &promo).await["redemptions"], 1);
    // Another shopper still may.
    let other = shopper_with_cart(&app, &teapot, 1).await;
    apply(&app, &other, "once").await.expect(200, None);
}

#[tokio::test]
async fn a_code_that_expires_between_cart_and_checkout_is_refused() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 1_000, 5).await;
    let ends = Utc::now() + chrono::Duration::seconds(2);
    promotion(
        &app,
        &admin,
        json!({"code": "FLASH", "kind": "percent", "value": 30, "ends_at": ends}),
    )
    .await;
    let me = shopper_with_cart(&app, &teapot, 2).await;
    apply(&app, &me, "flash").await.expect(200, None);
    let wait = (ends - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(300);
    tokio::time::sleep(wait).await;
    let res = checkout(&app, &me, "too-late", "pm_card_visa").await;
    assert_eq!(
        res.expect(409, Some("promotion_unavailable"))["reason"],
        "expired"
    );
    assert_eq!(stock(&app, &teapot).await, 5, "nothing reserved");
    assert_eq!(charges(&app).await, 0, "nothing charged");
    let cart = app.get("/api/v1/cart", Some(&me.token)).await;
    let cart = cart.expect(200, None);
    assert_eq!(
        cart["items"].as_array().unwrap().len(),
        1,
        "the cart is kept"
    );
    assert_eq!(cart["promotion"]["applicable"], false);
    assert_eq!(cart["promotion"]["reason"], "expired");
    // The same key again after removing the code: a fresh attempt (nothing was kept).
    app.delete("/api/v1/cart/promotion", Some(&me.token))
        .await
        .expect(200, None);
    let res = checkout(&app, &me, "too-late", "pm_card_visa").await;
    assert_eq!(res.expect(201, None)["total_cents"], 2_000);
}

#[tokio::test]
async fn a_free_order_is_paid_without_a_charge() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 1_234, 5).await;
    let promo = promotion(
        &app,
        &admin,
        json!({"code": "ONTHEHOUSE", "kind": "percent", "value": 100}),
    )
    .await;
    let me = shopper_with_cart(&app, &teapot, 2).await;
    let cart = apply(&app, &me, "onthehouse").await;
    assert_eq!(cart.expect(200, None)["total_cents"], 0);
    let order = checkout(&app, &me, "free", "pm_card_visa").await;
    let order = order.expect(201, None).clone();
    assert_eq!(order["status"], "paid");
    assert_eq!(order["total_cents"], 0);
    assert_eq!(order["discount_cents"], 2_468);
    assert_eq!(order["payment"]["status"], "not_required");
    assert_eq!(order["payment"]["payment_intent_id"], Value::Null);
    assert_eq!(charges(&app).await, 0, "no PaymentIntent for a total of 0");
    assert_eq!(stock(&app, &teapot).await, 3);
    assert_eq!(
        wait_for_mail(&app, 1).await.len(),
        1,
        "the confirmation is sent"
    );
    // Cancelling it needs no refund: stock and redemption come back.
    let id = order["id"].as_str().unwrap();
    let cancelled = cancel(&app, &me, id).await;
    let cancelled = cancelled.expect(200, None);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["payment"]["amount_refunded_cents"], 0);
    assert_eq!(stock(&app, &teapot).await, 5);
    assert_eq!(reload(&app, &admin, &promo).await["redemptions"], 0);
}

#[tokio::test]
async fn a_declined_card_gives_the_redemption_back() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 1_000, 5).await;
    let promo = promotion(
        &app,
        &admin,
        json!({"code": "JUSTONE", "kind": "amount", "value": 300, "usage_limit": 1}),
    )
    .await;
    let me = shopper_with_cart(&app, &teapot, 1).await;
    apply(&app, &me, "JUSTONE").await.expect(200, None);
    let res = checkout(&app, &me, "declined", "pm_card_chargeDeclined").await;
    let order = &res.expect(402, Some("payment_failed"))["order"];
    assert_eq!(order["discount_cents"], 300);
    assert_eq!(reload(&app, &admin, &promo).await["redemptions"], 0);
    // The only use is free again: this shopper (another card) gets it.
    let res = checkout(&app, &me, "visa", "pm_card_visa").await;
    let order = res.expect(201, None);
    assert_eq!(order["total_cents"], 700);
    assert_eq!(reload(&app, &admin, &promo).await["redemptions"], 1);
    let released: i64 =
        sqlx::query_scalar("SELECT count(*) FROM redemptions WHERE state = 'released'")
            .fetch_one(&app.db("order").await)
            .await
            .unwrap();
    assert_eq!(released, 1, "given back exactly once");
}

#[tokio::test]
async fn cancelling_a_paid_order_gives_its_single_use_code_back() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 1_000, 5).await;
    let promo = promotion(
        &app,
        &admin,
        json!({"code": "VIP-BATCH", "kind": "percent", "value": 10}),
    )
    .await;
    let code = single_use_codes(&app, &admin, &promo, 1).await.remove(0);
    let me = shopper_with_cart(&app, &teapot, 1).await;
    apply(&app, &me, &code).await.expect(200, None);
    let order = checkout(&app, &me, "vip", "pm_card_visa").await;
    let id = order.expect(201, None)["id"].as_str().unwrap().to_owned();
    let other = shopper_with_cart(&app, &teapot, 1).await;
    let res = apply(&app, &other, &code).await;
    assert_eq!(
        res.expect(422, Some("promotion_not_applicable"))["reason"],
        "exhausted"
    );
    let cancelled = cancel(&app, &me, &id).await;
    assert_eq!(
        cancelled.expect(200, None)["payment"]["amount_refunded_cents"],
        900
    );
    let promo_now = reload(&app, &admin, &promo).await;
    assert_eq!(promo_now["redemptions"], 0);
    assert_eq!(promo_now["single_use_codes_used"], 0);
    apply(&app, &other, &code).await.expect(200, None);
    let res = checkout(&app, &other, "second-owner", "pm_card_visa").await;
    assert_eq!(res.expect(201, None)["discount_cents"], 100);
}

#[tokio::test]
async fn a_crash_after_redemption_and_before_payment_gives_it_back() {
    let app = App::spawn_shop_with(|c| {
        c.order.fault = Some(souk_order::FaultPoint::AfterReservation);
        fast_recovery(c);
    })
    .await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 1_000, 5).await;
    let promo = promotion(
        &app,
        &admin,
        json!({"code": "CRASHY", "kind": "percent", "value": 10}),
    )
    .await;
    let code = single_use_codes(&app, &admin, &promo, 1).await.remove(0);
    let me = shopper_with_cart(&app, &teapot, 2).await;
    apply(&app, &me, &code).await.expect(200, None);
    let res = checkout(&app, &me, "crash", "pm_card_visa").await;
    assert!(res.status.is_server_error(), "{} {}", res.status, res.body);
    // Redeemed and reserved, not charged: recovery cancels the order and gives both back.
    wait_until_settled(&app).await;
    let orders = app.get("/api/v1/orders", Some(&me.token)).await;
    assert_eq!(orders.body["items"][0]["status"], "cancelled");
    assert_eq!(stock(&app, &teapot).await, 5);
    assert_eq!(charges(&app).await, 0);
    let promo_now = reload(&app, &admin, &promo).await;
    assert_eq!(promo_now["redemptions"], 0);
    assert_eq!(promo_now["single_use_codes_used"], 0);
    // The code and the cart work again.
    let res = checkout(&app, &me, "after-crash", "pm_card_visa").await;
    let order = res.expect(201, None);
    assert_eq!(order["status"], "paid");
    assert_eq!(order["discount_cents"], 200);
    assert_eq!(reload(&app, &admin, &promo).await["redemptions"], 1);
}

#[tokio::test]
async fn a_three_d_secure_payment_that_expires_gives_the_redemption_back() {
    let app = App::spawn_shop_with(short_payment_window).await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 2_000, 5).await;
    let promo = promotion(
        &app,
        &admin,
        json!({"code": "WAITING", "kind": "amount", "value": 500, "usage_limit": 1}),
    )
    .await;
    let me = shopper_with_cart(&app, &teapot, 1).await;
    apply(&app, &me, "waiting").await.expect(200, None);
    let res = checkout(&app, &me, "3ds", "pm_card_threeDSecure2Required").await;
    let order = res.expect(201, None).clone();
    assert_eq!(order["payment"]["status"], "requires_action");
    assert_eq!(order["total_cents"], 1_500);
    assert_eq!(
        reload(&app, &admin, &promo).await["redemptions"],
        1,
        "held while waiting"
    );
    // The window ends: the PaymentIntent is cancelled, the stock and the redemption come back.
    wait_until_settled(&app).await;
    let id = order["id"].as_str().unwrap();
    let now = app
        .get(&format!("/api/v1/orders/{id}"), Some(&me.token))
        .await;
    assert_eq!(now.expect(200, None)["status"], "cancelled");
    assert_eq!(stock(&app, &teapot).await, 5);
    assert_eq!(reload(&app, &admin, &promo).await["redemptions"], 0);
}
