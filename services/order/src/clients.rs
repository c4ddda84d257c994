//! Calls to the product, cart, payment and user services, with bounded retries where the
//! operation is idempotent (all of these are: keyed by order id).

use std::future::Future;
use std::time::Duration;

use axum::http::Method;
use serde::Deserialize;
use souk_common::InternalAuth;
use souk_common::client::{CallError, ServiceClient, http_client};
use souk_contract::carts::{self, ClaimRequest, Ordered};
use souk_contract::catalog::{self, Batch, VariantEntry};
use souk_contract::payments::{self, ChargeRequest, OrderConfirmation};
use souk_contract::reservations::{self, ExtendRequest, ReserveItem, ReserveRequest};
use souk_contract::users;
use uuid::Uuid;

use crate::Config;

pub struct Clients {
    pub user: ServiceClient,
    pub product: ServiceClient,
    pub cart: ServiceClient,
    pub payment: ServiceClient,
}

impl Clients {
    pub fn new(config: &Config, auth: &InternalAuth) -> Self {
        let quick = http_client(Duration::from_secs(5));
        // Charging waits on Stripe, which may take its time.
        let slow = http_client(Duration::from_secs(30));
        let client = |http: &reqwest::Client, base: &str, to| {
            ServiceClient::new(http.clone(), base.to_owned(), auth.clone(), "order", to)
        };
        Self {
            user: client(&quick, &config.user_url, "user"),
            product: client(&quick, &config.product_url, "product"),
            cart: client(&quick, &config.cart_url, "cart"),
            payment: client(&slow, &config.payment_url, "payment"),
        }
    }
}

/// Retries an idempotent call when the service was unreachable, at most three times.
pub async fn with_retries<T, F, Fut>(mut call: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CallError>>,
{
    let mut delay = Duration::from_millis(100);
    for _ in 0..2 {
        match call().await {
            Err(CallError::Unavailable { .. }) => {
                tokio::time::sleep(delay).await;
                delay *= 3;
            }
            other => return other,
        }
    }
    call().await
}

/// A cart line to buy, as the cart claims it and the order stores it (`requested_items`).
pub use souk_contract::carts::{CartItem as RequestedItem, Claim as CartClaim};
pub use souk_contract::catalog::OptionValues;

#[derive(Debug, Deserialize)]
pub struct CartView {
    pub items: Vec<RequestedItem>,
}

pub use souk_contract::reservations::{Reservation, ReservationLine as ReservedLine};

pub use souk_contract::payments::Payment;

impl Clients {
    pub async fn user(&self, user_id: Uuid) -> Result<users::User, CallError> {
        let path = users::user(user_id);
        with_retries(|| self.user.call::<(), _>(Method::GET, &path, None, None)).await
    }

    pub async fn cart(&self, user_id: Uuid) -> Result<CartView, CallError> {
        let path = carts::cart(user_id);
        with_retries(|| self.cart.call::<(), _>(Method::GET, &path, None, None)).await
    }

    /// Claims the shopper's cart for this order (one checkout per cart at a time).
    pub async fn claim_cart(&self, user_id: Uuid, order_id: Uuid) -> Result<CartClaim, CallError> {
        let path = carts::claims(user_id);
        let body = ClaimRequest { order_id };
        with_retries(|| self.cart.call(Method::POST, &path, Some(&body), None)).await
    }

    /// Gives the cart back if this order still holds it.
    pub async fn release_cart(&self, user_id: Uuid, order_id: Uuid) -> Result<(), CallError> {
        let path = carts::claim(user_id, order_id);
        with_retries(|| {
            self.cart
                .call_empty::<()>(Method::DELETE, &path, None, None)
        })
        .await
    }

    /// Current prices and categories of these variants (unknown ones are absent), for deciding
    /// what a promotion applies to.
    pub async fn catalog(&self, variant_ids: &[Uuid]) -> Result<Vec<VariantEntry>, CallError> {
        let path = catalog::lookup_path(catalog::VARIANTS, variant_ids);
        let batch: Batch<VariantEntry> =
            with_retries(|| self.product.call::<(), _>(Method::GET, &path, None, None)).await?;
        Ok(batch.items)
    }

    pub async fn reserve(
        &self,
        order_id: Uuid,
        items: &[RequestedItem],
    ) -> Result<Reservation, CallError> {
        let body = ReserveRequest {
            order_id,
            items: items
                .iter()
                .map(|i| ReserveItem {
                    product_id: Some(i.product_id),
                    variant_id: i.variant_id,
                    quantity: i64::from(i.quantity),
                })
                .collect(),
        };
        with_retries(|| {
            self.product
                .call(Method::POST, reservations::RESERVE, Some(&body), None)
        })
        .await
    }

    pub async fn reservation_step(
        &self,
        order_id: Uuid,
        step: &str,
    ) -> Result<Reservation, CallError> {
        let path = reservations::step(order_id, step);
        with_retries(|| self.product.call::<(), _>(Method::POST, &path, None, None)).await
    }

    pub async fn charge(
        &self,
        order_id: Uuid,
        amount_cents: i64,
        currency: &str,
        payment_method: &str,
    ) -> Result<Payment, CallError> {
        let body = ChargeRequest {
            order_id,
            amount_cents,
            currency: currency.to_owned(),
            payment_method: payment_method.to_owned(),
        };
        with_retries(|| {
            self.payment
                .call(Method::POST, payments::CHARGE, Some(&body), None)
        })
        .await
    }

    /// `Ok(None)`: no charge was ever attempted for this order.
    pub async fn payment(&self, order_id: Uuid) -> Result<Option<Payment>, CallError> {
        let path = payments::payment(order_id);
        unless_never_charged(
            with_retries(|| self.payment.call::<(), _>(Method::GET, &path, None, None)).await,
        )
    }

    /// The payment's state, asked of Stripe when it is still undecided.
    pub async fn sync_payment(&self, order_id: Uuid) -> Result<Payment, CallError> {
        let path = payments::sync(order_id);
        with_retries(|| self.payment.call::<(), _>(Method::POST, &path, None, None)).await
    }

    /// Cancels a waiting payment at Stripe; the answer says `succeeded` if it was too late.
    pub async fn cancel_payment(&self, order_id: Uuid) -> Result<Option<Payment>, CallError> {
        let path = payments::cancel(order_id);
        unless_never_charged(
            with_retries(|| self.payment.call::<(), _>(Method::POST, &path, None, None)).await,
        )
    }

    /// Keeps the order's stock held until `seconds` from now (never shortens it).
    pub async fn extend_reservation(
        &self,
        order_id: Uuid,
        seconds: u64,
    ) -> Result<Reservation, CallError> {
        let path = reservations::step(order_id, "extend");
        let body = ExtendRequest { seconds };
        with_retries(|| self.product.call(Method::POST, &path, Some(&body), None)).await
    }

    pub async fn refund(&self, order_id: Uuid) -> Result<Payment, CallError> {
        let path = payments::refund(order_id);
        with_retries(|| self.payment.call::<(), _>(Method::POST, &path, None, None)).await
    }

    pub async fn remove_ordered_from_cart(
        &self,
        user_id: Uuid,
        order_id: Uuid,
        items: &[RequestedItem],
    ) -> Result<(), CallError> {
        let path = carts::ordered(user_id);
        let body = Ordered {
            order_id,
            items: items.to_vec(),
        };
        with_retries(|| self.cart.call_empty(Method::POST, &path, Some(&body), None)).await
    }

    pub async fn queue_confirmation(&self, body: &OrderConfirmation) -> Result<(), CallError> {
        with_retries(|| {
            self.payment
                .call_empty(Method::POST, payments::ORDER_CONFIRMATION, Some(body), None)
        })
        .await
    }
}

/// The payment service's 404 for an order: no charge was ever attempted for it (`None`).
fn unless_never_charged(answer: Result<Payment, CallError>) -> Result<Option<Payment>, CallError> {
    match answer {
        Ok(payment) => Ok(Some(payment)),
        Err(CallError::Api(e)) if e.status == 404 => Ok(None),
        Err(e) => Err(e),
    }
}
