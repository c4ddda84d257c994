//! The fault matrix: a crash at every step of the checkout saga, then recovery. Each ends with
//! no order left unfinished, stock = initial - paid, exactly one successful charge per paid
//! order and none (or a refund) for every other.

use souk_order::FaultPoint;

use crate::checkout::{checkout, product, shopper_with_cart, stock, wait_until_settled};
use crate::helpers::{App, fast_recovery};

const INITIAL: i64 = 5;
const BOUGHT: i64 = 2;

/// Crashes checkout at `point`, waits for recovery; returns the final order status (None: the
/// order was removed) after checking the invariants.
async fn crash_and_recover(point: FaultPoint) -> Option<String> {
    let app = App::spawn_shop_with(|c| {
        c.order.fault = Some(point);
        fast_recovery(c);
    })
    .await;
    let admin = app.admin().await;
    let teapot = product(&app, &admin, 1_100, INITIAL).await;
    let me = shopper_with_cart(&app, &teapot, BOUGHT).await;
    let res = checkout(&app, &me, "crash", "pm_card_visa").await;
    assert!(
        res.status.is_server_error(),
        "{point:?}: the crash fails the request: {} {}",
        res.status,
        res.body
    );
    let orders = app.db("order").await;
    let payments = app.db("payment").await;
    wait_until_settled(&app).await;
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM orders")
        .fetch_optional(&orders)
        .await
        .unwrap();
    let paid = i64::from(status.as_deref() == Some("paid"));
    assert_eq!(
        stock(&app, &teapot).await,
        INITIAL - paid * BOUGHT,
        "{point:?}: stock = initial - paid"
    );
    let charged: i64 =
        sqlx::query_scalar("SELECT count(*) FROM payments WHERE status = 'succeeded'")
            .fetch_one(&payments)
            .await
            .unwrap();
    assert_eq!(
        charged, paid,
        "{point:?}: one charge per paid order, none otherwise"
    );
    let cart = app.get("/api/v1/cart", Some(&me.token)).await.body;
    let left = cart["items"].as_array().unwrap().len();
    assert_eq!(
        left,
        usize::from(paid == 0),
        "{point:?}: cart bought or given back"
    );
    // The cart is not held by a dead checkout: another checkout gets a straight answer.
    let again = checkout(&app, &me, "after-crash", "pm_card_visa").await;
    if paid == 1 {
        again.expect(409, Some("cart_empty"));
    } else {
        assert_eq!(again.expect(201, None)["status"], "paid", "{point:?}");
    }
    status
}

#[tokio::test]
async fn crash_after_the_order_row_removes_the_order() {
    assert_eq!(crash_and_recover(FaultPoint::AfterOrderRow).await, None);
}

#[tokio::test]
async fn crash_after_the_reservation_releases_it_uncharged() {
    assert_eq!(
        crash_and_recover(FaultPoint::AfterReservation)
            .await
            .as_deref(),
        Some("cancelled")
    );
}

#[tokio::test]
async fn crash_with_the_charge_unanswered_is_paid_once() {
    assert_eq!(
        crash_and_recover(FaultPoint::ChargeUnanswered)
            .await
            .as_deref(),
        Some("paid")
    );
}

#[tokio::test]
async fn crash_after_the_charge_is_paid_once() {
    assert_eq!(
        crash_and_recover(FaultPoint::AfterCharge).await.as_deref(),
        Some("paid")
    );
}

#[tokio::test]
async fn crash_after_paid_is_completed() {
    assert_eq!(
        crash_and_recover(FaultPoint::AfterPaid).await.as_deref(),
        Some("paid")
    );
}

#[tokio::test]
async fn crash_after_committing_the_reservation_is_completed() {
    assert_eq!(
        crash_and_recover(FaultPoint::AfterReservationCommit)
            .await
            .as_deref(),
        Some("paid")
    );
}
