//! Variants: products with options, sold and stocked per variant, from the catalog through the
//! cart and checkout to cancel; bad input; the migration of data written before variants.

use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection};

use crate::catalog::ids;
use crate::checkout::{charges, checkout, race_to_checkout, shopper_with_address as shopper};
use crate::helpers::{App, Session};

/// A T-shirt in S, M and L (L is the dearest), stock 5 each unless `stock_m` says otherwise.
async fn shirt(app: &App, admin: &Session, stock_m: i64) -> Value {
    let sku = format!("TEE-{}", uuid::Uuid::new_v4().simple());
    let variant = |size: &str, price: i64, stock: i64| {
        json!({"sku": format!("{sku}-{size}"), "option_values": {"size": size},
               "price_cents": price, "stock": stock})
    };
    app.post(
        "/api/v1/products",
        Some(&admin.token),
        json!({
            "sku": sku, "name": "T-shirt", "description": "Cotton", "currency": "usd",
            "options": [{"name": "size", "values": ["S", "M", "L", "XL"]}],
            "variants": [variant("S", 1500, 5), variant("M", 1500, stock_m), variant("L", 1800, 5)]
        }),
    )
    .await
    .expect(201, None)
    .clone()
}

fn variant_id(product: &Value, size: &str) -> String {
    product["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["option_values"]["size"] == size)
        .unwrap_or_else(|| panic!("no variant {size} in {product}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn show(app: &App, id: &str) -> Value {
    app.get(&format!("/api/v1/products/{id}"), None)
        .await
        .expect(200, None)
        .clone()
}

async fn variant_stock(app: &App, product: &str, variant: &str) -> i64 {
    let p = show(app, product).await;
    p["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == variant)
        .unwrap()["stock"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn a_variant_is_carted_bought_and_cancelled_with_only_its_own_stock_moving() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let tee = shirt(&app, &admin, 5).await;
    let id = tee["id"].as_str().unwrap().to_owned();
    assert_eq!(tee["options"][0]["name"], "size");
    assert_eq!(tee["variants"].as_array().unwrap().len(), 3);
    assert_eq!(tee["price_cents"], 1500, "the lowest active variant price");
    assert_eq!(tee["stock"], 15, "the sum of the variants");
    let (s, m, l) = (
        variant_id(&tee, "S"),
        variant_id(&tee, "M"),
        variant_id(&tee, "L"),
    );
    assert_ne!(
        m, id,
        "a product with options has variants of their own ids"
    );

    let me = shopper(&app).await;
    // A product with options needs its variant.
    let p = app
        .post(
            "/api/v1/cart/items",
            Some(&me.token),
            json!({"product_id": id, "quantity": 1}),
        )
        .await;
    assert_eq!(
        p.expect(422, Some("variant_required"))["errors"][0]["field"],
        "variant_id"
    );
    let cart = app
        .post(
            "/api/v1/cart/items",
            Some(&me.token),
            json!({"product_id": id, "variant_id": m, "quantity": 2}),
        )
        .await
        .expect(200, None)
        .clone();
    let line = &cart["items"][0];
    assert_eq!(line["variant_id"], m.as_str());
    assert_eq!(line["product_id"], id.as_str());
    assert_eq!(line["option_values"], json!({"size": "M"}));
    assert_eq!(cart["subtotal_cents"], 3000);
    // Lines are keyed by variant: another size is another line, the same size adds up.
    app.post(
        "/api/v1/cart/items",
        Some(&me.token),
        json!({"product_id": id, "variant_id": l, "quantity": 1}),
    )
    .await
    .expect(200, None);
    let cart = app
        .patch(
            &format!("/api/v1/cart/items/{l}"),
            Some(&me.token),
            json!({"quantity": 2}),
        )
        .await
        .expect(200, None)
        .clone();
    assert_eq!(cart["items"].as_array().unwrap().len(), 2);
    assert_eq!(cart["subtotal_cents"], 3000 + 3600);
    let cart = app
        .delete(&format!("/api/v1/cart/items/{l}"), Some(&me.token))
        .await
        .expect(200, None)
        .clone();
    assert_eq!(cart["items"].as_array().unwrap().len(), 1);

    let order = checkout(&app, &me, "tee-1", "pm_card_visa")
        .await
        .expect(201, None)
        .clone();
    assert_eq!(order["status"], "paid");
    assert_eq!(order["total_cents"], 3000);
    let item = &order["items"][0];
    assert_eq!(item["variant_id"], m.as_str());
    assert_eq!(item["product_id"], id.as_str());
    assert_eq!(item["option_values"], json!({"size": "M"}));
    assert!(item["sku"].as_str().unwrap().ends_with("-M"), "{item}");
    assert_eq!(variant_stock(&app, &id, &m).await, 3);
    assert_eq!(variant_stock(&app, &id, &s).await, 5);
    assert_eq!(variant_stock(&app, &id, &l).await, 5);
    assert_eq!(show(&app, &id).await["stock"], 13);
    let mail = crate::checkout::wait_for_mail(&app, 1).await;
    assert!(
        mail.iter().any(|m| m.contains("T-shirt, size M")),
        "{mail:?}"
    );

    let order_id = order["id"].as_str().unwrap();
    app.post(
        &format!("/api/v1/orders/{order_id}/cancel"),
        Some(&me.token),
        json!({}),
    )
    .await
    .expect(200, None);
    assert_eq!(variant_stock(&app, &id, &m).await, 5);
    assert_eq!(show(&app, &id).await["stock"], 15);
}

#[tokio::test]
async fn fifty_shoppers_for_five_of_one_size() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let tee = shirt(&app, &admin, 5).await;
    let id = tee["id"].as_str().unwrap().to_owned();
    let m = variant_id(&tee, "M");
    let mut shoppers = Vec::new();
    for _ in 0..50 {
        let me = shopper(&app).await;
        app.post(
            "/api/v1/cart/items",
            Some(&me.token),
            json!({"product_id": id, "variant_id": m, "quantity": 1}),
        )
        .await
        .expect(200, None);
        shoppers.push(me);
    }
    race_to_checkout(&app, &shoppers, "race", 5, "insufficient_stock").await;
    assert_eq!(variant_stock(&app, &id, &m).await, 0);
    assert_eq!(variant_stock(&app, &id, &variant_id(&tee, "S")).await, 5);
    assert_eq!(show(&app, &id).await["stock"], 10);
    assert_eq!(
        charges(&app).await,
        5,
        "nothing charged for the refused ones"
    );
}

#[tokio::test]
async fn price_and_listing_follow_the_lowest_active_variant() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let tee = shirt(&app, &admin, 5).await;
    let id = tee["id"].as_str().unwrap().to_owned();
    let (s, m) = (variant_id(&tee, "S"), variant_id(&tee, "M"));
    let listed = |min: i64| format!("/api/v1/products?min_price={min}&sort=price_asc");
    assert!(!ids(app.get(&listed(1600), None).await.expect(200, None)).contains(&id));
    // S and M off sale: the product now sells from 18.00, and its stock counts L only.
    for v in [&s, &m] {
        app.patch(
            &format!("/api/v1/products/{id}/variants/{v}"),
            Some(&admin.token),
            json!({"active": false}),
        )
        .await
        .expect(200, None);
    }
    let p = show(&app, &id).await;
    assert_eq!(
        (p["price_cents"].as_i64(), p["stock"].as_i64()),
        (Some(1800), Some(5))
    );
    let page = app.get(&listed(1600), None).await.expect(200, None).clone();
    assert!(ids(&page).contains(&id), "{page}");
    assert_eq!(page["items"][0]["options"][0]["name"], "size");
    // A new variant (XL) at 12.00 becomes the price.
    let xl = app
        .post(
            &format!("/api/v1/products/{id}/variants"),
            Some(&admin.token),
            json!({"sku": format!("{}-XL", p["sku"].as_str().unwrap()),
                   "option_values": {"size": "XL"}, "price_cents": 1200, "stock": 2}),
        )
        .await
        .expect(201, None)
        .clone();
    assert_eq!(xl["option_values"], json!({"size": "XL"}));
    assert_eq!(xl["active"], true);
    let p = show(&app, &id).await;
    assert_eq!(
        (p["price_cents"].as_i64(), p["stock"].as_i64()),
        (Some(1200), Some(7))
    );
    // Stock per variant, and the product's sum follows.
    app.patch(
        &format!(
            "/api/v1/products/{id}/variants/{}",
            xl["id"].as_str().unwrap()
        ),
        Some(&admin.token),
        json!({"stock": 10}),
    )
    .await
    .expect(200, None);
    assert_eq!(show(&app, &id).await["stock"], 15);
}

#[tokio::test]
async fn a_product_without_options_is_its_own_one_variant() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let mug = crate::checkout::product(&app, &admin, 650, 4).await;
    let p = show(&app, &mug).await;
    assert_eq!(p["options"], json!([]));
    let variants = p["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 1);
    assert_eq!(variants[0]["id"], mug.as_str());
    assert_eq!(variants[0]["sku"], p["sku"]);
    assert_eq!(variants[0]["option_values"], json!({}));
    // The product's own price, stock and SKU writes move its one variant.
    app.patch(
        &format!("/api/v1/products/{mug}"),
        Some(&admin.token),
        json!({"price_cents": 700, "sku": format!("{}-B", p["sku"].as_str().unwrap())}),
    )
    .await
    .expect(200, None);
    app.put(
        &format!("/api/v1/products/{mug}/stock"),
        Some(&admin.token),
        json!({"stock": 9}),
    )
    .await
    .expect(200, None);
    let p = show(&app, &mug).await;
    let v = &p["variants"][0];
    assert_eq!(
        (v["price_cents"].as_i64(), v["stock"].as_i64()),
        (Some(700), Some(9))
    );
    assert_eq!(v["sku"], p["sku"]);
    assert_eq!(
        (p["price_cents"].as_i64(), p["stock"].as_i64()),
        (Some(700), Some(9))
    );
    // The old call shape keeps working: no variant_id, the line's key is the product id.
    let me = app.customer().await;
    let cart = app
        .post(
            "/api/v1/cart/items",
            Some(&me.token),
            json!({"product_id": mug, "quantity": 1}),
        )
        .await
        .expect(200, None)
        .clone();
    assert_eq!(cart["items"][0]["variant_id"], mug.as_str());
    assert_eq!(cart["items"][0]["option_values"], json!({}));
    // Its one variant cannot gain options or be switched off on its own.
    let path = format!("/api/v1/products/{mug}/variants/{mug}");
    app.patch(&path, Some(&admin.token), json!({"active": false}))
        .await
        .expect(422, Some("validation_failed"));
    app.patch(
        &path,
        Some(&admin.token),
        json!({"option_values": {"size": "M"}}),
    )
    .await
    .expect(422, Some("validation_failed"));
    app.post(
        &format!("/api/v1/products/{mug}/variants"),
        Some(&admin.token),
        json!({"sku": "MUG-XL", "option_values": {"size": "XL"}, "price_cents": 1, "stock": 1}),
    )
    .await
    .expect(422, Some("validation_failed"));
}

#[tokio::test]
async fn bad_variants_are_refused_and_change_nothing() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let tee = shirt(&app, &admin, 5).await;
    let id = tee["id"].as_str().unwrap().to_owned();
    let m = variant_id(&tee, "M");
    let sku = tee["sku"].as_str().unwrap().to_owned();
    let variants = format!("/api/v1/products/{id}/variants");
    let new = |sku: &str, values: Value| json!({"sku": sku, "option_values": values, "price_cents": 100, "stock": 1});
    // A value outside the options, an unknown option, a missing one: 422 naming the field.
    for values in [
        json!({"size": "XXL"}),
        json!({"size": "XL", "colour": "red"}),
        json!({}),
    ] {
        let p = app
            .post(
                &variants,
                Some(&admin.token),
                new("TEE-NEW", values.clone()),
            )
            .await;
        assert_eq!(
            p.expect(422, Some("validation_failed"))["errors"][0]["field"],
            "option_values",
            "{values}"
        );
    }
    // A combination the product already sells: 422; a SKU in use: 409 sku_taken.
    app.post(
        &variants,
        Some(&admin.token),
        new("TEE-NEW", json!({"size": "M"})),
    )
    .await
    .expect(422, Some("validation_failed"));
    app.post(
        &variants,
        Some(&admin.token),
        new(&format!("{sku}-S"), json!({"size": "XL"})),
    )
    .await
    .expect(409, Some("sku_taken"));
    app.patch(
        &format!("{variants}/{m}"),
        Some(&admin.token),
        json!({"option_values": {"size": "S"}}),
    )
    .await
    .expect(422, Some("validation_failed"));
    // Product-level price and stock belong to the variants.
    app.patch(
        &format!("/api/v1/products/{id}"),
        Some(&admin.token),
        json!({"price_cents": 1}),
    )
    .await
    .expect(422, Some("validation_failed"));
    app.put(
        &format!("/api/v1/products/{id}/stock"),
        Some(&admin.token),
        json!({"stock": 1}),
    )
    .await
    .expect(422, Some("validation_failed"));
    // Creating with options: duplicate combinations, no variants, price on the product.
    let base = |extra: Value| {
        let mut body = json!({"sku": format!("X-{}", uuid::Uuid::new_v4().simple()),
            "name": "X", "description": "", "currency": "usd",
            "options": [{"name": "size", "values": ["S", "M"]}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    for (extra, field) in [
        (
            json!({"variants": [new("D-1", json!({"size": "S"})), new("D-2", json!({"size": "S"}))]}),
            "variants[1].option_values",
        ),
        (json!({}), "variants"),
        (
            json!({"price_cents": 5, "variants": [new("D-3", json!({"size": "S"}))]}),
            "price_cents",
        ),
        (
            json!({"options": [{"name": "a", "values": ["1"]}, {"name": "b", "values": ["1"]},
                               {"name": "c", "values": ["1"]}, {"name": "d", "values": ["1"]}],
                   "variants": [new("D-4", json!({"a": "1", "b": "1", "c": "1", "d": "1"}))]}),
            "options",
        ),
    ] {
        let p = app
            .post("/api/v1/products", Some(&admin.token), base(extra.clone()))
            .await;
        let body = p.expect(422, Some("validation_failed"));
        assert_eq!(body["errors"][0]["field"], field, "{extra} -> {body}");
    }
    // A customer cannot write variants.
    let me = app.customer().await;
    app.post(
        &variants,
        Some(&me.token),
        new("TEE-C", json!({"size": "XL"})),
    )
    .await
    .expect(403, Some("forbidden"));
    // Nothing of the above changed the product.
    let after = show(&app, &id).await;
    assert_eq!(after["variants"], tee["variants"]);
    assert_eq!(after["stock"], 15);

    // Carts: a variant of another product is 422, an inactive one 404, nothing added.
    let other = shirt(&app, &admin, 5).await;
    let p = app
        .post(
            "/api/v1/cart/items",
            Some(&me.token),
            json!({"product_id": id, "variant_id": variant_id(&other, "S"), "quantity": 1}),
        )
        .await;
    assert_eq!(
        p.expect(422, Some("validation_failed"))["errors"][0]["field"],
        "variant_id"
    );
    app.patch(
        &format!("{variants}/{m}"),
        Some(&admin.token),
        json!({"active": false}),
    )
    .await
    .expect(200, None);
    app.post(
        "/api/v1/cart/items",
        Some(&me.token),
        json!({"product_id": id, "variant_id": m, "quantity": 1}),
    )
    .await
    .expect(404, Some("not_found"));
    app.post(
        "/api/v1/cart/items",
        Some(&me.token),
        json!({"product_id": id, "variant_id": uuid::Uuid::now_v7(), "quantity": 1}),
    )
    .await
    .expect(404, Some("not_found"));
    let cart = app.get("/api/v1/cart", Some(&me.token)).await;
    assert_eq!(cart.expect(200, None)["items"], json!([]));
}

/// The variants migrations move data written by the schema before them: every product becomes
/// its own one variant (same id, SKU, price and stock), and reservation, cart and order lines
/// are keyed by that variant.
#[tokio::test]
async fn the_migrations_carry_existing_products_and_lines_over() {
    let server = souk_testkit::test_server_url();
    let before = |m: &sqlx::migrate::Migrator| sqlx::migrate::Migrator {
        migrations: m
            .migrations
            .iter()
            .filter(|m| m.version < 20261201200001)
            .cloned()
            .collect(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    let product = uuid::Uuid::now_v7();
    let (user, order) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    // Per service: the migrator, rows written by the old schema, statements of a release from
    // before variants still running during the rollout, and what must hold afterwards.
    for (service, migrator, seed, old_release, check) in [
        (
            "product",
            &souk_product::MIGRATOR,
            "INSERT INTO products (id, sku, name, price_cents, currency, stock)
               VALUES ($1, 'OLD-1', 'Old mug', 650, 'usd', 7);
             INSERT INTO reservations (order_id, status, expires_at)
               VALUES ($3, 'reserved', now() + interval '1 hour');
             INSERT INTO reservation_lines (order_id, product_id, sku, name, quantity, unit_price_cents, currency)
               VALUES ($3, $1, 'OLD-1', 'Old mug', 2, 650, 'usd');",
            "UPDATE products SET stock = stock - 3 WHERE id = $1;
             INSERT INTO reservations (order_id, status, expires_at)
               VALUES ($2, 'reserved', now() + interval '1 hour');
             INSERT INTO reservation_lines (order_id, product_id, sku, name, quantity, unit_price_cents, currency)
               VALUES ($2, $1, 'OLD-1', 'Old mug', 3, 650, 'usd');",
            "SELECT (SELECT count(*) FROM variants WHERE id = $1 AND product_id = $1 AND sku = 'OLD-1'
                       AND price_cents = 650 AND stock = 4 AND option_values = '{}' AND active) = 1
                AND (SELECT stock FROM products WHERE id = $1) = 4
                AND (SELECT variant_id FROM reservation_lines WHERE order_id = $3) = $1
                AND (SELECT variant_id FROM reservation_lines WHERE order_id = $2) = $1",
        ),
        (
            "cart",
            &souk_cart::MIGRATOR,
            "INSERT INTO cart_items (user_id, product_id, quantity, last_name, last_unit_price_cents, last_currency)
               VALUES ($2, $1, 3, 'Old mug', 650, 'usd');",
            "",
            "SELECT (SELECT count(*) FROM cart_items WHERE user_id = $2 AND variant_id = $1
                       AND product_id = $1 AND quantity = 3 AND last_option_values = '{}') = 1",
        ),
        (
            "order",
            &souk_order::MIGRATOR,
            "INSERT INTO orders (id, user_id, status, saga_state, idempotency_key, request_hash,
                                 requested_items, payment_method, email, customer_name, shipping_address)
               VALUES ($3, $2, 'paid', 'done', 'k', '\\x00', '[]', 'pm_card_visa', 'a@b.c', 'A', '{}');
             INSERT INTO order_items (order_id, product_id, sku, name, quantity, unit_price_cents, line_total_cents)
               VALUES ($3, $1, 'OLD-1', 'Old mug', 2, 650, 1300);",
            "INSERT INTO orders (id, user_id, status, saga_state, idempotency_key, request_hash,
                                 requested_items, payment_method, email, customer_name, shipping_address)
               VALUES ($2, $2, 'paid', 'done', 'k2', '\\x00', '[]', 'pm_card_visa', 'a@b.c', 'A', '{}');
             INSERT INTO order_items (order_id, product_id, sku, name, quantity, unit_price_cents, line_total_cents)
               VALUES ($2, $1, 'OLD-1', 'Old mug', 1, 650, 650);",
            "SELECT (SELECT variant_id FROM order_items WHERE order_id = $2) = $1 AND (SELECT count(*) FROM order_items WHERE order_id = $3 AND variant_id = $1
                       AND product_id = $1 AND option_values = '{}') = 1",
        ),
    ] {
        let name = format!("souk_test_migrate_{service}_{}", uuid::Uuid::now_v7().simple());
        let url = format!("{}/{name}", server.trim_end_matches('/'));
        souk_common::db::create_if_missing(&url).await.unwrap();
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        before(migrator).run(&mut conn).await.unwrap();
        // The ids as literals: $1 product, $2 user, $3 order.
        let with_ids = |sql: &str| {
            sql.replace("$1", &format!("'{product}'::uuid"))
                .replace("$2", &format!("'{user}'::uuid"))
                .replace("$3", &format!("'{order}'::uuid"))
        };
        sqlx::raw_sql(AssertSqlSafe(with_ids(seed)))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{service}: seeding the old schema: {e}"));
        migrator.run(&mut conn).await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(with_ids(old_release)))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{service}: an older release's writes: {e}"));
        let ok: bool = sqlx::query_scalar(AssertSqlSafe(with_ids(check)))
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{service}: {e}"));
        assert!(ok, "{service}: the old rows did not carry over");
        conn.close().await.unwrap();
        souk_common::db::drop_database(&url).await.unwrap();
    }
}

/// In the storefront: a select per option; price, stock and SKU follow the choice; the cart line
/// is the chosen variant, named with its options; a sold-out size cannot be added.
#[tokio::test]
async fn the_storefront_sells_the_chosen_size() {
    use crate::browser::Browser;
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let tee = shirt(&app, &admin, 0).await;
    let id = tee["id"].as_str().unwrap().to_owned();
    let browser = Browser::start(app.platform.gateway()).await;
    let email = format!("ann-{}@example.com", uuid::Uuid::new_v4().simple());
    browser.open("").await;
    crate::storefront::register(&browser, &email).await;

    browser.open(&format!("#/product/{id}")).await;
    browser.heading("T-shirt").await;
    let size = browser.find("#option-0").await;
    size.select_by_value("L").await.unwrap();
    browser.text_contains("#product-price", "$18.00").await;
    browser.text_contains("#product-sku", "-L").await;
    // M is sold out: it cannot be added.
    size.select_by_value("M").await.unwrap();
    browser
        .text_contains("#product-stock", "Out of stock")
        .await;
    browser
        .until("document.querySelector('#add-to-cart').disabled")
        .await;
    // XL is an option value no variant sells.
    size.select_by_value("XL").await.unwrap();
    browser
        .text_contains("#product-stock", "Not available in this combination")
        .await;
    size.select_by_value("L").await.unwrap();
    browser.fill("#qty", "2").await;
    browser.click("#add-to-cart").await;
    browser
        .text_contains("#add-status", "Your cart has 2")
        .await;
    browser.click("#go-to-cart").await;
    browser.heading("Your cart").await;
    let row = format!("tr[data-variant='{}']", variant_id(&tee, "L"));
    browser.text_contains(&row, "T-shirt, size L").await;
    browser.screenshot("variant-cart").await;
    browser.assert_clean_console(&[]).await;
    browser.quit().await;
}
