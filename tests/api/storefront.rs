//! The storefront in a real headless Chromium: the shopper's whole journey by clicking, a
//! declined card, 3-D Secure, the session across reloads, the back office shipping an order
//! and refusing a customer, and no errors in the browser console. Screenshots of the main
//! pages go to `$CARGO_TARGET_DIR/souk-screenshots/`.

use serde_json::{Value, json};

use souk_testkit::{ADMIN_EMAIL, ADMIN_PASSWORD};

use crate::browser::Browser;
use crate::helpers::{App, Session};

pub(crate) const PASSWORD: &str = "correct-horse-1";

/// A small catalog: Kitchen > Tea, with three products.
async fn catalog(app: &App, admin: &Session) -> Vec<String> {
    let create_category = |name: &str, slug: &str, parent: Option<String>| {
        let mut body = json!({"name": name, "slug": slug});
        if let Some(parent) = parent {
            body["parent_id"] = json!(parent);
        }
        app.post("/api/v1/categories", Some(&admin.token), body)
    };
    let kitchen = create_category("Kitchen", "kitchen", None)
        .await
        .expect(201, None)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let tea = create_category("Tea", "tea", Some(kitchen.clone()))
        .await
        .expect(201, None)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ids = Vec::new();
    for (sku, name, description, price, category) in [
        (
            "TEA-POT",
            "Cast-iron teapot",
            "A heavy teapot that keeps tea hot.",
            2500,
            &tea,
        ),
        ("TEA-TIN", "Green tea tin", "Sencha, 100 g.", 900, &tea),
        ("MUG-1", "Stoneware mug", "Holds 350 ml.", 1200, &kitchen),
    ] {
        let body = json!({"sku": sku, "name": name, "description": description, "price_cents": price,
            "currency": "usd", "category_ids": [category], "stock": 10});
        let res = app.post("/api/v1/products", Some(&admin.token), body).await;
        ids.push(res.expect(201, None)["id"].as_str().unwrap().to_owned());
    }
    ids
}

pub(crate) async fn register(browser: &Browser, email: &str) {
    browser.click("#nav-register").await;
    browser.heading("Create an account").await;
    browser.fill("#f-name", "Ann Shopper").await;
    browser.fill("#f-email", email).await;
    browser.fill("#f-password", PASSWORD).await;
    browser.click("#register-form-submit").await;
    browser.find("#sign-out").await;
}

pub(crate) async fn sign_in(browser: &Browser, email: &str, password: &str) {
    browser.open("#/signin").await;
    browser.heading("Sign in").await;
    browser.fill("#f-email", email).await;
    browser.fill("#f-password", password).await;
    browser.click("#signin-form-submit").await;
    browser.find("#sign-out").await;
}

/// From the product page: quantity into the cart, then on to checkout with the address.
async fn to_checkout(browser: &Browser, product_id: &str, quantity: &str) {
    to_cart(browser, product_id, quantity).await;
    browser.screenshot("cart").await;
    browser.click("#checkout-link").await;
    browser.heading("Checkout").await;
    ship_to(browser).await;
}

/// From the product page: quantity into the cart, then to the cart page.
pub(crate) async fn to_cart(browser: &Browser, product_id: &str, quantity: &str) {
    browser.open(&format!("#/product/{product_id}")).await;
    browser.fill("#qty", quantity).await;
    browser.click("#add-to-cart").await;
    browser.text_contains("#add-status", "Added").await;
    browser.click("#go-to-cart").await;
    browser.heading("Your cart").await;
    browser.find("#cart-subtotal").await;
}

/// The checkout page's address fields.
pub(crate) async fn ship_to(browser: &Browser) {
    for (field, value) in [
        ("name", "Ann Shopper"),
        ("line1", "1 Main St"),
        ("city", "Springfield"),
        ("postal_code", "12345"),
        ("country", "US"),
    ] {
        browser.fill(&format!("#addr-{field}"), value).await;
    }
}

pub(crate) async fn card(browser: &Browser, number: &str) {
    browser.fill("[data-field=number]", number).await;
    browser.fill("[data-field=expiry]", "12/34").await;
    browser.fill("[data-field=cvc]", "123").await;
    browser.fill("[data-field=postal]", "12345").await;
}

pub(crate) async fn orders_of(app: &App, admin: &Session) -> Vec<Value> {
    let res = app
        .get("/api/v1/admin/orders?limit=100", Some(&admin.token))
        .await;
    res.expect(200, None)["items"].as_array().unwrap().clone()
}

/// A product of the demo catalog, by name.
async fn demo_product(app: &App, name: &str) -> String {
    let page = app.get("/api/v1/products?limit=100", None).await;
    let items = page.expect(200, None)["items"].as_array().unwrap().clone();
    let found = items.iter().find(|p| p["name"] == name);
    found.unwrap_or_else(|| panic!("no {name} in the demo catalog"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn shopper_journey_by_clicking_then_the_back_office_ships_it() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    // The demo catalog (`souk up --demo`): its pictures are served by the gateway too.
    souk::demo::seed(app.platform.gateway(), (ADMIN_EMAIL, ADMIN_PASSWORD))
        .await
        .unwrap();
    let teapot = demo_product(&app, "Cast-iron teapot").await;
    let mug = demo_product(&app, "Latte mug").await;
    let browser = Browser::start(app.platform.gateway()).await;

    // Home: the category tree and the newest products, with their pictures.
    browser.open("").await;
    browser.heading("All products").await;
    browser
        .text_contains("nav[aria-label=Categories]", "Tea & coffee")
        .await;
    browser.text_contains("#results", "Brass pencil").await;
    // Pictures load after the list appears (lazily): wait for those in view to be drawn.
    browser
        .until("[...document.querySelectorAll('#results img')].filter(i => i.complete && i.naturalWidth > 0).length >= 6")
        .await;
    browser.screenshot("home").await;

    let email = format!("ann-{}@example.com", uuid::Uuid::new_v4().simple());
    register(&browser, &email).await;

    // Filter by category and price, sorted, then page on; then search from the header.
    browser.click_link("Tea & coffee").await;
    browser.heading("Tea & coffee").await;
    browser.fill("#filter-max", "30").await;
    browser
        .find("#filter-sort")
        .await
        .select_by_value("price_asc")
        .await
        .unwrap();
    browser.click("#apply-filters").await;
    let results = browser.text_contains("#results", "Glass teapot").await;
    assert!(
        results.starts_with("Espresso cup"),
        "cheapest first: {results}"
    );
    assert!(
        !results.contains("Cast-iron") && !results.contains("Clay"),
        "{results}"
    );
    browser.open("").await;
    browser.click("#next-page").await;
    browser.text_contains("#results", "Cotton blanket").await;
    browser.fill("#search-q", "teapot").await;
    browser.click("#search button").await;
    browser.heading("teapot").await;
    browser.text_contains("#results", "Glass teapot").await;
    browser.click_link("Cast-iron teapot").await;
    browser.heading("Cast-iron teapot").await;
    browser.text_contains("#product-price", "$54.00").await;
    browser.screenshot("product").await;

    // Cart, checkout with the test card; a double click on Pay places one order.
    to_checkout(&browser, &teapot, "2").await;
    browser.text_contains("#checkout-total", "$108.00").await;
    card(&browser, "4242 4242 4242 4242").await;
    browser.screenshot("checkout").await;
    browser
        .eval("const pay = document.getElementById('pay'); pay.click(); pay.click();")
        .await;
    browser.heading("Thank you for your order").await;
    browser.text_contains("#order-total", "$108.00").await;
    browser.screenshot("confirmation").await;
    let orders = orders_of(&app, &admin).await;
    assert_eq!(orders.len(), 1, "one order for a double click: {orders:#?}");
    assert_eq!(orders[0]["status"], "paid");

    browser.click("#nav-orders").await;
    browser.heading("Your orders").await;
    browser.text_contains("#orders", "Paid").await;
    browser.screenshot("orders").await;

    // The cart emptied when the order was paid; a declined card is said in words.
    browser.open("#/cart").await;
    browser.find("#cart-empty").await;
    to_checkout(&browser, &mug, "1").await;
    card(&browser, "4000 0000 0000 0002").await;
    browser.click("#pay").await;
    browser.text_contains("#checkout-error", "declined").await;
    browser.screenshot("declined").await;
    assert_eq!(orders_of(&app, &admin).await.len(), 2);

    // A customer is refused the back office.
    browser.open("#/admin").await;
    browser
        .text_contains("#admin-refused", "administrators only")
        .await;

    // The admin ships the paid order.
    browser.click("#sign-out").await;
    browser.text_contains("#flash", "signed out").await;
    sign_in(
        &browser,
        souk_testkit::ADMIN_EMAIL,
        souk_testkit::ADMIN_PASSWORD,
    )
    .await;
    browser.click("#nav-admin").await;
    browser.heading("Orders").await;
    browser
        .find("#status-filter")
        .await
        .select_by_value("paid")
        .await
        .unwrap();
    browser.click("#order-filter button").await;
    let paid = orders[0]["id"].as_str().unwrap();
    browser
        .click(&format!("#admin-orders tr[data-order='{paid}'] a"))
        .await;
    browser.click("#mark-shipped").await;
    browser.text_contains("main .status", "Shipped").await;
    browser.screenshot("back-office-order").await;
    let shipped = app
        .get(&format!("/api/v1/orders/{paid}"), Some(&admin.token))
        .await;
    assert_eq!(shipped.expect(200, None)["status"], "shipped");

    // The back office makes a product, restocks and archives it, grows the category tree,
    // and makes the shopper an admin.
    browser.click("#nav-admin-products").await;
    browser.heading("Products").await;
    browser.click("#new-product").await;
    browser.heading("New product").await;
    browser.fill("#f-sku", "KETTLE-9").await;
    browser.fill("#f-name", "Copper kettle").await;
    browser
        .fill("#f-description", "Whistles when the water boils.")
        .await;
    browser.fill("#product-price-input", "39.50").await;
    browser.fill("#f-stock", "3").await;
    browser.click("#product-form-submit").await;
    browser.heading("Edit Copper kettle").await;
    browser.fill("#stock-input", "8").await;
    browser.click("#stock-form-submit").await;
    browser
        .text_contains("#stock-form-status", "Stock is now 8")
        .await;
    let kettle = demo_product(&app, "Copper kettle").await;
    let made = app.get(&format!("/api/v1/products/{kettle}"), None).await;
    let made = made.expect(200, None);
    assert_eq!(
        (made["price_cents"].as_i64(), made["stock"].as_i64()),
        (Some(3950), Some(8))
    );
    browser.click("#archive-product").await;
    browser.text_contains("#archive-product", "Archived").await;
    let archived = app.get(&format!("/api/v1/products/{kettle}"), None).await;
    assert_eq!(archived.expect(200, None)["active"], false);

    browser.click("#nav-admin-categories").await;
    browser.heading("Categories").await;
    browser.fill("#f-name", "Kettles").await;
    browser.fill("#f-slug", "kettles").await;
    let kitchen = browser
        .eval("return [...document.querySelectorAll('#f-parent_id option')].find(o => o.textContent === 'Kitchen').value;")
        .await;
    browser
        .find("#f-parent_id")
        .await
        .select_by_value(kitchen.as_str().unwrap())
        .await
        .unwrap();
    browser.click("#category-form-submit").await;
    browser.text_contains("#admin-categories", "Kettles").await;
    let tree = app.get("/api/v1/categories", None).await;
    let tree = tree.expect(200, None)["items"].as_array().unwrap().clone();
    let kettles = tree
        .iter()
        .find(|c| c["slug"] == "kettles")
        .expect("the new category");
    assert_eq!(kettles["parent_id"], kitchen);

    browser.click("#nav-admin-users").await;
    browser.heading("Users").await;
    browser
        .click(&format!("#admin-users button[data-email='{email}']"))
        .await;
    browser.text_contains("#admin-users", "admin").await;
    let shopper = app.login(&email, PASSWORD).await;
    let token = shopper.expect(200, None)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = app.get("/api/v1/users/me", Some(&token)).await;
    assert_eq!(me.expect(200, None)["role"], "admin");

    // Phone-sized: the home page fits the width.
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.open("").await;
    browser.heading("All products").await;
    let overflow = browser
        .eval("return document.documentElement.scrollWidth - window.innerWidth;")
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the page scrolls sideways by {overflow} px"
    );
    browser.screenshot("home-phone").await;

    browser
        .assert_clean_console(&[
            "/api/v1/checkout - Failed to load resource: the server responded with a status of 402",
        ])
        .await;
    browser.quit().await;
}

#[tokio::test]
async fn session_survives_reload_refreshes_signs_out_and_pays_with_3d_secure() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let products = catalog(&app, &admin).await;
    let browser = Browser::start(app.platform.gateway()).await;
    browser.open("").await;
    let email = format!("ann-{}@example.com", uuid::Uuid::new_v4().simple());
    register(&browser, &email).await;

    // A reload keeps the session.
    browser.client.refresh().await.unwrap();
    browser.find("#sign-out").await;
    let stored = || async {
        let raw = browser
            .eval("return localStorage.getItem('souk.session');")
            .await;
        serde_json::from_str::<Value>(raw.as_str().expect("a stored session")).unwrap()
    };

    // An expired access token is refreshed before the next call, a rejected one after a 401.
    let before = stored().await;
    browser
        .eval("const s = JSON.parse(localStorage.getItem('souk.session')); s.expires_at = 0; localStorage.setItem('souk.session', JSON.stringify(s));")
        .await;
    browser.open("#/account").await;
    browser.heading("Your account").await;
    let after = stored().await;
    assert_ne!(
        before["refresh_token"], after["refresh_token"],
        "refreshed (rotated)"
    );
    browser
        .eval("const s = JSON.parse(localStorage.getItem('souk.session')); s.access_token = 'not-a-token'; localStorage.setItem('souk.session', JSON.stringify(s));")
        .await;
    browser.open("#/orders").await;
    browser.heading("Your orders").await;
    let last = stored().await;
    assert_ne!(
        last["refresh_token"], after["refresh_token"],
        "refreshed after a 401"
    );

    // 3-D Secure: the bank's challenge, completed in the page; the order settles as paid.
    to_checkout(&browser, &products[1], "1").await;
    card(&browser, "4000 0027 6000 3184").await;
    browser.click("#pay").await;
    browser.click("#souk-3ds-complete").await;
    browser.heading("Thank you for your order").await;
    browser.text_contains("main .status", "Paid").await;

    // Cancelling a paid order (asked twice) refunds it.
    browser.click("#cancel-order").await;
    browser.click("#confirm-cancel").await;
    browser.text_contains("main .status", "Cancelled").await;
    browser.text_contains("main", "Refunded $9.00").await;

    // The profile keeps a shipping address; a wrong country is named next to its field.
    browser.open("#/account").await;
    browser.heading("Your account").await;
    browser.fill("#addr-name", "Ann Shopper").await;
    browser.fill("#addr-line1", "1 Main St").await;
    browser.fill("#addr-city", "Springfield").await;
    browser.fill("#addr-postal_code", "12345").await;
    browser.fill("#addr-country", "U1").await;
    browser.click("#profile-save").await;
    browser
        .text_contains("#addr-country-error", "ISO 3166-1")
        .await;
    browser.text_contains("#profile-error", "correct").await;
    browser.fill("#addr-country", "us").await;
    browser.click("#profile-save").await;
    browser.text_contains("#profile-status", "Saved").await;
    let me = app.login(&email, PASSWORD).await;
    let token = me.expect(200, None)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = app.get("/api/v1/users/me", Some(&token)).await;
    assert_eq!(me.expect(200, None)["shipping_address"]["country"], "US");

    // Signing out revokes the refresh token at the server.
    let refresh = stored().await["refresh_token"].as_str().unwrap().to_owned();
    browser.click("#sign-out").await;
    browser.find("#nav-signin").await;
    let reuse = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(reuse.status, 401, "{}", reuse.body);

    // The access token the test spoiled was refused once, then refreshed.
    browser
        .assert_clean_console(&[
            "/api/v1/orders?limit=20 - Failed to load resource: the server responded with a status of 401",
            "/api/v1/users/me - Failed to load resource: the server responded with a status of 422",
        ])
        .await;
    browser.quit().await;
}

#[tokio::test]
async fn the_page_has_a_strict_policy_and_assets_are_cached_forever() {
    let app = App::spawn().await;
    let page = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let header = |res: &reqwest::Response, name: &str| {
        res.headers()
            .get(name)
            .unwrap_or_else(|| panic!("{name} is set"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header(&page, "cache-control"), "no-cache");
    let csp = header(&page, "content-security-policy");
    assert!(
        csp.starts_with("default-src 'self'; script-src 'self';"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("<script>") && !html.contains(" on"),
        "no inline script"
    );
    let app_js = html
        .split('"')
        .find(|part| part.starts_with("/assets/") && part.ends_with("/app.js"))
        .expect("the page loads its module from /assets/<version>/")
        .to_owned();

    let module = app.http.get(app.url(&app_js)).send().await.unwrap();
    assert_eq!(module.status(), 200);
    assert_eq!(
        header(&module, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        header(&module, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(header(&module, "x-content-type-options"), "nosniff");
    // Another build's version, or a file that is not an asset: 404.
    for missing in [
        "/assets/0000000000000000/app.js",
        &app_js.replace("app.js", "index.html"),
        &app_js.replace("app.js", "nope.js"),
    ] {
        let res = app.http.get(app.url(missing)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{missing}");
    }
    // Without payments configured the page is told so, and the policy names no Stripe origin.
    let config = app.get("/storefront/config.json", None).await;
    assert_eq!(config.expect(200, None)["stripe_js_url"], Value::Null);
    assert!(csp.contains("frame-src 'none'"), "{csp}");
    // The API is still where it was.
    app.get("/api/v1/products", None).await.expect(200, None);
}
