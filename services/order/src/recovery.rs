//! Finishes or compensates checkouts that a crash or an outage left half-way. Runs in every
//! replica; a lease on each order keeps two replicas (or a live request) from driving the same
//! order at once.

use uuid::Uuid;

use crate::AppState;
use crate::saga::{self, Driver, Stop};
use crate::state::SagaState;

pub fn spawn(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.config.recovery_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = run_once(&state).await {
                tracing::warn!(error = %e, "recovery pass failed");
            }
        }
    });
}

/// Claims unfinished orders whose lease has run out, one at a time, and advances each; a
/// failure does not end the pass.
pub async fn run_once(state: &AppState) -> anyhow::Result<usize> {
    let mut recovered = 0;
    loop {
        let claimed: Option<Uuid> = sqlx::query_scalar(
            "UPDATE orders SET lease_until = now() + make_interval(secs => $1)
             WHERE id = (
               SELECT id FROM orders
               WHERE saga_state <> $2 AND (lease_until IS NULL OR lease_until < now())
               ORDER BY lease_until NULLS FIRST, updated_at LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING id",
        )
        .bind(state.config.lease.as_secs_f64())
        .bind(SagaState::Done)
        .fetch_optional(&state.db)
        .await?;
        let Some(id) = claimed else {
            return Ok(recovered);
        };
        // The claim's lease keeps this order out of the rest of the pass (and puts it behind
        // every order waiting longer), so one that keeps failing cannot starve the others.
        match saga::advance(state, id, Driver::Recovery).await {
            Stop::Interrupted(e) => {
                tracing::warn!(order_id = %id, error = %e, "recovery interrupted; will retry after the lease");
            }
            Stop::Settled if still_awaiting_payment(state, id).await? => {
                // A shopper's 3-D Secure step is still open: checked with Stripe, nothing
                // changed. Every poll would otherwise claim to have recovered it.
                tracing::debug!(order_id = %id, "payment still awaited");
            }
            Stop::Settled | Stop::Rejected(_) => {
                tracing::info!(order_id = %id, "recovered");
                recovered += 1;
            }
        }
    }
}

async fn still_awaiting_payment(state: &AppState, id: Uuid) -> sqlx::Result<bool> {
    let saga_state: Option<SagaState> =
        sqlx::query_scalar("SELECT saga_state FROM orders WHERE id = $1")
            .bind(id)
            .fetch_optional(&state.db)
            .await?;
    Ok(saga_state == Some(SagaState::AwaitingPayment))
}
