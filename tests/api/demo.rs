//! Product pictures (`image_url`) and `souk up --demo`'s catalog: seeded through the public API
//! into an empty shop, once, with pictures the gateway serves.

use souk::demo::{DEMO_SHOPPER, Seeded, seed};
use souk_testkit::{ADMIN_EMAIL, ADMIN_PASSWORD};

use serde_json::json;

use crate::helpers::App;

#[tokio::test]
async fn image_url_is_checked_kept_and_removed() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let product = |sku: &str, image: serde_json::Value| {
        json!({"sku": sku, "name": "Lamp", "description": "", "price_cents": 100, "currency": "usd",
            "stock": 1, "image_url": image})
    };
    let long = format!("https://cdn.example.com/{}", "a".repeat(2048));
    for bad in [
        json!("javascript:alert(1)"),
        json!("//evil.example/x.png"),
        json!("/images/demo/lamp-30.svg"),
        json!("no"),
        json!(long),
        json!(7),
    ] {
        let res = app
            .post(
                "/api/v1/products",
                Some(&admin.token),
                product("BAD", bad.clone()),
            )
            .await;
        assert_eq!(res.status, 422, "{bad} accepted: {}", res.body);
    }
    let listed = app.get("/api/v1/products", None).await;
    assert!(
        listed.expect(200, None)["items"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing was created"
    );

    let made = app
        .post(
            "/api/v1/products",
            Some(&admin.token),
            product("LAMP-1", json!("https://cdn.example.com/lamp.png")),
        )
        .await;
    let id = made.expect(201, None)["id"].as_str().unwrap().to_owned();
    assert_eq!(made.body["image_url"], "https://cdn.example.com/lamp.png");
    let path = format!("/api/v1/products/{id}");
    let moved = app
        .patch(
            &path,
            Some(&admin.token),
            json!({"image_url": "http://127.0.0.1:8080/images/demo/lamp-30.svg"}),
        )
        .await;
    assert_eq!(
        moved.expect(200, None)["image_url"],
        "http://127.0.0.1:8080/images/demo/lamp-30.svg"
    );
    let renamed = app
        .patch(&path, Some(&admin.token), json!({"name": "Desk lamp"}))
        .await;
    assert_eq!(
        renamed.expect(200, None)["image_url"],
        "http://127.0.0.1:8080/images/demo/lamp-30.svg",
        "kept"
    );
    let bad = app
        .patch(
            &path,
            Some(&admin.token),
            json!({"image_url": "ftp://x.example/a"}),
        )
        .await;
    bad.expect(422, Some("validation_failed"));
    let cleared = app
        .patch(&path, Some(&admin.token), json!({"image_url": null}))
        .await;
    assert!(
        cleared.expect(200, None).get("image_url").is_none(),
        "{}",
        cleared.body
    );
}

#[tokio::test]
async fn demo_catalog_fills_an_empty_shop_once() {
    let app = App::spawn().await;
    let gateway = app.platform.gateway().to_owned();
    let first = seed(&gateway, (ADMIN_EMAIL, ADMIN_PASSWORD)).await.unwrap();
    let Seeded::Catalog {
        categories,
        products,
    } = first
    else {
        panic!("an empty shop is seeded: {first:?}");
    };
    assert!(
        categories >= 8 && products >= 24,
        "{categories} categories, {products} products"
    );

    let listed = app.get("/api/v1/categories", None).await;
    assert_eq!(
        listed.expect(200, None)["items"].as_array().unwrap().len(),
        categories
    );
    let page = app.get("/api/v1/products?limit=100", None).await;
    let items = page.expect(200, None)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), products);
    for product in &items {
        assert!(!product["description"].as_str().unwrap().is_empty());
        assert_eq!(product["category_ids"].as_array().unwrap().len(), 1);
        let image = product["image_url"]
            .as_str()
            .expect("every demo product has a picture");
        assert!(
            image.starts_with(&format!("{gateway}/images/demo/")),
            "{image}"
        );
        let res = app.http.get(image).send().await.unwrap();
        assert_eq!(res.status(), 200, "{image}");
        assert_eq!(res.headers()["content-type"], "image/svg+xml");
        assert!(res.text().await.unwrap().starts_with("<svg"));
    }

    assert!(
        items.iter().any(|p| p["options"][0]["name"] == "size"),
        "one demo product is sold in sizes"
    );

    // The demo shopper can sign in and has an address to ship to.
    let login = app.login(DEMO_SHOPPER.0, DEMO_SHOPPER.1).await;
    let token = login.expect(200, None)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = app.get("/api/v1/users/me", Some(&token)).await;
    assert_eq!(me.expect(200, None)["shipping_address"]["country"], "US");

    // Again: a stocked shop is left alone.
    let again = seed(&gateway, (ADMIN_EMAIL, ADMIN_PASSWORD)).await.unwrap();
    assert_eq!(again, Seeded::AlreadyStocked);
    let page = app.get("/api/v1/products?limit=100", None).await;
    assert_eq!(
        page.expect(200, None)["items"].as_array().unwrap().len(),
        products
    );
}
