//! The product service's internal reservation API, called the way the order service calls it:
//! straight to the service, signed as a service.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use souk_common::caller::{Caller, Role};

use crate::catalog::create_product;
use crate::helpers::{App, Resp};

/// A request to `service` directly, as `caller` (`None`: no identity at all).
pub async fn direct(
    app: &App,
    service: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    caller: Option<Caller>,
) -> Resp {
    app.send(app.signed(service, method, path, caller.as_ref(), body.as_ref()))
        .await
}

fn order() -> Option<Caller> {
    Some(Caller::Service("order".into()))
}

async fn reserve(app: &App, order_id: uuid::Uuid, items: Value) -> Resp {
    direct(
        app,
        "product",
        Method::POST,
        "/internal/reservations",
        Some(json!({"order_id": order_id, "items": items})),
        order(),
    )
    .await
}

/// Read from the product service itself, like the reservations: the gateway may answer from
/// its cache for up to its TTL, and these writes do not pass through it.
async fn stock(app: &App, id: &str) -> i64 {
    let url = format!("{}/api/v1/products/{id}", app.platform.url("product"));
    app.send(app.http.get(url)).await.expect(200, None)["stock"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn reserve_commit_release_and_replay() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let a = create_product(&app, &admin.token, "A-1", 1250, 5, &[]).await;
    let b = create_product(&app, &admin.token, "B-1", 300, 2, &[]).await;
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());

    // Only services: a user token is 403 (even an admin's), nothing is 401, and the gateway
    // does not route /internal at all.
    let user = Some(Caller::User {
        id: uuid::Uuid::now_v7(),
        role: Role::Admin,
    });
    let body =
        json!({"order_id": uuid::Uuid::now_v7(), "items": [{"product_id": a_id, "quantity": 1}]});
    direct(
        &app,
        "product",
        Method::POST,
        "/internal/reservations",
        Some(body.clone()),
        user,
    )
    .await
    .expect(403, Some("forbidden"));
    direct(
        &app,
        "product",
        Method::POST,
        "/internal/reservations",
        Some(body.clone()),
        None,
    )
    .await
    .expect(401, Some("unauthorized"));
    let via_gateway = app
        .post("/internal/reservations", Some(&admin.token), body)
        .await;
    assert_eq!(via_gateway.status.as_u16(), 404);

    // All-or-nothing: one short line reserves nothing.
    let order1 = uuid::Uuid::now_v7();
    let res = reserve(
        &app,
        order1,
        json!([{"product_id": a_id, "quantity": 2}, {"product_id": b_id, "quantity": 3}]),
    )
    .await;
    let problem = res.expect(409, Some("insufficient_stock"));
    assert!(
        problem["detail"].as_str().unwrap().contains(b_id),
        "{problem}"
    );
    assert_eq!(stock(&app, a_id).await, 5);
    assert_eq!(stock(&app, b_id).await, 2);

    // Lines of the same product are summed; prices are the catalog's.
    let res = reserve(&app, order1, json!([{"product_id": a_id, "quantity": 1}, {"product_id": b_id, "quantity": 2}, {"product_id": a_id, "quantity": 1}])).await;
    let first = res.expect(201, None).clone();
    assert_eq!(first["status"], "reserved");
    assert_eq!(first["order_id"], order1.to_string());
    let lines = first["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    let line_a = lines.iter().find(|l| l["product_id"] == a_id).unwrap();
    assert_eq!(line_a["quantity"], 2);
    assert_eq!(line_a["unit_price_cents"], 1250);
    assert_eq!(line_a["sku"], "A-1");
    assert_eq!(line_a["currency"], "usd");
    assert!(first["expires_at"].is_string());
    assert_eq!(stock(&app, a_id).await, 3);
    assert_eq!(stock(&app, b_id).await, 0);

    // Replay: same answer, 200, nothing reserved twice.
    let again = reserve(
        &app,
        order1,
        json!([{"product_id": b_id, "quantity": 2}, {"product_id": a_id, "quantity": 2}]),
    )
    .await;
    assert_eq!(again.expect(200, None), &first);
    assert_eq!(stock(&app, a_id).await, 3);
    // Same order id, different items: refused.
    reserve(&app, order1, json!([{"product_id": a_id, "quantity": 1}]))
        .await
        .expect(409, Some("idempotency_key_reused"));

    let path = format!("/internal/reservations/{order1}");
    assert_eq!(
        direct(&app, "product", Method::GET, &path, None, order())
            .await
            .expect(200, None),
        &first
    );
    direct(
        &app,
        "product",
        Method::GET,
        &format!("/internal/reservations/{}", uuid::Uuid::now_v7()),
        None,
        order(),
    )
    .await
    .expect(404, Some("reservation_not_found"));

    // Commit is idempotent; a committed reservation cannot be released.
    let committed = direct(
        &app,
        "product",
        Method::POST,
        &format!("{path}/commit"),
        None,
        order(),
    )
    .await;
    assert_eq!(committed.expect(200, None)["status"], "committed");
    direct(
        &app,
        "product",
        Method::POST,
        &format!("{path}/commit"),
        None,
        order(),
    )
    .await
    .expect(200, None);
    direct(
        &app,
        "product",
        Method::POST,
        &format!("{path}/release"),
        None,
        order(),
    )
    .await
    .expect(409, Some("reservation_committed"));
    assert_eq!(stock(&app, a_id).await, 3);

    // Release returns stock once; a released reservation cannot be committed.
    let order2 = uuid::Uuid::now_v7();
    reserve(&app, order2, json!([{"product_id": a_id, "quantity": 3}]))
        .await
        .expect(201, None);
    assert_eq!(stock(&app, a_id).await, 0);
    let path2 = format!("/internal/reservations/{order2}");
    for _ in 0..2 {
        let released = direct(
            &app,
            "product",
            Method::POST,
            &format!("{path2}/release"),
            None,
            order(),
        )
        .await;
        assert_eq!(released.expect(200, None)["status"], "released");
        assert_eq!(stock(&app, a_id).await, 3);
    }
    direct(
        &app,
        "product",
        Method::POST,
        &format!("{path2}/commit"),
        None,
        order(),
    )
    .await
    .expect(409, Some("reservation_released"));

    // Unknown or archived products are unavailable; bad quantities are 422.
    reserve(
        &app,
        uuid::Uuid::now_v7(),
        json!([{"product_id": uuid::Uuid::now_v7(), "quantity": 1}]),
    )
    .await
    .expect(409, Some("product_unavailable"));
    app.delete(&format!("/api/v1/products/{b_id}"), Some(&admin.token))
        .await
        .expect(204, None);
    reserve(
        &app,
        uuid::Uuid::now_v7(),
        json!([{"product_id": b_id, "quantity": 1}]),
    )
    .await
    .expect(409, Some("product_unavailable"));
    for q in [0, -1, 101] {
        reserve(
            &app,
            uuid::Uuid::now_v7(),
            json!([{"product_id": a_id, "quantity": q}]),
        )
        .await
        .expect(422, Some("validation_failed"));
    }
    reserve(&app, uuid::Uuid::now_v7(), json!([]))
        .await
        .expect(422, Some("validation_failed"));
    reserve(
        &app,
        uuid::Uuid::now_v7(),
        json!([{"product_id": a_id, "quantity": "1"}]),
    )
    .await
    .expect(422, Some("validation_failed"));
    assert_eq!(stock(&app, a_id).await, 3);
}

#[tokio::test]
async fn concurrent_reservations_never_oversell() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let p = create_product(&app, &admin.token, "HOT-1", 999, 10, &[]).await;
    let id = p["id"].as_str().unwrap().to_owned();
    let db = app.db("product").await;

    let orders: Vec<uuid::Uuid> = (0..200).map(|_| uuid::Uuid::now_v7()).collect();
    let attempts = orders
        .iter()
        .map(|o| reserve(&app, *o, json!([{"product_id": id, "quantity": 1}])));
    // Meanwhile, watch the stock column: it must never go below zero.
    let watcher = async {
        let mut lowest = i64::MAX;
        for _ in 0..50 {
            let s: i64 = sqlx::query_scalar("SELECT stock FROM products WHERE sku = 'HOT-1'")
                .fetch_one(&db)
                .await
                .unwrap();
            lowest = lowest.min(s);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        lowest
    };
    let (results, lowest) = tokio::join!(futures::future::join_all(attempts), watcher);
    let mut won = Vec::new();
    for (order, res) in orders.iter().zip(&results) {
        match res.status.as_u16() {
            201 => won.push(*order),
            409 => assert_eq!(res.body["code"], "insufficient_stock"),
            other => panic!("unexpected {other}: {}", res.body),
        }
    }
    assert_eq!(won.len(), 10);
    assert!(lowest >= 0);
    assert_eq!(stock(&app, &id).await, 0);

    // Replaying every attempt reserves nothing new: winners get 200, losers stay losers.
    let replays = orders
        .iter()
        .map(|o| reserve(&app, *o, json!([{"product_id": id, "quantity": 1}])));
    let replays = futures::future::join_all(replays).await;
    let replayed_ok = replays.iter().filter(|r| r.status.as_u16() == 200).count();
    assert_eq!(replayed_ok, 10);
    assert!(replays.iter().all(|r| r.status.as_u16() != 201));
    assert_eq!(stock(&app, &id).await, 0);

    // Releasing them all (concurrently, twice each) restores exactly 10.
    let paths: Vec<String> = won
        .iter()
        .chain(won.iter())
        .map(|o| format!("/internal/reservations/{o}/release"))
        .collect();
    let releases = paths
        .iter()
        .map(|p| direct(&app, "product", Method::POST, p, None, order()));
    for res in futures::future::join_all(releases).await {
        res.expect(200, None);
    }
    assert_eq!(stock(&app, &id).await, 10);
}

#[tokio::test]
async fn abandoned_reservations_expire() {
    let app = App::spawn_with(|c| {
        c.product.reservation_ttl = Duration::from_secs(1);
        c.product.reservation_sweep_interval = Duration::from_millis(200);
    })
    .await;
    let admin = app.admin().await;
    let p = create_product(&app, &admin.token, "EXP-1", 100, 4, &[]).await;
    let id = p["id"].as_str().unwrap().to_owned();
    let abandoned = uuid::Uuid::now_v7();
    let kept = uuid::Uuid::now_v7();
    reserve(&app, abandoned, json!([{"product_id": id, "quantity": 3}]))
        .await
        .expect(201, None);
    reserve(&app, kept, json!([{"product_id": id, "quantity": 1}]))
        .await
        .expect(201, None);
    direct(
        &app,
        "product",
        Method::POST,
        &format!("/internal/reservations/{kept}/commit"),
        None,
        order(),
    )
    .await
    .expect(200, None);
    assert_eq!(stock(&app, &id).await, 0);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stock(&app, &id).await != 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the abandoned reservation never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let res = direct(
        &app,
        "product",
        Method::GET,
        &format!("/internal/reservations/{abandoned}"),
        None,
        order(),
    )
    .await;
    assert_eq!(res.expect(200, None)["status"], "released");
    direct(
        &app,
        "product",
        Method::POST,
        &format!("/internal/reservations/{abandoned}/commit"),
        None,
        order(),
    )
    .await
    .expect(409, Some("reservation_released"));
    // The committed one is untouched; its stock stays gone.
    let res = direct(
        &app,
        "product",
        Method::GET,
        &format!("/internal/reservations/{kept}"),
        None,
        order(),
    )
    .await;
    assert_eq!(res.expect(200, None)["status"], "committed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stock(&app, &id).await, 3);
}
