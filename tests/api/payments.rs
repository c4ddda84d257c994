//! The payment service: internal charge/refund for the order service, Stripe webhooks through
//! the gateway, and order confirmation e-mails. Tests that pay run against the Stripe emulator
//! and an SMTP sink (`App::spawn_shop`, Python with tests/support/requirements.txt).

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use souk::platform::{LOCAL_STRIPE_SECRET_KEY, LOCAL_STRIPE_WEBHOOK_SECRET};
use souk_common::{Caller, Role};
use uuid::Uuid;

use crate::helpers::App;
use souk_testkit::eventually;

const WEBHOOK: &str = "/api/v1/payments/webhook";

/// `Stripe-Signature` for `payload`, as Stripe computes it: HMAC-SHA256 of `"{t}.{payload}"`.
fn stripe_signature(payload: &str, secret: &str) -> String {
    let t = chrono::Utc::now().timestamp();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{payload}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn post_webhook(app: &App, payload: &str, signature: Option<&str>) -> crate::helpers::Resp {
    let mut req = app
        .http
        .post(app.url(WEBHOOK))
        .header("content-type", "application/json")
        .body(payload.to_owned());
    if let Some(signature) = signature {
        req = req.header("stripe-signature", signature);
    }
    app.send(req).await
}

fn charge_body(order_id: Uuid, amount: i64, payment_method: &str) -> Value {
    json!({
        "order_id": order_id,
        "amount_cents": amount,
        "currency": "usd",
        "payment_method": payment_method,
    })
}

async fn charge(app: &App, body: Value) -> crate::helpers::Resp {
    app.as_order_service("payment", Method::POST, "/internal/payments", Some(body))
        .await
}

/// Webhooks and queued mail arrive about 1 s after the action; the rest is room for a loaded
/// machine.
const ARRIVES_WITHIN: Duration = Duration::from_secs(15);

/// How many events of `event_type` the payment service has processed.
async fn processed(db: &sqlx::PgPool, event_type: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM processed_events WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn webhook_with_a_bad_or_missing_signature_is_400() {
    let app = App::spawn().await;
    let payload =
        json!({"id": "evt_forged", "object": "event", "type": "payment_intent.succeeded"})
            .to_string();

    let forged = stripe_signature(&payload, "whsec_not_the_right_secret");
    post_webhook(&app, &payload, Some(&forged))
        .await
        .expect(400, Some("invalid_signature"));
    post_webhook(&app, &payload, Some("t=1,v1=deadbeef"))
        .await
        .expect(400, Some("invalid_signature"));
    post_webhook(&app, &payload, None)
        .await
        .expect(400, Some("invalid_signature"));

    // Correctly signed, but the body was changed after signing.
    let signature = stripe_signature(&payload, LOCAL_STRIPE_WEBHOOK_SECRET);
    post_webhook(
        &app,
        &payload.replace("evt_forged", "evt_other"),
        Some(&signature),
    )
    .await
    .expect(400, Some("invalid_signature"));

    let db = app.db("payment").await;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(events, 0);
}

#[tokio::test]
async fn internal_payment_endpoints_are_for_services_only() {
    let app = App::spawn().await;
    let user = Caller::User {
        id: Uuid::now_v7(),
        role: Role::Admin,
    };
    let body = charge_body(Uuid::now_v7(), 100, "pm_card_visa");
    let email = json!({"order_id": Uuid::now_v7(), "to": "a@example.com", "name": "A",
        "items": [], "subtotal_cents": 0, "total_cents": 0, "currency": "usd"});
    for (method, path, body) in [
        (
            Method::POST,
            "/internal/payments".to_owned(),
            Some(body.clone()),
        ),
        (
            Method::GET,
            format!("/internal/payments/{}", Uuid::now_v7()),
            None,
        ),
        (
            Method::POST,
            format!("/internal/payments/{}/refund", Uuid::now_v7()),
            None,
        ),
        (
            Method::POST,
            "/internal/emails/order-confirmation".to_owned(),
            Some(email.clone()),
        ),
    ] {
        app.internal("payment", method.clone(), &path, Some(&user), body.clone())
            .await
            .expect(403, Some("forbidden"));
        app.internal("payment", method, &path, None, body)
            .await
            .expect(401, Some("unauthorized"));
    }
    // Not routed by the gateway at all.
    app.post("/internal/payments", None, body)
        .await
        .expect(404, None);

    // Validation, and no Stripe configured on this platform: 503, retryable.
    charge(&app, charge_body(Uuid::now_v7(), 0, "pm_card_visa"))
        .await
        .expect(422, Some("validation_failed"));
    let mut bad_currency = charge_body(Uuid::now_v7(), 100, "pm_card_visa");
    bad_currency["currency"] = json!("USD");
    charge(&app, bad_currency)
        .await
        .expect(422, Some("validation_failed"));
    charge(&app, charge_body(Uuid::now_v7(), 100, " "))
        .await
        .expect(422, Some("validation_failed"));
    let order = Uuid::now_v7();
    charge(&app, charge_body(order, 100, "pm_card_visa"))
        .await
        .expect(503, Some("service_unavailable"));
    let pending = app
        .as_order_service(
            "payment",
            Method::GET,
            &format!("/internal/payments/{order}"),
            None,
        )
        .await;
    assert_eq!(pending.expect(200, None)["status"], "processing");
    app.as_order_service(
        "payment",
        Method::GET,
        &format!("/internal/payments/{}", Uuid::now_v7()),
        None,
    )
    .await
    .expect(404, Some("not_found"));
}

#[tokio::test]
async fn charge_replays_conflicts_declines_and_refunds() {
    let app = App::spawn_shop().await;
    let order = Uuid::now_v7();

    let first = charge(&app, charge_body(order, 2599, "pm_card_visa")).await;
    let paid = first.expect(200, None).clone();
    assert_eq!(paid["status"], "succeeded", "{paid}");
    assert_eq!(paid["order_id"], order.to_string());
    assert_eq!(paid["amount_cents"], 2599);
    assert_eq!(paid["currency"], "usd");
    assert_eq!(paid["failure_code"], Value::Null);
    let pi = paid["payment_intent_id"].as_str().unwrap().to_owned();
    assert!(pi.starts_with("pi_"), "{pi}");

    // The order service retries: same answer, same PaymentIntent, no second charge.
    let again = charge(&app, charge_body(order, 2599, "pm_card_visa")).await;
    assert_eq!(again.expect(200, None), &paid);
    // A retry after the row was written but before Stripe's answer was recorded (a crash)
    // asks Stripe again with the same idempotency key: it replays the same PaymentIntent.
    let db = app.db("payment").await;
    sqlx::query(
        "UPDATE payments SET status = 'pending', payment_intent_id = NULL WHERE order_id = $1",
    )
    .bind(order)
    .execute(&db)
    .await
    .unwrap();
    let replayed = charge(&app, charge_body(order, 2599, "pm_card_visa")).await;
    assert_eq!(replayed.expect(200, None), &paid);

    // Same order, other parameters.
    charge(&app, charge_body(order, 2600, "pm_card_visa"))
        .await
        .expect(409, Some("idempotency_key_reused"));
    charge(&app, charge_body(order, 2599, "pm_card_mastercard"))
        .await
        .expect(409, Some("idempotency_key_reused"));

    let shown = app
        .as_order_service(
            "payment",
            Method::GET,
            &format!("/internal/payments/{order}"),
            None,
        )
        .await;
    assert_eq!(shown.expect(200, None), &paid);

    // A declined card: the call worked, the card did not.
    let declined_order = Uuid::now_v7();
    let declined = charge(
        &app,
        charge_body(declined_order, 1000, "pm_card_chargeDeclined"),
    )
    .await;
    let declined = declined.expect(200, None).clone();
    assert_eq!(declined["status"], "failed", "{declined}");
    assert_eq!(declined["failure_code"], "card_declined");
    assert!(!declined["failure_message"].as_str().unwrap().is_empty());
    assert!(
        declined["payment_intent_id"]
            .as_str()
            .unwrap()
            .starts_with("pi_")
    );
    let replay = charge(
        &app,
        charge_body(declined_order, 1000, "pm_card_chargeDeclined"),
    )
    .await;
    assert_eq!(replay.expect(200, None), &declined);

    // Refunds: only a succeeded payment, once.
    let refund_path = |o: Uuid| format!("/internal/payments/{o}/refund");
    app.as_order_service("payment", Method::POST, &refund_path(declined_order), None)
        .await
        .expect(409, Some("not_refundable"));
    app.as_order_service("payment", Method::POST, &refund_path(Uuid::now_v7()), None)
        .await
        .expect(404, Some("not_found"));
    let refunded = app
        .as_order_service("payment", Method::POST, &refund_path(order), None)
        .await;
    let refunded = refunded.expect(200, None).clone();
    assert_eq!(refunded["status"], "refunded", "{refunded}");
    assert_eq!(refunded["payment_intent_id"], pi.as_str());
    let again = app
        .as_order_service("payment", Method::POST, &refund_path(order), None)
        .await;
    assert_eq!(again.expect(200, None), &refunded);
    let refund_ids: Vec<Option<String>> =
        sqlx::query_scalar("SELECT refund_id FROM payments WHERE order_id = $1")
            .bind(order)
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(
        refund_ids[0]
            .as_deref()
            .is_some_and(|r| r.starts_with("re_")),
        "{refund_ids:?}"
    );
    // The emulator's webhooks (succeeded, failed, refunded) arrive and change nothing final.
    eventually(
        "the emulator's charge.refunded webhook",
        ARRIVES_WITHIN,
        async || processed(&db, "refunded").await,
        |count| *count >= 1,
    )
    .await;
    let status: String = sqlx::query_scalar("SELECT status FROM payments WHERE order_id = $1")
        .bind(order)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(status, "refunded");
}

/// A PaymentIntent as Stripe (the emulator) renders it, for building events by hand.
async fn payment_intent_json(app: &App, id: &str) -> Value {
    let stripe = app.platform.stripe.as_ref().expect("shop platform");
    let res = app
        .http
        .get(format!("{}v1/payment_intents/{id}", stripe.url()))
        .bearer_auth(LOCAL_STRIPE_SECRET_KEY)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    res.json().await.unwrap()
}

#[tokio::test]
async fn signed_webhook_event_is_processed_once() {
    let app = App::spawn_shop().await;
    let db = app.db("payment").await;
    // The emulator's own delivery reaches the payment service through the gateway, verified.
    let (order, pi) = charge_and_await_webhook(&app, &db).await;

    // An event of our own, signed with the endpoint's secret.
    let (event_id, event) = succeeded_event(&app, &pi).await;
    // Make the first delivery observable: the payment looks unfinished until it arrives.
    sqlx::query("UPDATE payments SET status = 'processing' WHERE order_id = $1")
        .bind(order)
        .execute(&db)
        .await
        .unwrap();
    let res = post_webhook(
        &app,
        &event,
        Some(&stripe_signature(&event, LOCAL_STRIPE_WEBHOOK_SECRET)),
    )
    .await;
    assert_eq!(res.expect(200, None), &json!({"received": true}));
    let status = |db: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, String>("SELECT status FROM payments WHERE order_id = $1")
            .bind(order)
            .fetch_one(&db)
            .await
            .unwrap()
    };
    assert_eq!(status(db.clone()).await, "succeeded");

    // A replay (Stripe retries, or an attacker resends a captured request): 200, no effect.
    sqlx::query("UPDATE payments SET status = 'processing' WHERE order_id = $1")
        .bind(order)
        .execute(&db)
        .await
        .unwrap();
    for _ in 0..2 {
        let res = post_webhook(
            &app,
            &event,
            Some(&stripe_signature(&event, LOCAL_STRIPE_WEBHOOK_SECRET)),
        )
        .await;
        assert_eq!(res.expect(200, None), &json!({"received": true}));
    }
    assert_eq!(status(db.clone()).await, "processing");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events WHERE event_id = $1")
        .bind(&event_id)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

/// Charges a new order 42.00 with a card that succeeds, and waits until the emulator's
/// `payment_intent.succeeded` webhook has been processed; returns the order and PaymentIntent.
async fn charge_and_await_webhook(app: &App, db: &sqlx::PgPool) -> (Uuid, String) {
    let order = Uuid::now_v7();
    let paid = charge(app, charge_body(order, 4200, "pm_card_visa")).await;
    let pi = paid.expect(200, None)["payment_intent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually(
        "the emulator's payment_intent.succeeded webhook",
        ARRIVES_WITHIN,
        async || processed(db, "payment_succeeded").await,
        |count| *count == 1,
    )
    .await;
    (order, pi)
}

/// A signed `payment_intent.succeeded` event of our own for `pi`; returns its id and body.
async fn succeeded_event(app: &App, pi: &str) -> (String, String) {
    let event_id = format!("evt_souk_test_{}", Uuid::new_v4().simple());
    let event = json!({
        "id": event_id,
        "object": "event",
        "api_version": "2026-09-30.endive",
        "created": chrono::Utc::now().timestamp(),
        "data": {"object": payment_intent_json(app, pi).await},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": "payment_intent.succeeded",
    })
    .to_string();
    (event_id, event)
}

/// How many payment events the order service was told of.
async fn relayed(app: &App) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM processed_payment_events")
        .fetch_one(&app.db("order").await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_webhook_repeating_the_charges_answer_is_not_relayed_but_one_that_set_the_status_is() {
    let app = App::spawn_shop().await;
    let db = app.db("payment").await;
    // The emulator's delivery says what the charge's answer said: the order service, which
    // made the charge, is not told again.
    let (order, pi) = charge_and_await_webhook(&app, &db).await;
    assert_eq!(relayed(&app).await, 0);

    // A status that a webhook set is told on every delivery: the first delivery's notice may
    // have failed (the order service was down), and Stripe delivers again.
    sqlx::query("UPDATE payments SET status_from_webhook = true WHERE order_id = $1")
        .bind(order)
        .execute(&db)
        .await
        .unwrap();
    let (event_id, event) = succeeded_event(&app, &pi).await;
    post_webhook(
        &app,
        &event,
        Some(&stripe_signature(&event, LOCAL_STRIPE_WEBHOOK_SECRET)),
    )
    .await
    .expect(200, None);
    let told: i64 =
        sqlx::query_scalar("SELECT count(*) FROM processed_payment_events WHERE event_id = $1")
            .bind(&event_id)
            .fetch_one(&app.db("order").await)
            .await
            .unwrap();
    assert_eq!(told, 1);
}

#[tokio::test]
async fn order_confirmation_is_sent_once_with_lines_and_total() {
    let app = App::spawn_shop().await;
    let order = Uuid::now_v7();
    let body = json!({
        "order_id": order,
        "to": "ada@example.com",
        "name": "Ada Lovelace",
        "items": [
            {"name": "Blue Mug", "sku": "MUG-BLUE", "quantity": 2, "unit_price_cents": 650,
             "line_total_cents": 1300},
            {"name": "Tea", "sku": "TEA-1", "quantity": 1, "unit_price_cents": 1134,
             "line_total_cents": 1134},
        ],
        "subtotal_cents": 2434,
        "total_cents": 2434,
        "currency": "usd",
        "shipping_address": {"name": "Ada Lovelace", "line1": "12 St James's Square",
            "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"},
    });
    let path = "/internal/emails/order-confirmation";
    let first = app
        .as_order_service("payment", Method::POST, path, Some(body.clone()))
        .await;
    assert_eq!(first.expect(202, None)["status"], "queued");
    let second = app
        .as_order_service("payment", Method::POST, path, Some(body.clone()))
        .await;
    second.expect(200, None);

    eventually(
        "the confirmation at the SMTP sink",
        ARRIVES_WITHIN,
        async || app.platform.mail(),
        |mail| !mail.is_empty(),
    )
    .await;
    // Queued again after it was sent: still nothing new. (The sink can hold the message a
    // moment before the outbox records it as sent, so ask until it says so.)
    eventually(
        "the outbox to record the confirmation as sent",
        ARRIVES_WITHIN,
        async || {
            let again = app
                .as_order_service("payment", Method::POST, path, Some(body.clone()))
                .await;
            again.expect(200, None)["status"].clone()
        },
        |status| status == "sent",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mail = app.platform.mail();
    assert_eq!(mail.len(), 1, "{mail:#?}");
    let message = &mail[0];
    let short = order.simple().to_string()[24..].to_ascii_uppercase();
    assert!(
        message.contains(&format!("Subject: Your Souk order {short} is confirmed")),
        "{message}"
    );
    assert!(message.contains("ada@example.com"), "{message}");
    assert!(
        message.contains("2 x Blue Mug (SKU MUG-BLUE) @ $6.50 = $13.00"),
        "{message}"
    );
    assert!(
        message.contains("1 x Tea (SKU TEA-1) @ $11.34 = $11.34"),
        "{message}"
    );
    assert!(message.contains("Total: $24.34"), "{message}");

    let db = app.db("payment").await;
    let (attempts, sent): (i32, bool) = sqlx::query_as(
        "SELECT attempts, sent_at IS NOT NULL FROM email_outbox WHERE order_id = $1",
    )
    .bind(order)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!((attempts, sent), (1, true));
}
