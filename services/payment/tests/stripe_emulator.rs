//! The Stripe gateway against the Stripe emulator (tests/support/stripe_emulator.py), with the
//! real async-stripe client. Each test starts its own emulator on a free port: they run in
//! parallel and share no Stripe state or webhook registration.
//!
//! Needs `python3` with tests/support/requirements.txt installed; without it these tests fail
//! (they never skip) and say what to install.

#![allow(
    clippy::unwrap_used,
    reason = "a test that fails at an unwrap is doing its job"
)]

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::stripe::{Client, ClientBuilder};
use axum::http::HeaderMap;
use souk_payment::stripe::{
    ChargeOutcome, IntentState, StripeCallError, StripeGateway, VerifiedEventKind, WebhookError,
    verify_webhook,
};
use souk_testkit::{StripeEmulator, eventually, start_stripe_emulator};
use stripe_core::payment_intent::ListPaymentIntent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

const SECRET_KEY: &str = "sk_test_souk_emulator";
const WEBHOOK_SECRET: &str = "whsec_souk_test";

/// The shared emulator process (souk_testkit), plus views for these tests.
struct Emulator(StripeEmulator);

impl Emulator {
    fn start() -> Self {
        Self(start_stripe_emulator().unwrap_or_else(|e| panic!("{e:#}")))
    }

    fn base(&self) -> String {
        self.0.url()
    }

    fn gateway(&self) -> StripeGateway {
        StripeGateway::new(SECRET_KEY, Some(&self.base())).expect("gateway config")
    }

    /// A plain async-stripe client, to look at the emulator's state from the side.
    fn client(&self) -> Client {
        ClientBuilder::new(SECRET_KEY)
            .url(self.base())
            .build()
            .expect("client")
    }

    async fn payment_intents_for(&self, order_id: Uuid) -> Vec<String> {
        let all = ListPaymentIntent::new()
            .limit(100)
            .send(&self.client())
            .await
            .expect("list");
        all.data
            .into_iter()
            .filter(|pi| pi.metadata.get("order_id") == Some(&order_id.to_string()))
            .map(|pi| pi.id.to_string())
            .collect()
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn key() -> String {
    format!("test-{}", Uuid::new_v4())
}

/// A `pm_card_visa` charge for `order`, which must succeed: its PaymentIntent.
async fn visa_charge(stripe: &StripeGateway, order: Uuid, amount: i64) -> String {
    let outcome = stripe
        .charge(&key(), order, amount, "usd", "pm_card_visa")
        .await
        .unwrap();
    let ChargeOutcome::Succeeded { payment_intent_id } = outcome else {
        panic!("expected success, got {outcome:?}");
    };
    payment_intent_id
}

#[tokio::test]
async fn visa_charge_succeeds_and_retrieve_agrees() {
    let emulator = Emulator::start();
    let stripe = emulator.gateway();
    let order = Uuid::new_v4();

    let outcome = stripe
        .charge(&key(), order, 2599, "usd", "pm_card_visa")
        .await
        .unwrap();
    let ChargeOutcome::Succeeded { payment_intent_id } = outcome else {
        panic!("expected success, got {outcome:?}");
    };
    assert!(payment_intent_id.starts_with("pi_"));
    assert_eq!(
        stripe.retrieve(&payment_intent_id).await.unwrap(),
        IntentState::Succeeded
    );
    assert_eq!(
        emulator.payment_intents_for(order).await,
        vec![payment_intent_id]
    );

    let missing = stripe.retrieve("pi_doesnotexist").await.unwrap_err();
    assert!(
        matches!(missing, StripeCallError::Rejected { status: 404, .. }),
        "{missing:?}"
    );
    assert!(!missing.is_retryable());
}

#[tokio::test]
async fn same_idempotency_key_replays_the_same_payment_intent() {
    let emulator = Emulator::start();
    let stripe = emulator.gateway();
    let order = Uuid::new_v4();
    let key = key();

    let first = stripe
        .charge(&key, order, 1000, "usd", "pm_card_visa")
        .await
        .unwrap();
    let again = stripe
        .charge(&key, order, 1000, "usd", "pm_card_visa")
        .await
        .unwrap();
    assert_eq!(first, again);

    // Concurrent retries with one key: still a single PaymentIntent.
    let (order2, key2) = (Uuid::new_v4(), self::key());
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (stripe, key2) = (stripe.clone(), key2.clone());
        calls.spawn(async move {
            stripe
                .charge(&key2, order2, 1500, "usd", "pm_card_visa")
                .await
        });
    }
    let outcomes: Vec<_> = calls
        .join_all()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(outcomes.windows(2).all(|w| w[0] == w[1]), "{outcomes:?}");
    assert!(matches!(outcomes[0], ChargeOutcome::Succeeded { .. }));

    assert_eq!(emulator.payment_intents_for(order).await.len(), 1);
    assert_eq!(emulator.payment_intents_for(order2).await.len(), 1);
}

#[tokio::test]
async fn same_key_with_other_parameters_is_refused() {
    let emulator = Emulator::start();
    let stripe = emulator.gateway();
    let order = Uuid::new_v4();
    let key = key();

    stripe
        .charge(&key, order, 1000, "usd", "pm_card_visa")
        .await
        .unwrap();
    let error = stripe
        .charge(&key, order, 1001, "usd", "pm_card_visa")
        .await
        .unwrap_err();
    assert!(
        matches!(error, StripeCallError::IdempotencyKeyReused(_)),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert_eq!(emulator.payment_intents_for(order).await.len(), 1);
}

#[tokio::test]
async fn declined_card_is_declined_with_its_payment_intent() {
    let emulator = Emulator::start();
    let stripe = emulator.gateway();
    let key = key();

    let outcome = stripe
        .charge(&key, Uuid::new_v4(), 1000, "usd", "pm_card_chargeDeclined")
        .await
        .unwrap();
    let ChargeOutcome::Declined {
        payment_intent_id: Some(id),
        code,
        decline_code,
        message,
    } = outcome.clone()
    else {
        panic!("expected a decline with a PaymentIntent, got {outcome:?}");
    };
    assert_eq!(code, "card_declined");
    assert_eq!(decline_code.as_deref(), Some("generic_decline"));
    assert!(!message.is_empty());
    assert_eq!(
        stripe.retrieve(&id).await.unwrap(),
        IntentState::RequiresPaymentMethod
    );

    let insufficient = stripe
        .charge(
            &self::key(),
            Uuid::new_v4(),
            1000,
            "usd",
            "pm_card_chargeDeclinedInsufficientFunds",
        )
        .await
        .unwrap();
    assert!(
        matches!(&insufficient, ChargeOutcome::Declined { decline_code: Some(d), .. } if d == "insufficient_funds"),
        "{insufficient:?}"
    );

    let three_ds = stripe
        .charge(
            &self::key(),
            Uuid::new_v4(),
            1000,
            "usd",
            "pm_card_threeDSecure2Required",
        )
        .await
        .unwrap();
    let ChargeOutcome::RequiresAction {
        payment_intent_id,
        client_secret,
        next_action,
    } = three_ds
    else {
        panic!("expected requires_action, got {three_ds:?}");
    };
    assert!(client_secret.is_some_and(|s| s.starts_with(&payment_intent_id)));
    assert_eq!(next_action.unwrap()["type"], "use_stripe_sdk");
    assert_eq!(
        stripe.retrieve(&payment_intent_id).await.unwrap(),
        IntentState::RequiresAction
    );
    // Waiting for the shopper can be called off; a cancelled one cannot be cancelled again.
    assert_eq!(
        stripe.cancel(&payment_intent_id).await.unwrap(),
        IntentState::Canceled
    );
    assert!(matches!(
        stripe.cancel(&payment_intent_id).await,
        Err(StripeCallError::Rejected { status: 400, .. })
    ));
}

#[tokio::test]
async fn declined_charge_replays_identically() {
    let emulator = Emulator::start();
    let stripe = emulator.gateway();
    let (key, order) = (key(), Uuid::new_v4());
    let first = stripe
        .charge(&key, order, 700, "eur", "pm_card_chargeDeclined")
        .await
        .unwrap();
    let again = stripe
        .charge(&key, order, 700, "eur", "pm_card_chargeDeclined")
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(emulator.payment_intents_for(order).await.len(), 1);
}

/// A charge's refunds are its own: partial refunds add up on it, and another charge's don't
/// count (the emulator keeps them per charge rather than scanning its whole store).
#[tokio::test]
async fn partial_refunds_add_up_per_charge() {
    let emulator = Emulator::start();
    let stripe = emulator.gateway();
    let first = visa_charge(&stripe, Uuid::new_v4(), 1000).await;
    let second = visa_charge(&stripe, Uuid::new_v4(), 1000).await;
    assert_eq!(stripe.amount_refunded(&first).await.unwrap(), 0);

    stripe.refund(&key(), &first, Some(300)).await.unwrap();
    stripe.refund(&key(), &first, Some(200)).await.unwrap();
    stripe.refund(&key(), &second, Some(50)).await.unwrap();

    assert_eq!(stripe.amount_refunded(&first).await.unwrap(), 500);
    assert_eq!(stripe.amount_refunded(&second).await.unwrap(), 50);
}

#[tokio::test]
async fn refund_is_idempotent_and_refuses_failed_payments() {
    let emulator = Emulator::start();
    let stripe = emulator.gateway();

    let payment_intent_id = visa_charge(&stripe, Uuid::new_v4(), 4200).await;
    let refund_key = key();
    let refund = stripe
        .refund(&refund_key, &payment_intent_id, None)
        .await
        .unwrap();
    assert!(refund.starts_with("re_"), "{refund}");
    assert_eq!(
        stripe
            .refund(&refund_key, &payment_intent_id, None)
            .await
            .unwrap(),
        refund
    );

    let ChargeOutcome::Declined {
        payment_intent_id: Some(failed),
        ..
    } = stripe
        .charge(
            &key(),
            Uuid::new_v4(),
            4200,
            "usd",
            "pm_card_chargeDeclined",
        )
        .await
        .unwrap()
    else {
        panic!("expected a decline");
    };
    let error = stripe.refund(&key(), &failed, None).await.unwrap_err();
    assert!(
        matches!(error, StripeCallError::Rejected { status: 400, .. }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
}

/// Webhook deliveries captured by the test's receiver: (Stripe-Signature, body).
type Deliveries = Arc<Mutex<Vec<(String, String)>>>;

async fn webhook_receiver() -> (SocketAddr, Deliveries) {
    let deliveries: Deliveries = Arc::default();
    let seen = deliveries.clone();
    let app = axum::Router::new().route(
        "/webhook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let signature = headers
                    .get("stripe-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                seen.lock().unwrap().push((signature, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, deliveries)
}

#[tokio::test]
async fn webhooks_are_delivered_signed_and_verified() {
    let emulator = Emulator::start();
    let stripe = emulator.gateway();
    let (addr, deliveries) = webhook_receiver().await;
    let url = format!("http://{addr}/webhook");
    emulator
        .0
        .register_webhook(&url, WEBHOOK_SECRET)
        .await
        .expect("webhook registered");

    let (paid_order, failed_order) = (Uuid::new_v4(), Uuid::new_v4());
    let paid = visa_charge(&stripe, paid_order, 1234).await;
    let ChargeOutcome::Declined {
        payment_intent_id: Some(failed),
        ..
    } = stripe
        .charge(&key(), failed_order, 1234, "usd", "pm_card_chargeDeclined")
        .await
        .unwrap()
    else {
        panic!("expected a decline");
    };
    stripe.refund(&key(), &paid, None).await.unwrap();

    // localstripe delivers about 1 s after the action.
    eventually(
        "three webhook deliveries",
        Duration::from_secs(15),
        async || deliveries.lock().unwrap().len(),
        |delivered| *delivered >= 3,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await; // nothing else should arrive
    let deliveries = deliveries.lock().unwrap().clone();
    assert_eq!(deliveries.len(), 3, "{deliveries:#?}");

    let mut kinds = Vec::new();
    let mut ids = Vec::new();
    for (signature, body) in &deliveries {
        assert!(
            signature.starts_with("t=") && signature.contains(",v1="),
            "{signature}"
        );
        let event = verify_webhook(body, signature, WEBHOOK_SECRET)
            .unwrap_or_else(|e| panic!("{e}: {body}"));
        assert!(event.id.starts_with("evt_"));
        ids.push(event.id);
        kinds.push(event.kind);

        // Tampering with the signature, the body or the secret is refused.
        let mut forged = signature.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == '0' { '1' } else { '0' });
        assert!(matches!(
            verify_webhook(body, &forged, WEBHOOK_SECRET),
            Err(WebhookError::BadSignature(_))
        ));
        let altered = body.replacen("1234", "1", 1);
        assert!(matches!(
            verify_webhook(&altered, signature, WEBHOOK_SECRET),
            Err(WebhookError::BadSignature(_))
        ));
        assert!(verify_webhook(body, signature, "whsec_other").is_err());
        assert!(verify_webhook(body, "garbage", WEBHOOK_SECRET).is_err());
    }
    ids.dedup();
    assert_eq!(ids.len(), 3);
    assert!(kinds.contains(&VerifiedEventKind::PaymentSucceeded {
        payment_intent_id: paid.clone(),
        order_id: Some(paid_order.to_string()),
    }));
    assert!(kinds.contains(&VerifiedEventKind::PaymentFailed {
        payment_intent_id: failed,
        order_id: Some(failed_order.to_string()),
    }));
    assert!(kinds.iter().any(|k| matches!(k,
        VerifiedEventKind::ChargeRefunded { payment_intent_id: Some(pi), charge_id, .. }
            if *pi == paid && charge_id.starts_with("ch_"))));

    // A signature older than 5 minutes is refused even when it matches.
    let (_, body) = &deliveries[0];
    let old = ::stripe_webhook::Webhook::generate_test_header(
        body,
        WEBHOOK_SECRET,
        Some(chrono::Utc::now().timestamp() - 600),
    );
    assert!(matches!(
        verify_webhook(body, &old, WEBHOOK_SECRET),
        Err(WebhookError::StaleTimestamp(_))
    ));
}

#[tokio::test]
async fn transport_and_gateway_failures_are_retryable() {
    // Nothing listens: a transport error.
    let closed = format!("http://127.0.0.1:{}/", free_port());
    let stripe = StripeGateway::new(SECRET_KEY, Some(&closed)).unwrap();
    let error = stripe
        .charge(&key(), Uuid::new_v4(), 100, "usd", "pm_card_visa")
        .await;
    let error = error.unwrap_err();
    assert!(matches!(error, StripeCallError::Transport(_)), "{error:?}");
    assert!(error.is_retryable());

    // A proxy's HTML 502 page: unavailable, retryable.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let page = "<html>502 Bad Gateway</html>";
            let answer = format!(
                "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    let proxy = StripeGateway::new(SECRET_KEY, Some(&format!("http://127.0.0.1:{port}"))).unwrap();
    let error = proxy.retrieve("pi_123").await.unwrap_err();
    assert!(
        matches!(error, StripeCallError::Unavailable { .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());

    // Refused before any call.
    let error = stripe.refund("", "pi_123", None).await.unwrap_err();
    assert!(
        matches!(error, StripeCallError::InvalidInput(_)),
        "{error:?}"
    );
    assert!(StripeGateway::new("pk_test_123", None).is_err());
    assert!(StripeGateway::new(SECRET_KEY, Some("127.0.0.1:1234")).is_err());
    assert!(StripeGateway::new(SECRET_KEY, None).is_ok());
}
