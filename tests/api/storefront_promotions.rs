//! Promotion codes in the storefront, in a real headless Chromium: a shopper's code from the
//! cart to the charge at Stripe, an unknown or unusable code refused in words with nothing
//! changed, and the back office making a promotion and single-use codes that work in a cart.

use serde_json::{Value, json};
use souk::platform::LOCAL_STRIPE_SECRET_KEY;
use souk_testkit::{ADMIN_EMAIL, ADMIN_PASSWORD};

use crate::browser::Browser;
use crate::checkout::product;
use crate::helpers::{App, Session};
use crate::storefront::{PASSWORD, card, orders_of, register, ship_to, sign_in, to_cart};

fn new_email() -> String {
    format!("ann-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// The shopper's cart as the API shows it.
async fn cart_of(app: &App, email: &str) -> Value {
    let login = app.login(email, PASSWORD).await;
    let token = login.expect(200, None)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.get("/api/v1/cart", Some(&token))
        .await
        .expect(200, None)
        .clone()
}

async fn promotions(app: &App, admin: &Session) -> Vec<Value> {
    let page = app.get("/api/v1/promotions", Some(&admin.token)).await;
    page.expect(200, None)["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_code_in_the_cart_discounts_the_order_and_the_charge() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 2_500, 10).await;
    app.post(
        "/api/v1/promotions",
        Some(&admin.token),
        json!({"code": "SPRING-20", "kind": "percent", "value": 20}),
    )
    .await
    .expect(201, None);
    let browser = Browser::start(app.platform.gateway()).await;
    browser.open("").await;
    let email = new_email();
    register(&browser, &email).await;

    // Typed in lower case: codes are compared ignoring case. 20 % of 2 × $25.00.
    to_cart(&browser, &teapot, "2").await;
    browser.fill("#promo-code", "spring-20").await;
    browser.click("#promo-apply").await;
    browser.text_contains("#cart-discount", "$10.00").await;
    browser.text_contains("#cart-total", "$40.00").await;
    browser.text_contains("#cart-subtotal", "$50.00").await;
    browser.text_contains("#promo-applied", "SPRING-20").await;
    // Keyboard focus lands on the control that replaced the Apply button.
    browser
        .until("document.activeElement && document.activeElement.id === 'promo-remove'")
        .await;
    assert_eq!(cart_of(&app, &email).await["discount_cents"], 1_000);

    browser.click("#checkout-link").await;
    browser.heading("Checkout").await;
    ship_to(&browser).await;
    browser.text_contains("#checkout-discount", "$10.00").await;
    browser.text_contains("#checkout-total", "$40.00").await;
    browser.text_contains("#pay", "Pay $40.00").await;
    card(&browser, "4242 4242 4242 4242").await;
    browser.click("#pay").await;
    browser.heading("Thank you for your order").await;
    browser.text_contains("#order-subtotal", "$50.00").await;
    browser.text_contains("#order-discount", "$10.00").await;
    browser
        .text_contains("#order-promotion-code", "SPRING-20")
        .await;
    browser.text_contains("#order-total", "$40.00").await;
    browser
        .text_contains("#order-items .line-discount", "$10.00")
        .await;
    browser.screenshot("order-with-discount").await;

    let orders = orders_of(&app, &admin).await;
    assert_eq!(orders.len(), 1, "{orders:#?}");
    let id = orders[0]["id"].as_str().unwrap();
    let order = app
        .get(&format!("/api/v1/orders/{id}"), Some(&admin.token))
        .await;
    let order = order.expect(200, None);
    assert_eq!(order["status"], "paid");
    assert_eq!(
        (
            &order["subtotal_cents"],
            &order["discount_cents"],
            &order["total_cents"]
        ),
        (&json!(5_000), &json!(1_000), &json!(4_000))
    );
    assert_eq!(order["promotion_code"], "SPRING-20");
    // Stripe (the emulator) was asked for the discounted total.
    let pi = order["payment"]["payment_intent_id"].as_str().unwrap();
    let stripe = app.platform.stripe.as_ref().unwrap();
    let intent: Value = app
        .http
        .get(format!("{}v1/payment_intents/{pi}", stripe.url()))
        .bearer_auth(LOCAL_STRIPE_SECRET_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&intent["amount"], &intent["status"]),
        (&json!(4_000), &json!("succeeded")),
        "{intent}"
    );
    // The paid order took the code out of the cart with the items.
    let cart = cart_of(&app, &email).await;
    assert_eq!(
        (&cart["promotion"], &cart["discount_cents"]),
        (&Value::Null, &json!(0))
    );

    browser.assert_clean_console(&[]).await;
    browser.quit().await;
}

#[tokio::test]
async fn an_unknown_or_unusable_code_is_refused_in_words_and_changes_nothing() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let tin = product(&app, &admin, 900, 10).await;
    app.post(
        "/api/v1/promotions",
        Some(&admin.token),
        json!({"code": "BIGSPEND", "kind": "amount", "value": 500, "min_subtotal_cents": 5_000}),
    )
    .await
    .expect(201, None);
    let browser = Browser::start(app.platform.gateway()).await;
    browser.open("").await;
    let email = new_email();
    register(&browser, &email).await;
    to_cart(&browser, &tin, "1").await;

    // An empty field is not sent at all.
    browser.click("#promo-apply").await;
    browser.text_contains("#promo-error", "Type a code").await;

    browser.fill("#promo-code", "NOPE-404").await;
    browser.click("#promo-apply").await;
    browser
        .text_contains("#promo-error", "No promotion has this code")
        .await;
    let unchanged = || async {
        browser.text_contains("#cart-total", "$9.00").await;
        browser
            .until("!document.getElementById('cart-discount') && !document.getElementById('promo-applied')")
            .await;
        let cart = cart_of(&app, &email).await;
        assert_eq!(
            (
                &cart["promotion"],
                &cart["discount_cents"],
                &cart["total_cents"]
            ),
            (&Value::Null, &json!(0), &json!(900)),
            "{cart}"
        );
    };
    unchanged().await;
    // What was typed stays, to be corrected.
    assert_eq!(
        browser
            .eval("return document.getElementById('promo-code').value;")
            .await,
        "NOPE-404"
    );

    // A known code this cart does not reach: the reason in words.
    browser.fill("#promo-code", "bigspend").await;
    browser.click("#promo-apply").await;
    browser
        .text_contains("#promo-error", "does not reach the minimum amount")
        .await;
    unchanged().await;
    browser.screenshot("cart-code-refused").await;

    browser
        .assert_clean_console(&[
            "/api/v1/cart/promotion - Failed to load resource: the server responded with a status of 404",
            "/api/v1/cart/promotion - Failed to load resource: the server responded with a status of 422",
        ])
        .await;
    browser.quit().await;
}

#[tokio::test]
async fn the_back_office_makes_a_promotion_and_single_use_codes_that_work_in_a_cart() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let kettle = product(&app, &admin, 2_000, 10).await;
    let browser = Browser::start(app.platform.gateway()).await;
    sign_in(&browser, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    browser.click("#nav-admin").await;
    browser.click("#nav-admin-promotions").await;
    browser.heading("Promotions").await;
    browser.find("#no-promotions").await;
    browser.click("#new-promotion").await;
    browser.heading("New promotion").await;

    // The API's refusal is shown next to its field.
    browser.fill("#f-code", "TEA-PARTY").await;
    browser.fill("#f-value", "150").await;
    browser.click("#promotion-form-submit").await;
    browser.text_contains("#f-value-error", "1 to 100").await;
    browser
        .text_contains("#promotion-form-error", "correct the fields")
        .await;
    browser
        .until("document.activeElement && document.activeElement.id === 'f-value'")
        .await;
    browser.screenshot("back-office-new-promotion").await;
    assert!(promotions(&app, &admin).await.is_empty());

    // $5.00 off the kettle, at most 100 orders.
    browser
        .find("#f-kind")
        .await
        .select_by_value("amount")
        .await
        .unwrap();
    browser.text_contains("#value-hint", "amount like").await;
    browser.fill("#f-value", "5").await;
    browser.fill("#f-usage_limit", "100").await;
    browser
        .click(&format!(
            "#promotion-form input[name=product_ids][value='{kettle}']"
        ))
        .await;
    browser.click("#promotion-form-submit").await;
    browser.heading("Promotion TEA-PARTY").await;
    browser.text_contains("#promotion-value", "$5.00 off").await;
    browser.text_contains("#promotion-products", "Teapot").await;
    let made = promotions(&app, &admin).await;
    assert_eq!(made.len(), 1);
    let made = &made[0];
    assert_eq!(
        (
            &made["code"],
            &made["kind"],
            &made["value"],
            &made["usage_limit"],
            &made["product_ids"]
        ),
        (
            &json!("TEA-PARTY"),
            &json!("amount"),
            &json!(500),
            &json!(100),
            &json!([kettle])
        )
    );
    let id = made["id"].as_str().unwrap().to_owned();
    let reload = || async {
        app.get(&format!("/api/v1/promotions/{id}"), Some(&admin.token))
            .await
            .expect(200, None)
            .clone()
    };

    // Five single-use codes, to copy or download.
    browser.fill("#f-count", "5").await;
    browser.click("#codes-form-submit").await;
    browser
        .text_contains("#codes-form-status", "5 codes generated")
        .await;
    browser
        .text_contains("#promotion-codes", "5 generated, 0 used")
        .await;
    let shown = browser
        .eval("return document.getElementById('generated-codes').value;")
        .await;
    let codes: Vec<String> = shown.as_str().unwrap().lines().map(str::to_owned).collect();
    assert_eq!(codes.len(), 5, "{codes:?}");
    assert!(
        codes.iter().all(|c| c.len() >= 10),
        "generated codes are long: {codes:?}"
    );
    let download = browser
        .eval("const a = document.getElementById('download-codes'); return [a.href, a.download];")
        .await;
    assert!(
        download[0].as_str().unwrap().starts_with("blob:"),
        "{download}"
    );
    assert_eq!(download[1], "TEA-PARTY-codes.csv");
    assert_eq!(reload().await["single_use_codes"], 5);
    browser.eval("window.scrollTo(0, 0);").await;
    browser.screenshot("back-office-promotion").await;

    // A lower usage limit; the end date nobody touched stays as it was.
    browser.fill("#f-usage_limit", "50").await;
    browser.click("#promotion-edit-submit").await;
    browser
        .text_contains("#promotion-edit-status", "Saved")
        .await;
    browser.text_contains("#promotion-usage-limit", "50").await;
    let changed = reload().await;
    assert_eq!(
        (&changed["usage_limit"], &changed["ends_at"]),
        (&json!(50), &Value::Null)
    );

    // Deactivated, then active again.
    browser.click("#promotion-active-toggle").await;
    browser.text_contains("#promotion-state", "Inactive").await;
    assert_eq!(reload().await["active"], false);
    browser.click("#promotion-active-toggle").await;
    browser.text_contains("#promotion-state", "Active").await;
    assert_eq!(reload().await["active"], true);

    browser.click_link("All promotions").await;
    browser.heading("Promotions").await;
    browser
        .text_contains("#admin-promotions", "TEA-PARTY")
        .await;
    browser.text_contains("#admin-promotions", "5 (0)").await;

    // A shopper types one of the codes (in lower case) into the cart.
    browser.click("#sign-out").await;
    browser.find("#nav-register").await;
    let email = new_email();
    register(&browser, &email).await;
    to_cart(&browser, &kettle, "1").await;
    browser.fill("#promo-code", &codes[2].to_lowercase()).await;
    browser.click("#promo-apply").await;
    browser.text_contains("#cart-discount", "$5.00").await;
    browser.text_contains("#cart-total", "$15.00").await;
    let cart = cart_of(&app, &email).await;
    assert_eq!(
        (&cart["promotion"]["code"], &cart["discount_cents"]),
        (&json!(codes[2]), &json!(500)),
        "{cart}"
    );

    browser
        .assert_clean_console(&[
            "/api/v1/promotions - Failed to load resource: the server responded with a status of 422",
        ])
        .await;
    browser.quit().await;
}
