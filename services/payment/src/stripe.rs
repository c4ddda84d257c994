//! Souk's gateway to Stripe: a thin, typed wrapper around `async-stripe` 1.0.
//!
//! Everything the payment service asks of Stripe goes through [`StripeGateway`], and every
//! webhook through [`verify_webhook`]. Tests run the same code against the emulator in
//! `tests/support/stripe_emulator.py` (set `api_base`); there is no other fake.
//!
//! Errors say what the caller may do next: [`StripeCallError::is_retryable`] is true when the
//! same call (same idempotency key) may be tried again, false when Stripe gave a final answer.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

// `::stripe` is the async-stripe crate (this module is `crate::stripe`).
use ::stripe::{
    Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest,
};
use souk_contract::stripe::WEBHOOK_EVENTS;
use stripe_core::payment_intent::{
    CancelPaymentIntent, CreatePaymentIntent, CreatePaymentIntentAutomaticPaymentMethods,
    CreatePaymentIntentAutomaticPaymentMethodsAllowRedirects, RetrievePaymentIntent,
};
use stripe_core::refund::CreateRefund;
use stripe_shared::{
    ApiErrors, ApiErrorsType, PaymentIntent, PaymentIntentCaptureMethod, PaymentIntentStatus,
};
use stripe_webhook::{EventObject, Webhook};

/// Metadata key under which each PaymentIntent carries its Souk order id.
pub const ORDER_ID_METADATA_KEY: &str = "order_id";

/// Default per-attempt timeout: a hung connection must not hold a checkout forever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The Stripe client, configured once per process.
#[derive(Clone, Debug)]
pub struct StripeGateway {
    client: Client,
    timeout: Duration,
}

/// The gateway could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum StripeConfigError {
    #[error("the Stripe secret key must start with sk_ or rk_")]
    BadSecretKey,
    #[error("the Stripe API base {0:?} must be an http:// or https:// URL")]
    BadApiBase(String),
    #[error("invalid Stripe client configuration: {0}")]
    Client(String),
}

/// A Stripe call failed without a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum StripeCallError {
    /// Stripe could not be reached or did not answer in time. Retryable with the same key:
    /// the first attempt may or may not have been executed.
    #[error("could not reach Stripe: {0}")]
    Transport(String),
    /// Stripe answered 5xx, 429 (rate limited), 409 (conflicting concurrent request) or 424, or
    /// an error page it did not write (a proxy's). Retryable with the same key.
    #[error("Stripe is unavailable (status {}): {message}", .status.map_or("unknown".into(), |s| s.to_string()))]
    Unavailable {
        status: Option<u16>,
        message: String,
    },
    /// The idempotency key was first used with other parameters. Not retryable.
    #[error("idempotency key reused with different parameters: {0}")]
    IdempotencyKeyReused(String),
    /// Stripe refused the request (4xx): sending it again gives the same answer.
    #[error("Stripe refused the request (HTTP {status}, {kind}{}): {message}", .code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    Rejected {
        status: u16,
        kind: String,
        code: Option<String>,
        message: String,
    },
    /// Input refused before calling Stripe (an empty or too long idempotency key).
    #[error("invalid Stripe request: {0}")]
    InvalidInput(String),
    /// Stripe answered something this client cannot read or did not expect. Not retryable.
    #[error("unexpected answer from Stripe: {0}")]
    UnexpectedResponse(String),
}

impl StripeCallError {
    /// True when the same call, with the same idempotency key, may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transport(_) | Self::Unavailable { .. })
    }
}

/// What became of a charge attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// The money is captured.
    Succeeded { payment_intent_id: String },
    /// The card was declined (or the payment failed): a final answer for this attempt.
    /// `payment_intent_id` is None only when Stripe declined without making a PaymentIntent.
    Declined {
        payment_intent_id: Option<String>,
        /// Stripe's error code, e.g. `card_declined`, `expired_card`.
        code: String,
        /// The issuer's reason when known, e.g. `generic_decline`, `insufficient_funds`.
        decline_code: Option<String>,
        /// Stripe's message, fit to show to the shopper.
        message: String,
    },
    /// The card needs customer authentication (3-D Secure) before it can be charged: the
    /// client finishes it with Stripe.js from `client_secret`.
    RequiresAction {
        payment_intent_id: String,
        client_secret: Option<String>,
        /// Stripe's `next_action`, reduced to what a client needs: `type` and, for a
        /// redirect, `redirect_to_url.url`.
        next_action: Option<serde_json::Value>,
    },
    /// Stripe accepted the payment but has not finished it: the outcome arrives by webhook
    /// (or a later [`StripeGateway::retrieve`]).
    Processing { payment_intent_id: String },
}

/// A PaymentIntent's status, as far as Souk cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntentState {
    Succeeded,
    Processing,
    RequiresPaymentMethod,
    RequiresAction,
    Canceled,
    /// Any other Stripe status (`requires_confirmation`, `requires_capture`, new ones).
    Other(String),
}

impl From<&PaymentIntentStatus> for IntentState {
    fn from(status: &PaymentIntentStatus) -> Self {
        match status {
            PaymentIntentStatus::Succeeded => Self::Succeeded,
            PaymentIntentStatus::Processing => Self::Processing,
            PaymentIntentStatus::RequiresPaymentMethod => Self::RequiresPaymentMethod,
            PaymentIntentStatus::RequiresAction => Self::RequiresAction,
            PaymentIntentStatus::Canceled => Self::Canceled,
            other => Self::Other(other.as_str().to_owned()),
        }
    }
}

impl StripeGateway {
    /// `api_base` None = real Stripe; `Some("http://127.0.0.1:P/")` = the emulator.
    pub fn new(secret_key: &str, api_base: Option<&str>) -> Result<Self, StripeConfigError> {
        if !(secret_key.starts_with("sk_") || secret_key.starts_with("rk_")) || secret_key.len() < 4
        {
            return Err(StripeConfigError::BadSecretKey);
        }
        let mut builder = ClientBuilder::new(secret_key);
        if let Some(base) = api_base {
            if !(base.starts_with("http://") || base.starts_with("https://")) {
                return Err(StripeConfigError::BadApiBase(base.to_owned()));
            }
            // async-stripe appends "v1/..." to the base as written: it needs the trailing '/'.
            let base = if base.ends_with('/') {
                base.to_owned()
            } else {
                format!("{base}/")
            };
            builder = builder.url(base);
        }
        let client = builder
            .build()
            .map_err(|e| StripeConfigError::Client(e.to_string()))?;
        Ok(Self {
            client,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Per-attempt timeout for every call (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Creates and confirms a PaymentIntent for `order_id` (card given, captured at once),
    /// sent with Stripe `Idempotency-Key: idempotency_key`.
    ///
    /// Replaying the same call returns Stripe's first answer, the same PaymentIntent: that is
    /// how a retry after a timeout or a crash learns what really happened, without charging
    /// twice. The same key with other parameters is [`StripeCallError::IdempotencyKeyReused`].
    pub async fn charge(
        &self,
        idempotency_key: &str,
        order_id: uuid::Uuid,
        amount_cents: i64,
        currency: &str,
        payment_method: &str,
    ) -> Result<ChargeOutcome, StripeCallError> {
        let currency = stripe_types::Currency::from_str(currency).unwrap_or_else(|e| match e {});
        // Server-side confirmation with a saved card: no redirect-based methods, so Stripe
        // needs no return_url. 3-D Secure still shows up as `requires_action`.
        let mut automatic = CreatePaymentIntentAutomaticPaymentMethods::new(true);
        automatic.allow_redirects =
            Some(CreatePaymentIntentAutomaticPaymentMethodsAllowRedirects::Never);
        let request = CreatePaymentIntent::new(amount_cents, currency)
            .payment_method(payment_method)
            .confirm(true)
            .capture_method(PaymentIntentCaptureMethod::Automatic)
            .automatic_payment_methods(automatic)
            .metadata(HashMap::from([(
                ORDER_ID_METADATA_KEY.to_owned(),
                order_id.to_string(),
            )]));
        let answer = request
            .customize()
            .request_strategy(idempotent(idempotency_key)?)
            .timeout(self.timeout)
            .send(&self.client)
            .await;
        match answer {
            Ok(intent) => outcome_of(&intent),
            // 402: the parameters were valid but the payment failed (a decline). Stripe puts
            // the PaymentIntent, now `requires_payment_method`, inside the error.
            Err(StripeError::Stripe(error, 402)) => Ok(declined(&error)),
            Err(other) => Err(other.into()),
        }
    }

    /// The current state of a PaymentIntent.
    pub async fn retrieve(&self, payment_intent_id: &str) -> Result<IntentState, StripeCallError> {
        let intent = RetrievePaymentIntent::new(payment_intent_id)
            .customize()
            .timeout(self.timeout)
            .send(&self.client)
            .await?;
        Ok(IntentState::from(&intent.status))
    }

    /// Cancels a PaymentIntent that has not succeeded. A PaymentIntent that already succeeded
    /// (or was cancelled) cannot be: Stripe refuses, and [`Self::retrieve`] tells which.
    pub async fn cancel(&self, payment_intent_id: &str) -> Result<IntentState, StripeCallError> {
        let intent = CancelPaymentIntent::new(payment_intent_id)
            .customize()
            .timeout(self.timeout)
            .send(&self.client)
            .await?;
        Ok(IntentState::from(&intent.status))
    }

    /// How much of a PaymentIntent's charge has been refunded so far (by anyone, the Stripe
    /// dashboard included).
    pub async fn amount_refunded(&self, payment_intent_id: &str) -> Result<i64, StripeCallError> {
        let intent = RetrievePaymentIntent::new(payment_intent_id)
            .expand(vec!["latest_charge".to_owned()])
            .customize()
            .timeout(self.timeout)
            .send(&self.client)
            .await?;
        match intent.latest_charge {
            Some(stripe_types::Expandable::Object(charge)) => Ok(charge.amount_refunded),
            None => Ok(0),
            Some(stripe_types::Expandable::Id(_)) => Err(StripeCallError::UnexpectedResponse(
                "latest_charge was not expanded".into(),
            )),
        }
    }

    /// Refunds a PaymentIntent: `amount` cents, or all that is left when None; returns the
    /// refund's id. Replaying the same key returns the same refund.
    pub async fn refund(
        &self,
        idempotency_key: &str,
        payment_intent_id: &str,
        amount: Option<i64>,
    ) -> Result<String, StripeCallError> {
        let mut request = CreateRefund::new().payment_intent(payment_intent_id);
        if let Some(amount) = amount {
            request = request.amount(amount);
        }
        let refund = request
            .customize()
            .request_strategy(idempotent(idempotency_key)?)
            .timeout(self.timeout)
            .send(&self.client)
            .await?;
        Ok(refund.id.to_string())
    }
}

fn idempotent(key: &str) -> Result<RequestStrategy, StripeCallError> {
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| StripeCallError::InvalidInput(e.to_string()))
}

fn outcome_of(intent: &PaymentIntent) -> Result<ChargeOutcome, StripeCallError> {
    let payment_intent_id = intent.id.to_string();
    match &intent.status {
        PaymentIntentStatus::Succeeded => Ok(ChargeOutcome::Succeeded { payment_intent_id }),
        PaymentIntentStatus::Processing => Ok(ChargeOutcome::Processing { payment_intent_id }),
        PaymentIntentStatus::RequiresAction => Ok(ChargeOutcome::RequiresAction {
            payment_intent_id,
            client_secret: intent.client_secret.clone(),
            next_action: intent.next_action.as_ref().map(|a| {
                let mut action = serde_json::json!({ "type": a.type_ });
                if let Some(url) = a.redirect_to_url.as_ref().and_then(|r| r.url.clone()) {
                    action["redirect_to_url"] = serde_json::json!({ "url": url });
                }
                action
            }),
        }),
        PaymentIntentStatus::RequiresPaymentMethod => {
            let error = intent.last_payment_error.as_deref();
            Ok(ChargeOutcome::Declined {
                payment_intent_id: Some(payment_intent_id),
                code: error
                    .and_then(|e| e.code.as_ref())
                    .map_or("payment_failed".into(), |c| c.as_str().to_owned()),
                decline_code: error.and_then(|e| e.decline_code.clone()),
                message: error
                    .and_then(|e| e.message.clone())
                    .unwrap_or_else(|| "The payment failed.".into()),
            })
        }
        // Not reachable from a create with confirm=true and automatic capture.
        other => Err(StripeCallError::UnexpectedResponse(format!(
            "PaymentIntent {payment_intent_id} is {} right after confirmation",
            other.as_str()
        ))),
    }
}

fn declined(error: &ApiErrors) -> ChargeOutcome {
    ChargeOutcome::Declined {
        payment_intent_id: error.payment_intent.as_ref().map(|pi| pi.id.to_string()),
        code: error
            .code
            .as_ref()
            .map_or("card_declined".into(), |c| c.as_str().to_owned()),
        decline_code: error.decline_code.clone(),
        message: error
            .message
            .clone()
            .unwrap_or_else(|| "Your card was declined.".into()),
    }
}

impl From<StripeError> for StripeCallError {
    fn from(error: StripeError) -> Self {
        match error {
            StripeError::Stripe(api, status) => {
                let message = api.message.clone().unwrap_or_default();
                if matches!(status, 409 | 424 | 429 | 500..) {
                    Self::Unavailable {
                        status: Some(status),
                        message,
                    }
                } else if api.type_ == ApiErrorsType::IdempotencyError {
                    Self::IdempotencyKeyReused(message)
                } else {
                    Self::Rejected {
                        status,
                        kind: api.type_.as_str().to_owned(),
                        code: api.code.as_ref().map(|c| c.as_str().to_owned()),
                        message,
                    }
                }
            }
            StripeError::ClientError(e) => Self::Transport(e),
            StripeError::Timeout => Self::Transport("timed out".into()),
            // async-stripe says this (and loses the status) when a non-2xx body is not a
            // Stripe error object: an error page from a proxy or load balancer in front of
            // Stripe, typically a 502/503. Other deserialize errors are on a 2xx answer.
            StripeError::JSONDeserialize(e) if e == "error deserializing Stripe error" => {
                Self::Unavailable {
                    status: None,
                    message: e,
                }
            }
            StripeError::JSONDeserialize(e) => Self::UnexpectedResponse(e),
            StripeError::ConfigError(e) => Self::InvalidInput(e),
        }
    }
}

/// A webhook event whose signature was verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedEvent {
    /// Stripe's event id (`evt_...`): process each one once.
    pub id: String,
    pub kind: VerifiedEventKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifiedEventKind {
    PaymentSucceeded {
        payment_intent_id: String,
        order_id: Option<String>,
    },
    PaymentFailed {
        payment_intent_id: String,
        order_id: Option<String>,
    },
    ChargeRefunded {
        payment_intent_id: Option<String>,
        charge_id: String,
        /// Everything refunded on the charge so far (a dashboard refund may be partial).
        amount_refunded: i64,
    },
    /// Any other event type (acknowledge it and move on).
    Other(String),
}

/// A webhook request that must be refused (answer 400).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("bad Stripe-Signature: {0}")]
    BadSignature(String),
    #[error("Stripe-Signature timestamp {0} is more than 5 minutes away from now")]
    StaleTimestamp(i64),
    #[error("malformed webhook event: {0}")]
    Malformed(String),
}

/// Verifies a webhook's `Stripe-Signature` header (HMAC-SHA256 with the endpoint's secret,
/// timestamp within 5 minutes) and reads the event.
pub fn verify_webhook(
    payload: &str,
    signature_header: &str,
    secret: &str,
) -> Result<VerifiedEvent, WebhookError> {
    use stripe_webhook::WebhookError as E;
    let event = match Webhook::construct_event(payload, signature_header, secret) {
        Ok(event) => event,
        Err(E::BadKey) => return Err(WebhookError::BadSignature("unusable secret".into())),
        Err(E::BadHeader(e)) => return Err(WebhookError::BadSignature(e.to_string())),
        Err(E::BadSignature) => {
            return Err(WebhookError::BadSignature(
                "signature does not match".into(),
            ));
        }
        Err(E::BadTimestamp(t)) => return Err(WebhookError::StaleTimestamp(t)),
        // The signature was checked before parsing: the event is authentic, only its object
        // is not readable by this client. Refuse it for the types we act on (something is
        // wrong: Stripe will retry and it shows in our logs); acknowledge the rest.
        Err(E::BadParse(reason)) => return other_event(payload, reason),
    };
    let id = event.id.to_string();
    let kind = match event.data.object {
        EventObject::PaymentIntentSucceeded(intent) => VerifiedEventKind::PaymentSucceeded {
            order_id: intent.metadata.get(ORDER_ID_METADATA_KEY).cloned(),
            payment_intent_id: intent.id.to_string(),
        },
        EventObject::PaymentIntentPaymentFailed(intent) => VerifiedEventKind::PaymentFailed {
            order_id: intent.metadata.get(ORDER_ID_METADATA_KEY).cloned(),
            payment_intent_id: intent.id.to_string(),
        },
        EventObject::ChargeRefunded(charge) => VerifiedEventKind::ChargeRefunded {
            payment_intent_id: charge.payment_intent.as_ref().map(|pi| pi.id().to_string()),
            charge_id: charge.id.to_string(),
            amount_refunded: charge.amount_refunded,
        },
        _ => VerifiedEventKind::Other(event.type_.as_str().to_owned()),
    };
    Ok(VerifiedEvent { id, kind })
}

/// A Stripe event object (https://docs.stripe.com/api/events).
// The webhook's body: what every event has, and all that is read of one that Stripe's client
// cannot parse.
#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct StripeEvent {
    #[schema(examples("evt_1Q0abc"))]
    id: String,
    #[serde(rename = "type")]
    #[schema(examples("payment_intent.succeeded"))]
    kind: String,
    /// The event's data (`data.object`: the payment intent, charge, ...).
    // Stripe's client reads it (`verify_webhook`): skipped here.
    #[serde(rename = "data", default)]
    #[schema(value_type = Object)]
    _data: Option<serde::de::IgnoredAny>,
}

fn other_event(payload: &str, reason: String) -> Result<VerifiedEvent, WebhookError> {
    let envelope: StripeEvent = serde_json::from_str(payload)
        .map_err(|e| WebhookError::Malformed(format!("{reason}: {e}")))?;
    if WEBHOOK_EVENTS.contains(&envelope.kind.as_str()) {
        return Err(WebhookError::Malformed(format!(
            "{} {}: {reason}",
            envelope.kind, envelope.id
        )));
    }
    Ok(VerifiedEvent {
        id: envelope.id,
        kind: VerifiedEventKind::Other(envelope.kind),
    })
}
