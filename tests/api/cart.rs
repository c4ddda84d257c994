//! The cart through the gateway: lines, merging, limits, stock, privacy, and what happens while
//! the product service is down.

use reqwest::Method;
use serde_json::{Value, json};
use souk_common::caller::Caller;

use crate::catalog::create_product;
use crate::helpers::App;
use crate::reservations::direct;

fn line<'a>(cart: &'a Value, product: &str) -> Option<&'a Value> {
    cart["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["product_id"] == product)
}

#[tokio::test]
async fn cart_lines_follow_the_catalog() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let me = app.customer().await;
    let t = Some(me.token.as_str());
    let mug = create_product(&app, &admin.token, "MUG-1", 800, 5, &[]).await;
    let rug = create_product(&app, &admin.token, "RUG-1", 12000, 1, &[]).await;
    let (mug_id, rug_id) = (mug["id"].as_str().unwrap(), rug["id"].as_str().unwrap());

    app.get("/api/v1/cart", None)
        .await
        .expect(401, Some("unauthorized"));
    let empty = app.get("/api/v1/cart", t).await;
    let empty = empty.expect(200, None);
    assert_eq!(empty["items"], json!([]));
    assert_eq!(empty["subtotal_cents"], 0);
    assert_eq!(empty["currency"], "usd");

    // Add, then re-add merges into the same line.
    let cart = app
        .post(
            "/api/v1/cart/items",
            t,
            json!({"product_id": mug_id, "quantity": 2}),
        )
        .await;
    let cart = cart.expect(200, None);
    assert_eq!(line(cart, mug_id).unwrap()["quantity"], 2);
    let cart = app
        .post(
            "/api/v1/cart/items",
            t,
            json!({"product_id": mug_id, "quantity": 1}),
        )
        .await;
    let cart = cart.expect(200, None).clone();
    assert_eq!(cart["items"].as_array().unwrap().len(), 1);
    let l = line(&cart, mug_id).unwrap();
    assert_eq!(l["quantity"], 3);
    assert_eq!(l["name"], "Product MUG-1");
    assert_eq!(l["unit_price_cents"], 800);
    assert_eq!(l["line_total_cents"], 2400);
    assert_eq!(l["price_stale"], false);
    assert_eq!(cart["subtotal_cents"], 2400);
    assert_eq!(cart["prices_stale"], false);

    // Over stock: the whole line counts (3 + 3 > 5).
    app.post(
        "/api/v1/cart/items",
        t,
        json!({"product_id": mug_id, "quantity": 3}),
    )
    .await
    .expect(409, Some("insufficient_stock"));
    app.post(
        "/api/v1/cart/items",
        t,
        json!({"product_id": rug_id, "quantity": 2}),
    )
    .await
    .expect(409, Some("insufficient_stock"));
    // Unknown and inactive products are 404.
    app.post(
        "/api/v1/cart/items",
        t,
        json!({"product_id": uuid::Uuid::now_v7(), "quantity": 1}),
    )
    .await
    .expect(404, Some("not_found"));
    let old = create_product(&app, &admin.token, "OLD-1", 100, 10, &[]).await;
    app.delete(
        &format!("/api/v1/products/{}", old["id"].as_str().unwrap()),
        Some(&admin.token),
    )
    .await
    .expect(204, None);
    app.post(
        "/api/v1/cart/items",
        t,
        json!({"product_id": old["id"], "quantity": 1}),
    )
    .await
    .expect(404, Some("not_found"));
    // Quantities 1..100.
    for q in [json!(0), json!(-1), json!(101), json!(1.5), json!("2")] {
        app.post(
            "/api/v1/cart/items",
            t,
            json!({"product_id": mug_id, "quantity": q}),
        )
        .await
        .expect(422, Some("validation_failed"));
    }

    // Current catalog prices, not the price when added.
    app.patch(
        &format!("/api/v1/products/{mug_id}"),
        Some(&admin.token),
        json!({"price_cents": 650}),
    )
    .await
    .expect(200, None);
    let cart = app.get("/api/v1/cart", t).await;
    let cart = cart.expect(200, None).clone();
    assert_eq!(line(&cart, mug_id).unwrap()["unit_price_cents"], 650);
    assert_eq!(cart["subtotal_cents"], 1950);

    // Update, zero removes, remove, clear.
    app.post(
        "/api/v1/cart/items",
        t,
        json!({"product_id": rug_id, "quantity": 1}),
    )
    .await
    .expect(200, None);
    let path = format!("/api/v1/cart/items/{mug_id}");
    let cart = app.patch(&path, t, json!({"quantity": 5})).await;
    assert_eq!(line(cart.expect(200, None), mug_id).unwrap()["quantity"], 5);
    app.patch(&path, t, json!({"quantity": 6}))
        .await
        .expect(409, Some("insufficient_stock"));
    app.patch(&path, t, json!({"quantity": 101}))
        .await
        .expect(422, Some("validation_failed"));
    app.patch(&path, t, json!({"quantity": -1}))
        .await
        .expect(422, Some("validation_failed"));
    let cart = app.patch(&path, t, json!({"quantity": 0})).await;
    let cart = cart.expect(200, None).clone();
    assert!(line(&cart, mug_id).is_none());
    assert_eq!(cart["subtotal_cents"], 12000);
    app.patch(&path, t, json!({"quantity": 1}))
        .await
        .expect(404, Some("not_found"));
    app.patch("/api/v1/cart/items/not-a-uuid", t, json!({"quantity": 1}))
        .await
        .expect(404, Some("not_found"));
    let cart = app.delete(&format!("/api/v1/cart/items/{rug_id}"), t).await;
    assert_eq!(cart.expect(200, None)["items"], json!([]));
    app.post(
        "/api/v1/cart/items",
        t,
        json!({"product_id": rug_id, "quantity": 1}),
    )
    .await
    .expect(200, None);
    app.delete("/api/v1/cart", t).await.expect(204, None);
    assert_eq!(
        app.get("/api/v1/cart", t).await.expect(200, None)["items"],
        json!([])
    );

    // Quantity cap across re-adds.
    let many = create_product(&app, &admin.token, "MANY-1", 1, 1000, &[]).await;
    app.post(
        "/api/v1/cart/items",
        t,
        json!({"product_id": many["id"], "quantity": 100}),
    )
    .await
    .expect(200, None);
    app.post(
        "/api/v1/cart/items",
        t,
        json!({"product_id": many["id"], "quantity": 1}),
    )
    .await
    .expect(422, Some("validation_failed"));
}

#[tokio::test]
async fn carts_of_different_users_never_mix() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let alice = app.customer().await;
    let bob = app.customer().await;
    let p = create_product(&app, &admin.token, "PEN-1", 200, 50, &[]).await;
    let q = create_product(&app, &admin.token, "INK-1", 300, 50, &[]).await;
    let pid = p["id"].as_str().unwrap();
    app.post(
        "/api/v1/cart/items",
        Some(&alice.token),
        json!({"product_id": pid, "quantity": 4}),
    )
    .await
    .expect(200, None);
    app.post(
        "/api/v1/cart/items",
        Some(&bob.token),
        json!({"product_id": q["id"], "quantity": 1}),
    )
    .await
    .expect(200, None);

    let bobs = app.get("/api/v1/cart", Some(&bob.token)).await;
    let bobs = bobs.expect(200, None).clone();
    assert_eq!(bobs["items"].as_array().unwrap().len(), 1);
    assert!(line(&bobs, pid).is_none());
    // Bob touching "his" line for Alice's product changes nothing of Alice's.
    app.patch(
        &format!("/api/v1/cart/items/{pid}"),
        Some(&bob.token),
        json!({"quantity": 1}),
    )
    .await
    .expect(404, Some("not_found"));
    app.delete(&format!("/api/v1/cart/items/{pid}"), Some(&bob.token))
        .await
        .expect(200, None);
    app.delete("/api/v1/cart", Some(&bob.token))
        .await
        .expect(204, None);
    let alices = app.get("/api/v1/cart", Some(&alice.token)).await;
    assert_eq!(line(alices.expect(200, None), pid).unwrap()["quantity"], 4);
}

#[tokio::test]
async fn cart_reads_survive_the_catalog_being_down() {
    let mut app = App::spawn().await;
    let admin = app.admin().await;
    let me = app.customer().await;
    let t = Some(me.token.as_str());
    let p = create_product(&app, &admin.token, "LAMP-1", 4500, 9, &[]).await;
    let pid = p["id"].as_str().unwrap().to_owned();
    app.post(
        "/api/v1/cart/items",
        t,
        json!({"product_id": pid, "quantity": 2}),
    )
    .await
    .expect(200, None);

    app.platform.platform.stop("product").await;
    let cart = app.get("/api/v1/cart", t).await;
    let cart = cart.expect(200, None).clone();
    assert_eq!(cart["prices_stale"], true);
    let l = line(&cart, &pid).unwrap();
    assert_eq!(l["price_stale"], true);
    assert_eq!(l["unit_price_cents"], 4500);
    assert_eq!(l["quantity"], 2);
    assert_eq!(cart["subtotal_cents"], 9000);
    // Writes that need the catalog answer 503 problem+json.
    app.post(
        "/api/v1/cart/items",
        t,
        json!({"product_id": pid, "quantity": 1}),
    )
    .await
    .expect(503, Some("service_unavailable"));
    app.patch(
        &format!("/api/v1/cart/items/{pid}"),
        t,
        json!({"quantity": 3}),
    )
    .await
    .expect(503, Some("service_unavailable"));
    // Removing needs no catalog.
    let cart = app
        .patch(
            &format!("/api/v1/cart/items/{pid}"),
            t,
            json!({"quantity": 0}),
        )
        .await;
    assert_eq!(cart.expect(200, None)["items"], json!([]));
}

#[tokio::test]
async fn the_order_service_reads_carts_and_marks_them_ordered() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let me = app.customer().await;
    let t = Some(me.token.as_str());
    let a = create_product(&app, &admin.token, "CUP-1", 500, 10, &[]).await;
    let b = create_product(&app, &admin.token, "SAUCER-1", 300, 10, &[]).await;
    app.post(
        "/api/v1/cart/items",
        t,
        json!({"product_id": a["id"], "quantity": 3}),
    )
    .await
    .expect(200, None);
    app.post(
        "/api/v1/cart/items",
        t,
        json!({"product_id": b["id"], "quantity": 1}),
    )
    .await
    .expect(200, None);
    let svc = || Some(Caller::Service("order".into()));
    let path = format!("/internal/carts/{}", me.id);

    let user = Some(Caller::User {
        id: me.id.parse().unwrap(),
        role: souk_common::caller::Role::Customer,
    });
    direct(&app, "cart", Method::GET, &path, None, user)
        .await
        .expect(403, Some("forbidden"));
    direct(&app, "cart", Method::GET, &path, None, None)
        .await
        .expect(401, Some("unauthorized"));
    let cart = direct(&app, "cart", Method::GET, &path, None, svc()).await;
    assert_eq!(cart.expect(200, None)["subtotal_cents"], 1800);

    let order_id = uuid::Uuid::now_v7();
    let body = json!({"order_id": order_id, "items": [{"product_id": a["id"], "quantity": 2}, {"product_id": b["id"], "quantity": 1}]});
    for _ in 0..2 {
        direct(
            &app,
            "cart",
            Method::POST,
            &format!("{path}/ordered"),
            Some(body.clone()),
            svc(),
        )
        .await
        .expect(204, None);
        let cart = app.get("/api/v1/cart", t).await;
        let cart = cart.expect(200, None).clone();
        assert_eq!(cart["items"].as_array().unwrap().len(), 1, "{cart}");
        assert_eq!(
            line(&cart, a["id"].as_str().unwrap()).unwrap()["quantity"],
            1
        );
    }
}

#[tokio::test]
async fn cart_bad_input() {
    let app = App::spawn().await;
    let me = app.customer().await;
    let raw = |body: &'static str| {
        app.http
            .post(app.url("/api/v1/cart/items"))
            .bearer_auth(&me.token)
            .header("content-type", "application/json")
            .body(body)
    };
    app.send(raw("{"))
        .await
        .expect(400, Some("malformed_request"));
    let res = app
        .send(raw(r#"{"product_id": "nope", "quantity": 1}"#))
        .await;
    assert_eq!(
        res.expect(422, Some("validation_failed"))["errors"][0]["field"],
        "product_id"
    );
    let res = app.send(raw(r#"{"quantity": 1}"#)).await;
    assert_eq!(
        res.expect(422, Some("validation_failed"))["errors"][0]["field"],
        "product_id"
    );
    let big = format!(
        r#"{{"product_id": "{}", "quantity": 1, "pad": "{}"}}"#,
        uuid::Uuid::now_v7(),
        "x".repeat(1024 * 1024)
    );
    let res = app
        .send(
            app.http
                .post(app.url("/api/v1/cart/items"))
                .bearer_auth(&me.token)
                .header("content-type", "application/json")
                .body(big),
        )
        .await;
    assert_eq!(res.status.as_u16(), 413);
    // Unknown fields are ignored: this reaches the catalog check (404), not a 422.
    let res = app.send(raw(r#"{"product_id": "0190f0f0-0000-7000-8000-000000000000", "quantity": 1, "gift": true}"#)).await;
    res.expect(404, Some("not_found"));
}
