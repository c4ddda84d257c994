//! `souk up` with Stripe named by the environment (`STRIPE_API_BASE`, `STRIPE_SECRET_KEY`,
//! `STRIPE_WEBHOOK_SECRET`): here an emulator started by the test, as Stripe itself would be.
//! `souk up` starts no emulator of its own, and a checkout pays through the one it was given.

#![allow(
    clippy::unwrap_used,
    reason = "a test that fails at an unwrap is doing its job"
)]

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use souk_testkit::{TestDatabases, eventually, start_stripe_emulator, test_server_url};
use tokio::io::{AsyncBufReadExt, BufReader};

const KEY: &str = "sk_test_from_the_environment";
const WEBHOOK_SECRET: &str = "whsec_from_the_environment";

/// `souk up` on databases (dropped with the guard) and a state directory of its own, paying
/// through the Stripe at `stripe_api_base`, on free ports.
fn souk_up(stripe_api_base: &str) -> (tokio::process::Command, TestDatabases, std::path::PathBuf) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("souk_test_{id}");
    let state = std::env::temp_dir().join(format!("souk_up_{id}"));
    let mut up = tokio::process::Command::new(env!("CARGO_BIN_EXE_souk"));
    up.arg("up")
        .env("STRIPE_API_BASE", stripe_api_base)
        .env("STRIPE_SECRET_KEY", KEY)
        .env("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
        // An emulator of its own would need this interpreter: there is none.
        .env("PYTHON", "/nonexistent/python3")
        .env("SOUK_GATEWAY_ADDR", "127.0.0.1:0")
        // Its own ops port too: tests run side by side, and the default 9090 is one for all.
        .env("SOUK_OPS_ADDR", "127.0.0.1:0")
        .env("SOUK_STATE_DIR", &state)
        .env("SOUK_DATABASE_URL", test_server_url())
        .env("SOUK_DATABASE_PREFIX", &prefix)
        .env("SOUK_ADMIN_EMAIL", "admin@up.test")
        .env("SOUK_ADMIN_PASSWORD", "admin-password-1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    (up, TestDatabases::new(&prefix), state)
}

async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn souk_up_pays_through_the_stripe_named_by_the_environment() {
    let emulator = start_stripe_emulator().expect("the test's Stripe emulator starts");
    let (mut up, databases, state) = souk_up(&emulator.url());
    let prefix = databases.prefix().to_owned();
    let mut up = up
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("souk up runs");
    let mut lines = BufReader::new(up.stdout.take().unwrap()).lines();
    let mut said = Vec::new();
    let gateway = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            said.push(line.clone());
            if let Some(url) = line.strip_prefix("gateway listening on ") {
                return url.to_owned();
            }
        }
        panic!("souk up ended early: {said:?}");
    })
    .await
    .expect("souk up starts within 2 minutes");
    let said = said.join("\n");
    assert!(
        said.contains(&format!("payments: Stripe at {}", emulator.url())),
        "{said}"
    );
    assert!(!said.contains("Stripe emulator on"), "{said}");
    assert!(
        said.contains(&format!("storefront: open {gateway}/ in a browser")),
        "{said}"
    );
    emulator
        .register_webhook(
            &format!("{gateway}/api/v1/payments/webhook"),
            WEBHOOK_SECRET,
        )
        .await
        .unwrap();

    let http = reqwest::Client::new();
    // The storefront, whose checkout loads the stand-in Stripe.js of the Stripe named here.
    let page = http.get(format!("{gateway}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let (status, config) = call(http.get(format!("{gateway}/storefront/config.json"))).await;
    assert_eq!(status, 200);
    assert_eq!(
        config["stripe_js_url"],
        format!("{}/js.stripe.com/v3/", emulator.url().trim_end_matches('/'))
    );
    let api = |path: &str| format!("{gateway}/api/v1{path}");
    let (_, admin) = call(
        http.post(api("/auth/login"))
            .json(&json!({"email": "admin@up.test", "password": "admin-password-1"})),
    )
    .await;
    let admin = admin["access_token"].as_str().unwrap().to_owned();
    let (status, product) = call(
        http.post(api("/products"))
            .bearer_auth(&admin)
            .json(&json!({
            "sku": "UP-1", "name": "Kettle", "description": "Copper", "price_cents": 3100,
            "currency": "usd", "stock": 4})),
    )
    .await;
    assert_eq!(status, 201, "{product}");
    let (status, shopper) = call(http.post(api("/auth/register")).json(&json!({
            "email": "ann@up.test", "password": "correct-horse-1", "name": "Ann"})))
    .await;
    assert_eq!(status, 201, "{shopper}");
    let token = shopper["access_token"].as_str().unwrap().to_owned();
    let address = json!({"name": "Ann", "line1": "1 Main St", "city": "Springfield",
                         "postal_code": "12345", "country": "US"});
    let (status, _) = call(
        http.patch(api("/users/me"))
            .bearer_auth(&token)
            .json(&json!({ "shipping_address": address })),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        http.post(api("/cart/items"))
            .bearer_auth(&token)
            .json(&json!({"product_id": product["id"], "quantity": 1})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, order) = call(
        http.post(api("/checkout"))
            .bearer_auth(&token)
            .header("idempotency-key", "up-1")
            .json(&json!({"payment_method": "pm_card_visa"})),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "paid");
    // The PaymentIntent is in the emulator the environment named, under its key.
    let pi = order["payment"]["payment_intent_id"].as_str().unwrap();
    let (status, intent) = call(
        http.get(format!("{}v1/payment_intents/{pi}", emulator.url()))
            .bearer_auth(KEY),
    )
    .await;
    assert_eq!(
        (status, intent["status"].as_str()),
        (200, Some("succeeded"))
    );

    // Its webhooks reach the shop, verified with STRIPE_WEBHOOK_SECRET: cancelling refunds,
    // and charge.refunded comes back.
    let path = format!("/orders/{}/cancel", order["id"].as_str().unwrap());
    let (status, cancelled) =
        call(http.post(api(&path)).bearer_auth(&token).json(&json!({}))).await;
    assert_eq!(status, 200, "{cancelled}");
    let db = sqlx::PgPool::connect(
        &souk_common::db::with_database(&test_server_url(), &format!("{prefix}_payment")).unwrap(),
    )
    .await
    .unwrap();
    eventually(
        "the charge.refunded webhook",
        Duration::from_secs(15),
        async || -> i64 {
            sqlx::query_scalar(
                "SELECT count(*) FROM processed_events WHERE event_type = 'refunded'",
            )
            .fetch_one(&db)
            .await
            .unwrap()
        },
        |refunds| *refunds == 1,
    )
    .await;
    db.close().await;
    // A clean stop, so the databases can be dropped.
    let pid = up.id().unwrap().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(20), up.wait()).await;
    let _ = std::fs::remove_dir_all(&state);
}

/// `souk up` reads `SOUK_TRUSTED_PROXIES` like `souk serve gateway`: a bad value stops it
/// instead of being ignored.
#[tokio::test]
async fn souk_up_reads_the_trusted_proxies_like_the_gateway() {
    let (mut up, _databases, _state) = souk_up("http://127.0.0.1:9");
    let up = up
        .env("SOUK_TRUSTED_PROXIES", "10.0.0.0/8, not-a-network")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), up)
        .await
        .expect("souk up refuses the setting instead of starting")
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("SOUK_TRUSTED_PROXIES"), "{said}");
}
