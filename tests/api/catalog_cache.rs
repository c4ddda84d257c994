//! The catalog cache's freshness bound: a change made through the API (price, stock, archive,
//! categories, and stock taken by a reservation) is visible on `GET /products/{id}` and in
//! listings within one second, on every replica; a listener that reconnects drops what it
//! cached. `X-Cache: hit` shows a read the product service served from memory; through the
//! gateway, `X-Gateway-Cache: hit` one the gateway answered from its own short-lived cache.

use std::future::Future;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use souk_common::caller::{Caller, Role};
use souk_testkit::eventually;

use crate::catalog::{create_category, create_product};
use crate::helpers::{App, Resp};

/// The documented bound.
const BOUND: Duration = Duration::from_secs(1);

/// Polls `read` until `fresh` holds for its answer; panics if that takes longer than `BOUND`.
async fn within_bound<F, Fut>(what: &str, read: F, fresh: impl Fn(&Resp) -> bool)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Resp>,
{
    eventually(what, BOUND, async || read().await, fresh).await;
}

/// Reads until the answer comes from memory (the listener is up and the entry is stored).
async fn until_hit<F, Fut>(what: &str, read: F) -> Resp
where
    F: Fn() -> Fut,
    Fut: Future<Output = Resp>,
{
    eventually(
        &format!("{what} served from the cache"),
        Duration::from_secs(10),
        async || {
            let res = read().await;
            assert_eq!(res.status, 200, "{what}: {}", res.body);
            res
        },
        |res| x_cache(res) == "hit",
    )
    .await
}

fn x_cache(res: &Resp) -> &str {
    res.headers
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The listed product with this id, if the page holds it.
fn listed<'a>(res: &'a Resp, id: &str) -> Option<&'a Value> {
    assert_eq!(res.status, 200, "{}", res.body);
    res.body["items"]
        .as_array()
        .expect("a page")
        .iter()
        .find(|p| p["id"] == id)
}

async fn get_direct(app: &App, base: &str, path: &str) -> Resp {
    app.send(app.http.get(format!("{base}{path}"))).await
}

#[tokio::test]
async fn api_changes_are_visible_within_a_second() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let a = create_category(&app, &admin.token, "Lamps", "lamps", None).await;
    let b = create_category(&app, &admin.token, "Desk lamps", "desk-lamps", None).await;
    let p = create_product(&app, &admin.token, "LAMP-1", 1000, 5, &[&a]).await;
    let id = p["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/products/{id}");
    let in_a = format!("/api/v1/products?category={a}&sort=price_asc");
    let in_b = format!("/api/v1/products?category={b}&sort=price_desc");
    let cheap = "/api/v1/products?min_price=500&max_price=1500&sort=price_asc";
    let product = || app.get(&path, None);

    // Warm every read, and see them served from memory.
    until_hit("product", product).await;
    until_hit("listing of A", || app.get(&in_a, None)).await;
    until_hit("listing of B", || app.get(&in_b, None)).await;
    let warm = until_hit("price range", || app.get(cheap, None)).await;
    assert!(listed(&warm, &id).is_some());

    // ETag: the same version answers 304; a changed one 200 with a new tag.
    let etag = product().await.headers["etag"].clone();
    let unchanged = app
        .send(
            app.http
                .get(app.url(&path))
                .header("if-none-match", etag.clone()),
        )
        .await;
    assert_eq!(unchanged.status, 304);

    // Price.
    app.patch(&path, Some(&admin.token), json!({"price_cents": 2000}))
        .await
        .expect(200, None);
    within_bound("price on the product", product, |r| {
        r.body["price_cents"] == 2000
    })
    .await;
    within_bound(
        "price in the category listing",
        || app.get(&in_a, None),
        |r| listed(r, &id).is_some_and(|p| p["price_cents"] == 2000),
    )
    .await;
    within_bound(
        "out of the price range",
        || app.get(cheap, None),
        |r| listed(r, &id).is_none(),
    )
    .await;
    let changed = app
        .send(
            app.http
                .get(app.url(&path))
                .header("if-none-match", etag.clone()),
        )
        .await;
    assert_eq!(changed.status, 200);
    assert_ne!(changed.headers["etag"], etag);

    // Stock set by an admin.
    until_hit("product", product).await;
    app.put(
        &format!("{path}/stock"),
        Some(&admin.token),
        json!({"stock": 7}),
    )
    .await
    .expect(200, None);
    within_bound("stock on the product", product, |r| r.body["stock"] == 7).await;
    within_bound(
        "stock in the listing",
        || app.get(&in_a, None),
        |r| listed(r, &id).is_some_and(|p| p["stock"] == 7),
    )
    .await;

    // Stock taken by a reservation (the order service's path: no admin write involved).
    until_hit("product", product).await;
    until_hit("listing of A", || app.get(&in_a, None)).await;
    let order_id = uuid::Uuid::now_v7();
    app.as_order_service(
        "product",
        Method::POST,
        "/internal/reservations",
        Some(json!({"order_id": order_id, "items": [{"product_id": id, "quantity": 2}]})),
    )
    .await
    .expect(201, None);
    within_bound("reserved stock on the product", product, |r| {
        r.body["stock"] == 5
    })
    .await;
    within_bound(
        "reserved stock in the listing",
        || app.get(&in_a, None),
        |r| listed(r, &id).is_some_and(|p| p["stock"] == 5),
    )
    .await;

    // Categories: moved from A to B.
    until_hit("product", product).await;
    until_hit("listing of B", || app.get(&in_b, None)).await;
    app.patch(&path, Some(&admin.token), json!({"category_ids": [b]}))
        .await
        .expect(200, None);
    within_bound("categories on the product", product, |r| {
        r.body["category_ids"] == json!([b])
    })
    .await;
    within_bound(
        "gone from A's listing",
        || app.get(&in_a, None),
        |r| listed(r, &id).is_none(),
    )
    .await;
    within_bound(
        "in B's listing",
        || app.get(&in_b, None),
        |r| listed(r, &id).is_some(),
    )
    .await;

    // The category tree: B moved under A, so A's listing holds B's products again.
    until_hit("listing of A", || app.get(&in_a, None)).await;
    app.patch(
        &format!("/api/v1/categories/{b}"),
        Some(&admin.token),
        json!({"parent_id": a}),
    )
    .await
    .expect(200, None);
    within_bound(
        "in A's listing through B",
        || app.get(&in_a, None),
        |r| listed(r, &id).is_some(),
    )
    .await;

    // Archive.
    until_hit("product", product).await;
    until_hit("listing of B", || app.get(&in_b, None)).await;
    app.delete(&path, Some(&admin.token))
        .await
        .expect(204, None);
    within_bound("archived product", product, |r| r.body["active"] == false).await;
    within_bound(
        "archived product leaves the listing",
        || app.get(&in_b, None),
        |r| listed(r, &id).is_none(),
    )
    .await;
}

#[tokio::test]
async fn a_write_through_one_replica_is_seen_through_the_other() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let cat = create_category(&app, &admin.token, "Mugs", "mugs", None).await;
    let p = create_product(&app, &admin.token, "MUG-1", 800, 10, &[&cat]).await;
    let id = p["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/products/{id}");
    let listing = format!("/api/v1/products?category={cat}&sort=price_asc");
    let one = app.platform.url("product").to_owned();
    let two = app
        .platform
        .start_replica("product")
        .await
        .expect("second replica starts");
    let admin_caller = Caller::User {
        id: admin.id.parse().unwrap(),
        role: Role::Admin,
    };

    for (price, writer, reader) in [(900, &one, &two.url), (1100, &two.url, &one)] {
        // Both replicas hold the product and the page in memory.
        for base in [&one, &two.url] {
            until_hit("product", || get_direct(&app, base, &path)).await;
            until_hit("listing", || get_direct(&app, base, &listing)).await;
        }
        let body = json!({"price_cents": price});
        let res = app
            .send(app.signed_to(
                writer,
                "product",
                Method::PATCH,
                &path,
                Some(&admin_caller),
                Some(&body),
            ))
            .await;
        res.expect(200, None);
        within_bound(
            "price on the other replica",
            || get_direct(&app, reader, &path),
            |r| r.body["price_cents"] == price,
        )
        .await;
        within_bound(
            "price in the other replica's listing",
            || get_direct(&app, reader, &listing),
            |r| listed(r, &id).is_some_and(|p| p["price_cents"] == price),
        )
        .await;
    }

    // Stock taken through one replica's reservations, seen through the other.
    until_hit("product", || get_direct(&app, &one, &path)).await;
    let order_id = uuid::Uuid::now_v7();
    let body = json!({"order_id": order_id, "items": [{"product_id": id, "quantity": 3}]});
    app.send(app.signed_to(
        &two.url,
        "product",
        Method::POST,
        "/internal/reservations",
        Some(&Caller::Service("order".into())),
        Some(&body),
    ))
    .await
    .expect(201, None);
    within_bound(
        "reserved stock on the other replica",
        || get_direct(&app, &one, &path),
        |r| r.body["stock"] == 7,
    )
    .await;
}

/// The process ids of the product database's `LISTEN` connections (one per replica).
async fn listeners(db: &sqlx::PgPool) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND query = 'LISTEN \"souk_catalog\"'",
    )
    .fetch_all(db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_reconnected_listener_drops_the_cache() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let p = create_product(&app, &admin.token, "RUG-1", 5000, 3, &[]).await;
    let id = p["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/products/{id}");
    let product = || app.get(&path, None);
    let db = app.db("product").await;
    until_hit("product", product).await;

    // A change the listener never hears of: triggers are off in this session. The cache keeps
    // serving what it holds (which shows it does serve from memory)...
    let mut tx = db.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE products SET price_cents = 6000 WHERE id = $1::uuid")
        .bind(&id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stale = product().await;
    assert_eq!(x_cache(&stale), "hit");
    assert_eq!(stale.body["price_cents"], 5000, "nothing told the cache");

    // ...until its listener loses the connection: reconnecting, it forgets everything.
    let pids = listeners(&db).await;
    assert_eq!(pids.len(), 1, "one LISTEN connection: {pids:?}");
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pids[0])
        .execute(&db)
        .await
        .unwrap();
    within_bound("after the listener reconnected", product, |r| {
        r.body["price_cents"] == 6000
    })
    .await;

    // It listens again: served from memory, and changes still arrive within the bound.
    until_hit("product after the reconnect", product).await;
    let new_pids = listeners(&db).await;
    assert_eq!(new_pids.len(), 1, "listening again: {new_pids:?}");
    assert_ne!(new_pids, pids);
    app.as_order_service(
        "product",
        Method::POST,
        "/internal/reservations",
        Some(
            json!({"order_id": uuid::Uuid::now_v7(), "items": [{"product_id": id, "quantity": 1}]}),
        ),
    )
    .await
    .expect(201, None);
    within_bound("stock after the reconnect", product, |r| {
        r.body["stock"] == 2
    })
    .await;
}

fn gateway_cache(res: &Resp) -> &str {
    res.headers
        .get("x-gateway-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Reads through the gateway until it answers from its own memory.
async fn until_gateway_hit(app: &App, path: &str) -> Resp {
    eventually(
        &format!("{path} served from the gateway's cache"),
        Duration::from_secs(10),
        async || {
            let res = app.get(path, None).await;
            assert_eq!(res.status, 200, "{path}: {}", res.body);
            res
        },
        |res| gateway_cache(res) == "hit",
    )
    .await
}

/// A change the gateway does not see pass (made on the product service itself, as a write
/// through another gateway replica is) still shows through it within the bound: its entries
/// live at most their TTL.
#[tokio::test]
async fn a_change_made_past_the_gateway_shows_through_its_cache_within_a_second() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let cat = create_category(&app, &admin.token, "Vases", "vases", None).await;
    let p = create_product(&app, &admin.token, "VASE-1", 1500, 4, &[&cat]).await;
    let id = p["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/products/{id}");
    let listing = format!("/api/v1/products?category={cat}");
    let admin_caller = Caller::User {
        id: admin.id.parse().unwrap(),
        role: Role::Admin,
    };
    let product_service = app.platform.url("product").to_owned();

    for price in [1700, 1900] {
        let warm = until_gateway_hit(&app, &path).await;
        assert_ne!(warm.body["price_cents"], price);
        until_gateway_hit(&app, &listing).await;
        let body = json!({"price_cents": price});
        app.send(app.signed_to(
            &product_service,
            "product",
            Method::PATCH,
            &path,
            Some(&admin_caller),
            Some(&body),
        ))
        .await
        .expect(200, None);
        within_bound(
            "price through the gateway",
            || app.get(&path, None),
            |r| r.body["price_cents"] == price,
        )
        .await;
        within_bound(
            "price in the listing through the gateway",
            || app.get(&listing, None),
            |r| listed(r, &id).is_some_and(|p| p["price_cents"] == price),
        )
        .await;
    }
}

/// A write through the gateway empties its cache: the writer reads it back at once.
#[tokio::test]
async fn a_write_through_the_gateway_is_read_back_at_once() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let p = create_product(&app, &admin.token, "BOWL-1", 1200, 6, &[]).await;
    let path = format!("/api/v1/products/{}", p["id"].as_str().unwrap());
    until_gateway_hit(&app, &path).await;
    until_gateway_hit(&app, "/api/v1/categories").await;

    app.patch(&path, Some(&admin.token), json!({"price_cents": 1300}))
        .await
        .expect(200, None);
    let read = app.get(&path, None).await;
    assert_eq!(read.expect(200, None)["price_cents"], 1300);
    assert_eq!(gateway_cache(&read), "miss");

    create_category(&app, &admin.token, "Bowls", "bowls", None).await;
    let categories = app.get("/api/v1/categories", None).await;
    let names: Vec<&str> = categories.expect(200, None)["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["Bowls"]);
}

/// `If-None-Match` is answered by the gateway from its entry: 304 with the `ETag`, and the
/// request's own id, not the one of the request that filled the entry.
#[tokio::test]
async fn the_gateway_answers_304_from_its_cache() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let p = create_product(&app, &admin.token, "JUG-1", 900, 2, &[]).await;
    let path = format!("/api/v1/products/{}", p["id"].as_str().unwrap());
    let warm = until_gateway_hit(&app, &path).await;
    let etag = warm.headers["etag"].clone();
    assert_eq!(warm.content_type(), "application/json");

    let conditional = |tag: &str, request_id: &str| {
        app.send(
            app.http
                .get(app.url(&path))
                .header("if-none-match", tag)
                .header("x-request-id", request_id),
        )
    };
    let unchanged = conditional(etag.to_str().unwrap(), "conditional-1").await;
    assert_eq!(unchanged.status, 304);
    assert_eq!(gateway_cache(&unchanged), "hit");
    assert_eq!(unchanged.headers["etag"], etag);
    assert_eq!(unchanged.headers["x-request-id"], "conditional-1");

    let other = conditional("\"another-version\"", "conditional-2").await;
    assert_eq!(other.status, 200);
    assert_eq!(other.body["sku"], "JUG-1");
    assert_eq!(other.headers["x-request-id"], "conditional-2");
}

/// Errors are relayed, never stored; a different query is a different entry.
#[tokio::test]
async fn errors_are_not_cached_and_each_query_is_its_own_entry() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let missing = format!("/api/v1/products/{}", uuid::Uuid::now_v7());
    for _ in 0..3 {
        let res = app.get(&missing, None).await;
        res.expect(404, None);
        assert_eq!(gateway_cache(&res), "", "an error is relayed as it is");
    }
    let bad = "/api/v1/products?sort=sideways";
    for _ in 0..3 {
        let res = app.get(bad, None).await;
        res.expect(422, Some("validation_failed"));
        assert_eq!(gateway_cache(&res), "");
    }

    create_product(&app, &admin.token, "CUP-1", 300, 1, &[]).await;
    create_product(&app, &admin.token, "CUP-2", 700, 1, &[]).await;
    let cheapest = until_gateway_hit(&app, "/api/v1/products?sort=price_asc").await;
    assert_eq!(cheapest.body["items"][0]["sku"], "CUP-1");
    let dearest = app.get("/api/v1/products?sort=price_desc", None).await;
    assert_eq!(
        gateway_cache(&dearest),
        "miss",
        "another query, another entry"
    );
    assert_eq!(dearest.expect(200, None)["items"][0]["sku"], "CUP-2");
}

/// A signed-in read goes to the product service: it is told who asks, so the gateway does not
/// assume the answer is everyone's.
#[tokio::test]
async fn signed_in_reads_are_not_served_from_the_gateway_cache() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let p = create_product(&app, &admin.token, "PLATE-1", 500, 3, &[]).await;
    let path = format!("/api/v1/products/{}", p["id"].as_str().unwrap());
    until_gateway_hit(&app, &path).await;
    for _ in 0..3 {
        let res = app.get(&path, Some(&admin.token)).await;
        res.expect(200, None);
        assert_eq!(gateway_cache(&res), "");
    }
}

/// Reads answered from the gateway's memory still count against the client's rate limit.
#[tokio::test]
async fn cached_reads_are_rate_limited() {
    let app = App::spawn_with(|c| {
        c.gateway.rate_limit_per_sec = 0.001;
        c.gateway.rate_limit_burst = 4.0;
    })
    .await;
    let res = app.get("/api/v1/categories", None).await;
    res.expect(200, None);
    let mut hits = 0;
    for _ in 0..3 {
        let res = app.get("/api/v1/categories", None).await;
        res.expect(200, None);
        hits += usize::from(gateway_cache(&res) == "hit");
    }
    assert!(hits > 0, "some reads came from the gateway's memory");
    app.get("/api/v1/categories", None)
        .await
        .expect(429, Some("rate_limited"));
}
