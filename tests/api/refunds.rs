//! Refunds by amount: a partial refund made in the Stripe dashboard shows on the order, and a
//! later cancel refunds only what is left.

use std::time::Duration;

use serde_json::{Value, json};
use souk::platform::LOCAL_STRIPE_SECRET_KEY;

use crate::checkout::{checkout, product, shopper_with_cart, stock};
use crate::helpers::App;
use souk_testkit::eventually;

#[tokio::test]
async fn a_dashboard_partial_refund_then_cancel_refunds_only_the_rest() {
    let app = App::spawn_shop().await;
    let admin = app.admin().await;
    let kettle = product(&app, &admin, 3_000, 2).await;
    let me = shopper_with_cart(&app, &kettle, 1).await;
    let order = checkout(&app, &me, "partial-1", "pm_card_visa")
        .await
        .expect(201, None)
        .clone();
    let pi = order["payment"]["payment_intent_id"].as_str().unwrap();
    let stripe = app.platform.stripe.as_ref().unwrap();
    // The dashboard gives 10.00 back.
    let res = app
        .http
        .post(format!("{}v1/refunds", stripe.url()))
        .bearer_auth(LOCAL_STRIPE_SECRET_KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("payment_intent={pi}&amount=1000"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let path = format!("/api/v1/orders/{}", order["id"].as_str().unwrap());
    let now = eventually(
        "the partial refund shows on the order",
        Duration::from_secs(15),
        async || app.get(&path, Some(&me.token)).await.body,
        |now| now["payment"]["amount_refunded_cents"] == 1_000,
    )
    .await;
    assert_eq!(
        now["status"], "paid",
        "a partial refund leaves the order paid"
    );
    assert_eq!(now["payment"]["status"], "succeeded");

    let res = app
        .post(&format!("{path}/cancel"), Some(&me.token), json!({}))
        .await;
    let cancelled = res.expect(200, None);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["payment"]["status"], "refunded");
    assert_eq!(cancelled["payment"]["amount_refunded_cents"], 3_000);
    assert_eq!(stock(&app, &kettle).await, 2);
    // Stripe gave back 30.00 in all: 10.00 from the dashboard, 20.00 from the cancel.
    let res = app
        .http
        .get(format!(
            "{}v1/payment_intents/{pi}?expand[]=latest_charge",
            stripe.url()
        ))
        .bearer_auth(LOCAL_STRIPE_SECRET_KEY)
        .send()
        .await
        .unwrap();
    let intent: Value = res.json().await.unwrap();
    assert_eq!(
        intent["latest_charge"]["amount_refunded"], 3_000,
        "{intent}"
    );
}
