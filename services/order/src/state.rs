//! An order's state, and every move it may make.
//!
//! Three text columns of `orders` (each value below is stored as its snake_case name):
//! - `status`, what the shopper and the admin see: pending, paid, payment_failed, shipped,
//!   delivered, cancelled.
//! - `saga_state`, where the checkout saga stands (see `saga.rs`): claiming, reserving,
//!   charging, awaiting_payment, cancelling, completing, releasing, refunding, done.
//! - `payment_status`, the payment as the payment service last told it (processing,
//!   requires_action, succeeded, failed, canceled, refunded), or `pending` before any charge
//!   and `not_required` for an order of total 0.
//!
//! The combinations that exist (saga_state: status / payment_status):
//! - claiming, reserving, charging: pending / pending.
//! - awaiting_payment, cancelling: pending / requires_action or processing.
//! - completing: paid / succeeded or not_required.
//! - releasing: payment_failed / failed, or cancelled / canceled (also while recovery gives
//!   back the stock of a charge never sent).
//! - refunding: paid (the shopper cancelled), pending (the cancelled payment had succeeded) or
//!   cancelled / payment_failed (a success arrived late) / succeeded or not_required.
//! - done: paid, shipped, delivered / succeeded, not_required or refunded (a refund made in
//!   the Stripe dashboard); payment_failed / failed; cancelled / canceled, refunded or
//!   not_required.
//!
//! Only the saga (with the payment events and the shopper's cancel, which hand it the order)
//! and the admin lifecycle change `status`; only the saga changes `saga_state`. The tables
//! below are the one list of the moves they may make.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Text-stored enums: the database sees the same strings as before, so no migration.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            #[cfg_attr(
                not(test),
                allow(dead_code, reason = "the tests go through every value")
            )]
            pub const ALL: &[$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownState {
                        kind: stringify!($name),
                        value: s.to_owned(),
                    }),
                }
            }
        }

        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <str as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl sqlx::Decode<'_, sqlx::Postgres> for $name {
            fn decode(
                value: sqlx::postgres::PgValueRef<'_>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                Ok(text.parse()?)
            }
        }

        impl sqlx::postgres::PgHasArrayType for $name {
            fn array_type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }
    };
}

#[derive(Debug, thiserror::Error)]
#[error("{value:?} is not a known {kind}")]
pub struct UnknownState {
    kind: &'static str,
    value: String,
}

text_enum!(
    /// `pending -> paid -> shipped -> delivered`; `pending -> payment_failed`;
    /// `pending | paid -> cancelled` (a paid order is refunded first).
    #[derive(utoipa::ToSchema)]
    OrderStatus {
        Pending => "pending",
        Paid => "paid",
        PaymentFailed => "payment_failed",
        Shipped => "shipped",
        Delivered => "delivered",
        Cancelled => "cancelled",
    }
);

text_enum!(
    /// Where the checkout saga stands; `done` once nothing is left to do.
    SagaState {
        Claiming => "claiming",
        Reserving => "reserving",
        Charging => "charging",
        AwaitingPayment => "awaiting_payment",
        Cancelling => "cancelling",
        Completing => "completing",
        Releasing => "releasing",
        Refunding => "refunding",
        Done => "done",
    }
);

/// The order's payment (shown in the API as `payment.status`): the payment service's status,
/// plus `pending` before any charge and `not_required` for an order of total 0.
pub use souk_contract::payments::PaymentStatus;

/// Who may make a status move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mover {
    /// The checkout saga, driven by the request, the payment events, the shopper's cancel or
    /// the recovery loop.
    Saga,
    /// An admin, through `PATCH /api/v1/admin/orders/{id}`.
    Admin,
}

impl OrderStatus {
    /// Who may move an order from this status to `to`; None: nobody (staying put is no move).
    pub fn move_to(self, to: OrderStatus) -> Option<Mover> {
        use OrderStatus::*;
        match (self, to) {
            (Pending, Paid | PaymentFailed | Cancelled) => Some(Mover::Saga),
            // The shopper cancelled a paid order, or a payment that had failed or been called
            // off succeeded late: refunded, then cancelled.
            (Paid | PaymentFailed, Cancelled) => Some(Mover::Saga),
            (Paid, Shipped) | (Shipped, Delivered) => Some(Mover::Admin),
            (
                Pending | Paid | PaymentFailed | Shipped | Delivered | Cancelled,
                Pending | Paid | PaymentFailed | Shipped | Delivered | Cancelled,
            ) => None,
        }
    }

    /// The one status an admin may move an order from to reach `to`, if any.
    pub fn admin_source(to: OrderStatus) -> Option<OrderStatus> {
        OrderStatus::ALL
            .iter()
            .copied()
            .find(|from| from.move_to(to) == Some(Mover::Admin))
    }
}

impl SagaState {
    /// Whether the saga may go from this state to `to`.
    pub fn can_become(self, to: SagaState) -> bool {
        use SagaState::*;
        match self {
            Claiming => to == Reserving,
            Reserving => to == Charging,
            // Paid (or free) | declined, or never charged (recovery) | 3-D Secure | the
            // stock expired while the shopper had to act.
            Charging => matches!(to, Completing | Releasing | AwaitingPayment | Cancelling),
            AwaitingPayment => matches!(to, Completing | Releasing | Cancelling),
            // Called off at Stripe | it had succeeded meanwhile.
            Cancelling => matches!(to, Releasing | Refunding),
            Completing => to == Done,
            // A success that arrived while releasing is refunded.
            Releasing => matches!(to, Done | Refunding),
            Refunding => to == Done,
            // The shopper cancels a paid order, or a late success is given back.
            Done => to == Refunding,
        }
    }

    /// What the shopper's cancel does: (status, saga state) it applies to, and the saga state
    /// it hands the order to. A paid order is refunded; one waiting for a 3-D Secure step has
    /// its PaymentIntent cancelled first. Anything else cannot be cancelled (409).
    pub const CANCELS: &[(OrderStatus, SagaState, SagaState)] = &[
        (OrderStatus::Paid, SagaState::Done, SagaState::Refunding),
        (
            OrderStatus::Pending,
            SagaState::AwaitingPayment,
            SagaState::Cancelling,
        ),
    ];

    /// States in which the order may still be removed: nothing reserved, nothing charged.
    pub const REMOVABLE: &[SagaState] = &[SagaState::Claiming, SagaState::Reserving];

    /// A checkout that reached one of these has an outcome to show (a repeated request
    /// answers with it); before them it is still running.
    pub fn has_outcome(self) -> bool {
        !matches!(
            self,
            SagaState::Claiming | SagaState::Reserving | SagaState::Charging
        )
    }
}

/// An order's three states together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderState {
    pub status: OrderStatus,
    pub saga: SagaState,
    pub payment: PaymentStatus,
}

/// What a payment event from the provider (Stripe's webhook, relayed) does to an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventOutcome {
    pub next: OrderState,
    /// The success came while the order was being released or its payment cancelled: it is
    /// refunded once that ends (`late_success`).
    pub late_success: bool,
}

impl OrderState {
    /// The payment succeeded. An order waiting for it completes; one that stopped waiting
    /// (cancelled, failed) is refunded, at once if finished or after its release. A paid
    /// order is left alone (None); in any other state only the payment's status follows.
    pub fn on_payment_succeeded(self) -> Option<EventOutcome> {
        use OrderStatus::*;
        use SagaState::*;
        let mut next = self;
        let mut late_success = false;
        match self.saga {
            AwaitingPayment => {
                next.saga = Completing;
                next.status = Paid;
                next.payment = PaymentStatus::Succeeded;
            }
            Done => match self.status {
                Paid | Shipped | Delivered => return None,
                // Already refunded: a late or repeated success changes nothing.
                Pending | PaymentFailed | Cancelled if self.payment == PaymentStatus::Refunded => {
                    return None;
                }
                Pending | PaymentFailed | Cancelled => {
                    next.saga = Refunding;
                    next.payment = PaymentStatus::Succeeded;
                }
            },
            Releasing | Cancelling => late_success = true,
            Claiming | Reserving | Charging | Completing | Refunding => {}
        }
        Some(EventOutcome { next, late_success })
    }

    /// The payment failed: only an order waiting for it moves (to give its stock back).
    pub fn on_payment_failed(self) -> Option<EventOutcome> {
        use SagaState::*;
        match self.saga {
            AwaitingPayment => Some(EventOutcome {
                next: OrderState {
                    status: OrderStatus::PaymentFailed,
                    saga: Releasing,
                    payment: PaymentStatus::Failed,
                },
                late_success: false,
            }),
            Claiming | Reserving | Charging | Cancelling | Completing | Releasing | Refunding
            | Done => None,
        }
    }

    /// Whether going to `next` is allowed by the tables above (staying put always is).
    pub fn may_become(self, next: OrderState) -> bool {
        (self.saga == next.saga || self.saga.can_become(next.saga))
            && (self.status == next.status || self.status.move_to(next.status) == Some(Mover::Saga))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_moves_are_exactly_the_table() {
        use OrderStatus::*;
        let allowed = [
            (Pending, Paid, Mover::Saga),
            (Pending, PaymentFailed, Mover::Saga),
            (Pending, Cancelled, Mover::Saga),
            (Paid, Cancelled, Mover::Saga),
            (PaymentFailed, Cancelled, Mover::Saga),
            (Paid, Shipped, Mover::Admin),
            (Shipped, Delivered, Mover::Admin),
        ];
        for &from in OrderStatus::ALL {
            for &to in OrderStatus::ALL {
                let expected = allowed
                    .iter()
                    .find(|(f, t, _)| (*f, *t) == (from, to))
                    .map(|(_, _, mover)| *mover);
                assert_eq!(from.move_to(to), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn an_admin_ships_paid_orders_and_delivers_shipped_ones_only() {
        use OrderStatus::*;
        assert_eq!(OrderStatus::admin_source(Shipped), Some(Paid));
        assert_eq!(OrderStatus::admin_source(Delivered), Some(Shipped));
        for to in [Pending, Paid, PaymentFailed, Cancelled] {
            assert_eq!(OrderStatus::admin_source(to), None, "{to}");
        }
    }

    #[test]
    fn saga_moves_are_exactly_the_table() {
        use SagaState::*;
        let allowed = [
            (Claiming, Reserving),
            (Reserving, Charging),
            (Charging, Completing),
            (Charging, Releasing),
            (Charging, AwaitingPayment),
            (Charging, Cancelling),
            (AwaitingPayment, Completing),
            (AwaitingPayment, Releasing),
            (AwaitingPayment, Cancelling),
            (Cancelling, Releasing),
            (Cancelling, Refunding),
            (Completing, Done),
            (Releasing, Done),
            (Releasing, Refunding),
            (Refunding, Done),
            (Done, Refunding),
        ];
        for &from in SagaState::ALL {
            for &to in SagaState::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn a_cancel_is_a_saga_move_the_table_allows() {
        for &(status, from, to) in SagaState::CANCELS {
            assert!(from.can_become(to), "{status}: {from} -> {to}");
            assert!(
                exists(from, status) && exists(to, status),
                "{status}: {from} -> {to}"
            );
        }
        // Refunding ends in `cancelled`, which a paid order may become.
        assert_eq!(
            OrderStatus::Paid.move_to(OrderStatus::Cancelled),
            Some(Mover::Saga)
        );
    }

    /// The (saga state, status) pairs that exist, as the module's comment lists them.
    fn exists(saga: SagaState, status: OrderStatus) -> bool {
        use OrderStatus::*;
        use SagaState::*;
        match saga {
            Claiming | Reserving | Charging | AwaitingPayment | Cancelling => status == Pending,
            Completing => status == Paid,
            Releasing => matches!(status, PaymentFailed | Cancelled),
            Refunding => matches!(status, Paid | Pending | PaymentFailed | Cancelled),
            Done => status != Pending,
        }
    }

    /// Every order state whose saga state and status go together.
    fn every_order_state() -> impl Iterator<Item = OrderState> {
        OrderStatus::ALL
            .iter()
            .flat_map(|&status| {
                SagaState::ALL.iter().flat_map(move |&saga| {
                    PaymentStatus::ALL.iter().map(move |&payment| OrderState {
                        status,
                        saga,
                        payment,
                    })
                })
            })
            .filter(|s| exists(s.saga, s.status))
    }

    #[test]
    fn payment_events_only_make_moves_the_tables_allow() {
        for state in every_order_state() {
            for outcome in [state.on_payment_succeeded(), state.on_payment_failed()]
                .into_iter()
                .flatten()
            {
                assert!(state.may_become(outcome.next), "{state:?} -> {outcome:?}");
                assert!(
                    exists(outcome.next.saga, outcome.next.status),
                    "{state:?} -> {outcome:?}"
                );
            }
        }
    }

    #[test]
    fn a_payment_success_completes_a_waiting_order_and_refunds_a_given_up_one() {
        use OrderStatus::*;
        use SagaState::*;
        let at = |status, saga, payment| OrderState {
            status,
            saga,
            payment,
        };
        let waiting = at(Pending, AwaitingPayment, PaymentStatus::RequiresAction);
        assert_eq!(
            waiting.on_payment_succeeded(),
            Some(EventOutcome {
                next: at(Paid, Completing, PaymentStatus::Succeeded),
                late_success: false
            })
        );
        let failed = at(PaymentFailed, Done, PaymentStatus::Failed);
        assert_eq!(
            failed.on_payment_succeeded().map(|o| o.next),
            Some(at(PaymentFailed, Refunding, PaymentStatus::Succeeded))
        );
        let releasing = at(Cancelled, Releasing, PaymentStatus::Canceled);
        assert_eq!(
            releasing.on_payment_succeeded(),
            Some(EventOutcome {
                next: releasing,
                late_success: true
            })
        );
        for status in [Paid, Shipped, Delivered] {
            assert_eq!(
                at(status, Done, PaymentStatus::Succeeded).on_payment_succeeded(),
                None
            );
        }
        // Refunded already: a repeated success neither refunds again nor shows `succeeded`.
        for status in [Cancelled, PaymentFailed] {
            assert_eq!(
                at(status, Done, PaymentStatus::Refunded).on_payment_succeeded(),
                None
            );
        }
        assert_eq!(
            waiting.on_payment_failed().map(|o| o.next),
            Some(at(PaymentFailed, Releasing, PaymentStatus::Failed))
        );
        assert_eq!(failed.on_payment_failed(), None);
    }

    #[test]
    fn every_state_reads_back_from_its_stored_text() {
        for &s in OrderStatus::ALL {
            assert_eq!(s.as_str().parse::<OrderStatus>().ok(), Some(s));
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::json!(s.as_str()))
            );
        }
        for &s in SagaState::ALL {
            assert_eq!(s.as_str().parse::<SagaState>().ok(), Some(s));
        }
        for &s in PaymentStatus::ALL {
            assert_eq!(s.as_str().parse::<PaymentStatus>().ok(), Some(s));
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::json!(s.as_str()))
            );
        }
        assert!("requires_capture".parse::<PaymentStatus>().is_err());
    }
}
