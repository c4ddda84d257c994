//! Edits of a cart exclude a checkout's claim on it. While a checkout holds the cart (its
//! claim, see `claims`), the cart is what that order is buying: an edit is 409
//! `checkout_in_progress` until the order is paid (the cart is then emptied of what it bought),
//! fails, or is cancelled (the cart is the shopper's again).
//!
//! Both sides take the same per-cart transaction lock, so an edit and a claim never interleave:
//! an edit that waited for a claim's commit sees that claim and is refused, and a claim that
//! waited for an edit reads the edited lines.

use souk_common::{ApiError, ApiResult};
use souk_contract::ErrorCode;
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::AppState;

/// Takes `user`'s cart lock until the end of the transaction.
pub async fn lock_cart(conn: &mut PgConnection, user: Uuid) -> sqlx::Result<()> {
    // Advisory locks take a 64-bit key: the id folded to 64 bits. A collision of two carts
    // only makes one edit wait for the other's transaction.
    let (high, low) = user.as_u64_pair();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind((high ^ low) as i64)
        .execute(conn)
        .await?;
    Ok(())
}

/// Starts an edit of `user`'s cart: a transaction that holds the cart lock, or 409
/// `checkout_in_progress` while a checkout holds the cart.
pub async fn begin(state: &AppState, user: Uuid) -> ApiResult<Transaction<'static, Postgres>> {
    let mut tx = state.db.begin().await?;
    lock_cart(&mut tx, user).await?;
    let holder: Option<Uuid> =
        sqlx::query_scalar("SELECT order_id FROM cart_claims WHERE user_id = $1")
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?;
    match holder {
        Some(order) => Err(ApiError::conflict(
            ErrorCode::CheckoutInProgress,
            format!(
                "a checkout (order {order}) holds this cart: complete or cancel that order \
                 to change the cart"
            ),
        )),
        None => Ok(tx),
    }
}
